/**
 * A reimplementation of Go's `text/template` (lexer, parser and executor) over typed
 * {@link GoValue}s, with the `json` function that buildctl registers (`bccommon.ParseTemplate`).
 *
 * Supported: text, trim markers, comments, fields/chains/variables, pipelines, parenthesised
 * pipelines, literals, `if`/`else if`/`with`/`else with`/`range` (slices, maps, ints; with
 * `$i, $v :=`)/`break`/`continue`, `define`/`template`/`block`, the builtins `and or not len index
 * slice print printf println eq ne lt le gt ge html js urlquery`, and a few methods of
 * `time.Time` / `time.Duration`. Parse and execution error messages follow Go's wording, e.g.
 * `template: :1: function "foo" not defined` or
 * `template: :1:2: executing "" at <.Foo>: can't evaluate field Foo in type *client.Info`.
 *
 * @module
 */

import {
  dynamic,
  encodeJSON,
  formatValue,
  type GoType,
  type GoValue,
  goValue,
  isNilJS,
  noValue,
  sortedMapKeys,
  tAny,
  tBool,
  tFloat64,
  tInt,
  tInt64,
  tString,
  typeName,
} from "./gotypes.ts";
import { sprint, sprintf, sprintln } from "./gofmt.ts";
import {
  formatGoDuration,
  formatGoTime,
  type GoTime,
  goTimeParts,
  goTimeString,
  UTC,
} from "./units.ts";

/** Error thrown for template parse and execution failures (message as Go's). */
export class TemplateError extends Error {
  /** The template text that failed. */
  readonly template: string;
  /**
   * Output produced before an execution error. Go's template writes straight to stdout, so
   * upstream prints this text before failing; empty for parse errors.
   */
  readonly partialOutput: string;
  constructor(message: string, template: string, partialOutput = "") {
    super(message);
    this.name = "TemplateError";
    this.template = template;
    this.partialOutput = partialOutput;
  }
}

// ---------------------------------------------------------------------------
// Lexer

enum T {
  Error,
  Bool,
  Char,
  CharConstant,
  Comment,
  Complex,
  Assign,
  Declare,
  EOF,
  Field,
  Identifier,
  LeftDelim,
  LeftParen,
  Number,
  Pipe,
  RawString,
  RightDelim,
  RightParen,
  Space,
  String,
  Text,
  Variable,
  Keyword, // delimiter
  Block,
  Break,
  Continue,
  Dot,
  Define,
  Else,
  End,
  If,
  Nil,
  Range,
  Template,
  With,
}

const keywords: Record<string, T> = {
  ".": T.Dot,
  block: T.Block,
  break: T.Break,
  continue: T.Continue,
  define: T.Define,
  else: T.Else,
  end: T.End,
  if: T.If,
  range: T.Range,
  nil: T.Nil,
  template: T.Template,
  with: T.With,
};

interface Item {
  typ: T;
  pos: number;
  val: string;
  line: number;
}

function quoteTrunc(s: string, max?: number): string {
  const runes = [...s];
  const t = max !== undefined && runes.length > max ? runes.slice(0, max).join("") : s;
  return JSON.stringify(t).replace(/\\u00([0-9a-f]{2})/g, "\\x$1");
}

function itemString(i: Item): string {
  if (i.typ === T.EOF) return "EOF";
  if (i.typ === T.Error) return i.val;
  if (i.typ > T.Keyword) return `<${i.val}>`;
  if ([...i.val].length > 10) return quoteTrunc(i.val, 10) + "...";
  return quoteTrunc(i.val);
}

const isSpace = (r: string) => r === " " || r === "\t" || r === "\r" || r === "\n";
const isAlphaNumeric = (r: string) => r === "_" || /^[\p{L}\p{Nd}]$/u.test(r);
const EOF = "";

class Lexer {
  input: string;
  pos = 0;
  start = 0;
  atEOF = false;
  parenDepth = 0;
  line = 1;
  startLine = 1;
  item: Item = { typ: T.EOF, pos: 0, val: "EOF", line: 1 };
  insideAction = false;

  constructor(input: string) {
    this.input = input;
  }

  next(): string {
    if (this.pos >= this.input.length) {
      this.atEOF = true;
      return EOF;
    }
    const cp = this.input.codePointAt(this.pos)!;
    const r = String.fromCodePoint(cp);
    this.pos += r.length;
    if (r === "\n") this.line++;
    return r;
  }

  peek(): string {
    const r = this.next();
    this.backup();
    return r;
  }

  backup(): void {
    if (!this.atEOF && this.pos > 0) {
      let w = 1;
      const c = this.input.charCodeAt(this.pos - 1);
      if (c >= 0xdc00 && c <= 0xdfff && this.pos >= 2) {
        const h = this.input.charCodeAt(this.pos - 2);
        if (h >= 0xd800 && h <= 0xdbff) w = 2;
      }
      this.pos -= w;
      if (this.input[this.pos] === "\n") this.line--;
    }
  }

  thisItem(typ: T): Item {
    const i = {
      typ,
      pos: this.start,
      val: this.input.slice(this.start, this.pos),
      line: this.startLine,
    };
    this.start = this.pos;
    this.startLine = this.line;
    return i;
  }

  emit(typ: T): null {
    this.item = this.thisItem(typ);
    return null;
  }

  emitItem(i: Item): null {
    this.item = i;
    return null;
  }

  ignore(): void {
    this.line += count(this.input.slice(this.start, this.pos), "\n");
    this.start = this.pos;
    this.startLine = this.line;
  }

  accept(valid: string): boolean {
    const r = this.next();
    if (r !== EOF && valid.includes(r)) return true;
    this.backup();
    return false;
  }

  acceptRun(valid: string): void {
    for (;;) {
      const r = this.next();
      if (r === EOF || !valid.includes(r)) break;
    }
    this.backup();
  }

  errorf(msg: string): null {
    this.item = { typ: T.Error, pos: this.start, val: msg, line: this.startLine };
    this.start = 0;
    this.pos = 0;
    this.input = "";
    return null;
  }

  nextItem(): Item {
    this.item = { typ: T.EOF, pos: this.pos, val: "EOF", line: this.startLine };
    let state: StateFn | null = this.insideAction ? lexInsideAction : lexText;
    while (state) state = state(this);
    return this.item;
  }

  atRightDelim(): { delim: boolean; trim: boolean } {
    const rest = this.input.slice(this.pos);
    if (hasRightTrimMarker(rest) && rest.slice(2).startsWith("}}")) {
      return { delim: true, trim: true };
    }
    if (rest.startsWith("}}")) return { delim: true, trim: false };
    return { delim: false, trim: false };
  }

  atTerminator(): boolean {
    const r = this.peek();
    if (isSpace(r)) return true;
    if (r === EOF || ".,|:)(".includes(r)) return true;
    return this.input.slice(this.pos).startsWith("}}");
  }
}

type StateFn = (l: Lexer) => StateFn | null;

function count(s: string, sub: string): number {
  return s.split(sub).length - 1;
}

const hasLeftTrimMarker = (s: string) => s.length >= 2 && s[0] === "-" && isSpace(s[1]);
const hasRightTrimMarker = (s: string) => s.length >= 2 && isSpace(s[0]) && s[1] === "-";
const trimRightLen = (s: string) => s.length - s.replace(/[ \t\r\n]+$/, "").length;
const trimLeftLen = (s: string) => s.length - s.replace(/^[ \t\r\n]+/, "").length;

function lexText(l: Lexer): StateFn | null {
  const x = l.input.indexOf("{{", l.pos);
  if (x >= 0) {
    if (x > l.pos) {
      l.pos = x;
      let trimLength = 0;
      const delimEnd = l.pos + 2;
      if (hasLeftTrimMarker(l.input.slice(delimEnd))) {
        trimLength = trimRightLen(l.input.slice(l.start, l.pos));
      }
      l.pos -= trimLength;
      l.line += count(l.input.slice(l.start, l.pos), "\n");
      const i = l.thisItem(T.Text);
      l.pos += trimLength;
      l.ignore();
      if (i.val.length > 0) return l.emitItem(i);
    }
    return lexLeftDelim;
  }
  l.pos = l.input.length;
  if (l.pos > l.start) {
    l.line += count(l.input.slice(l.start, l.pos), "\n");
    return l.emit(T.Text);
  }
  return l.emit(T.EOF);
}

function lexLeftDelim(l: Lexer): StateFn | null {
  l.pos += 2;
  const trimSpace = hasLeftTrimMarker(l.input.slice(l.pos));
  const afterMarker = trimSpace ? 2 : 0;
  if (l.input.slice(l.pos + afterMarker).startsWith("/*")) {
    l.pos += afterMarker;
    l.ignore();
    return lexComment;
  }
  const i = l.thisItem(T.LeftDelim);
  l.insideAction = true;
  l.pos += afterMarker;
  l.ignore();
  l.parenDepth = 0;
  return l.emitItem(i);
}

function lexComment(l: Lexer): StateFn | null {
  l.pos += 2;
  const x = l.input.indexOf("*/", l.pos);
  if (x < 0) return l.errorf("unclosed comment");
  l.pos = x + 2;
  const { delim, trim } = l.atRightDelim();
  if (!delim) return l.errorf("comment ends before closing delimiter");
  l.line += count(l.input.slice(l.start, l.pos), "\n");
  l.thisItem(T.Comment);
  if (trim) l.pos += 2;
  l.pos += 2;
  if (trim) l.pos += trimLeftLen(l.input.slice(l.pos));
  l.ignore();
  return lexText;
}

function lexRightDelim(l: Lexer): StateFn | null {
  const { trim } = l.atRightDelim();
  if (trim) {
    l.pos += 2;
    l.ignore();
  }
  l.pos += 2;
  const i = l.thisItem(T.RightDelim);
  if (trim) {
    l.pos += trimLeftLen(l.input.slice(l.pos));
    l.ignore();
  }
  l.insideAction = false;
  return l.emitItem(i);
}

function fmtRune(r: string): string {
  const cp = r.codePointAt(0)!;
  const hex = cp.toString(16).toUpperCase().padStart(4, "0");
  return `U+${hex} '${r}'`;
}

function lexInsideAction(l: Lexer): StateFn | null {
  const { delim } = l.atRightDelim();
  if (delim) {
    if (l.parenDepth === 0) return lexRightDelim;
    return l.errorf("unclosed left paren");
  }
  const r = l.next();
  if (r === EOF) return l.errorf("unclosed action");
  if (isSpace(r)) {
    l.backup();
    return lexSpace;
  }
  if (r === "=") return l.emit(T.Assign);
  if (r === ":") {
    if (l.next() !== "=") return l.errorf("expected :=");
    return l.emit(T.Declare);
  }
  if (r === "|") return l.emit(T.Pipe);
  if (r === '"') return lexQuote;
  if (r === "`") return lexRawQuote;
  if (r === "$") return lexVariable;
  if (r === "'") return lexChar;
  if (r === ".") {
    if (l.pos < l.input.length) {
      const c = l.input[l.pos];
      if (c < "0" || c > "9") return lexField;
    }
    l.backup();
    return lexNumber;
  }
  if (r === "+" || r === "-" || (r >= "0" && r <= "9")) {
    l.backup();
    return lexNumber;
  }
  if (isAlphaNumeric(r)) {
    l.backup();
    return lexIdentifier;
  }
  if (r === "(") {
    l.parenDepth++;
    return l.emit(T.LeftParen);
  }
  if (r === ")") {
    l.parenDepth--;
    if (l.parenDepth < 0) return l.errorf("unexpected right paren");
    return l.emit(T.RightParen);
  }
  const cp = r.codePointAt(0)!;
  if (cp <= 0x7f && cp >= 0x20 && cp !== 0x7f) return l.emit(T.Char);
  return l.errorf(`unrecognized character in action: ${fmtRune(r)}`);
}

function lexSpace(l: Lexer): StateFn | null {
  let numSpaces = 0;
  for (;;) {
    const r = l.peek();
    if (!isSpace(r)) break;
    l.next();
    numSpaces++;
  }
  const rest = l.input.slice(l.pos - 1);
  if (hasRightTrimMarker(rest) && rest.slice(2).startsWith("}}")) {
    l.backup();
    if (numSpaces === 1) return lexRightDelim;
  }
  return l.emit(T.Space);
}

function lexIdentifier(l: Lexer): StateFn | null {
  for (;;) {
    const r = l.next();
    if (r !== EOF && isAlphaNumeric(r)) continue;
    l.backup();
    const word = l.input.slice(l.start, l.pos);
    if (!l.atTerminator()) return l.errorf(`bad character ${fmtRune(r)}`);
    const kw = keywords[word];
    if (kw !== undefined && kw > T.Keyword) return l.emit(kw);
    if (word[0] === ".") return l.emit(T.Field);
    if (word === "true" || word === "false") return l.emit(T.Bool);
    return l.emit(T.Identifier);
  }
}

function lexField(l: Lexer): StateFn | null {
  return lexFieldOrVariable(l, T.Field);
}

function lexVariable(l: Lexer): StateFn | null {
  if (l.atTerminator()) return l.emit(T.Variable);
  return lexFieldOrVariable(l, T.Variable);
}

function lexFieldOrVariable(l: Lexer, typ: T): StateFn | null {
  if (l.atTerminator()) return l.emit(typ === T.Variable ? T.Variable : T.Dot);
  let r: string;
  for (;;) {
    r = l.next();
    if (r === EOF || !isAlphaNumeric(r)) {
      l.backup();
      break;
    }
  }
  if (!l.atTerminator()) return l.errorf(`bad character ${fmtRune(r)}`);
  return l.emit(typ);
}

function lexChar(l: Lexer): StateFn | null {
  for (;;) {
    let r = l.next();
    if (r === "\\") {
      r = l.next();
      if (r !== EOF && r !== "\n") continue;
      return l.errorf("unterminated character constant");
    }
    if (r === EOF || r === "\n") return l.errorf("unterminated character constant");
    if (r === "'") break;
  }
  return l.emit(T.CharConstant);
}

function scanNumber(l: Lexer): boolean {
  l.accept("+-");
  let digits = "0123456789_";
  if (l.accept("0")) {
    if (l.accept("xX")) digits = "0123456789abcdefABCDEF_";
    else if (l.accept("oO")) digits = "01234567_";
    else if (l.accept("bB")) digits = "01_";
  }
  l.acceptRun(digits);
  if (l.accept(".")) l.acceptRun(digits);
  if (digits.length === 11 && l.accept("eE")) {
    l.accept("+-");
    l.acceptRun("0123456789_");
  }
  if (digits.length === 23 && l.accept("pP")) {
    l.accept("+-");
    l.acceptRun("0123456789_");
  }
  l.accept("i");
  const p = l.peek();
  if (p !== EOF && isAlphaNumeric(p)) {
    l.next();
    return false;
  }
  return true;
}

function lexNumber(l: Lexer): StateFn | null {
  if (!scanNumber(l)) {
    return l.errorf(`bad number syntax: ${quoteTrunc(l.input.slice(l.start, l.pos))}`);
  }
  const sign = l.peek();
  if (sign === "+" || sign === "-") {
    if (!scanNumber(l) || l.input[l.pos - 1] !== "i") {
      return l.errorf(`bad number syntax: ${quoteTrunc(l.input.slice(l.start, l.pos))}`);
    }
    return l.emit(T.Complex);
  }
  return l.emit(T.Number);
}

function lexQuote(l: Lexer): StateFn | null {
  for (;;) {
    let r = l.next();
    if (r === "\\") {
      r = l.next();
      if (r !== EOF && r !== "\n") continue;
      return l.errorf("unterminated quoted string");
    }
    if (r === EOF || r === "\n") return l.errorf("unterminated quoted string");
    if (r === '"') break;
  }
  return l.emit(T.String);
}

function lexRawQuote(l: Lexer): StateFn | null {
  for (;;) {
    const r = l.next();
    if (r === EOF) return l.errorf("unterminated raw quoted string");
    if (r === "`") break;
  }
  return l.emit(T.RawString);
}

// ---------------------------------------------------------------------------
// Nodes

type Node =
  | { k: "list"; pos: number; nodes: Node[] }
  | { k: "text"; pos: number; text: string }
  | { k: "action"; pos: number; line: number; pipe: PipeNode }
  | BranchNode
  | { k: "break" | "continue"; pos: number; line: number }
  | { k: "template"; pos: number; line: number; name: string; pipe?: PipeNode }
  | { k: "end" | "else"; pos: number; line?: number }
  | PipeNode
  | { k: "command"; pos: number; args: Node[] }
  | { k: "field"; pos: number; ident: string[] }
  | { k: "chain"; pos: number; node: Node; field: string[] }
  | { k: "variable"; pos: number; ident: string[] }
  | { k: "identifier"; pos: number; name: string }
  | { k: "dot"; pos: number }
  | { k: "nil"; pos: number }
  | { k: "bool"; pos: number; val: boolean }
  | NumberNode
  | { k: "string"; pos: number; quoted: string; text: string };

interface PipeNode {
  k: "pipe";
  pos: number;
  line: number;
  isAssign: boolean;
  decl: { k: "variable"; pos: number; ident: string[] }[];
  cmds: { k: "command"; pos: number; args: Node[] }[];
}
type ListNode = { k: "list"; pos: number; nodes: Node[] };
interface BranchNode {
  k: "if" | "range" | "with";
  pos: number;
  line: number;
  pipe: PipeNode;
  list: ListNode;
  elseList?: ListNode;
}
interface NumberNode {
  k: "number";
  pos: number;
  text: string;
  isInt: boolean;
  isUint: boolean;
  isFloat: boolean;
  isComplex: boolean;
  int: bigint;
  float: number;
}

function nodeString(n: Node): string {
  switch (n.k) {
    case "list":
      return n.nodes.map(nodeString).join("");
    case "text":
      return quoteTrunc(n.text);
    case "action":
      return "{{" + nodeString(n.pipe) + "}}";
    case "if":
    case "range":
    case "with":
      return `{{${n.k} ${nodeString(n.pipe)}}}${nodeString(n.list)}` +
        (n.elseList ? "{{else}}" + nodeString(n.elseList) : "") + "{{end}}";
    case "break":
      return "{{break}}";
    case "continue":
      return "{{continue}}";
    case "end":
      return "{{end}}";
    case "else":
      return "{{else}}";
    case "template":
      return `{{template ${JSON.stringify(n.name)}${n.pipe ? " " + nodeString(n.pipe) : ""}}}`;
    case "pipe": {
      let s = "";
      if (n.decl.length > 0) s = n.decl.map(nodeString).join(", ") + (n.isAssign ? " = " : " := ");
      return s + n.cmds.map(nodeString).join(" | ");
    }
    case "command":
      return n.args.map((a) => a.k === "pipe" ? "(" + nodeString(a) + ")" : nodeString(a)).join(
        " ",
      );
    case "field":
      return n.ident.map((i) => "." + i).join("");
    case "chain":
      return (n.node.k === "pipe" ? "(" + nodeString(n.node) + ")" : nodeString(n.node)) +
        n.field.map((f) => "." + f).join("");
    case "variable":
      return n.ident.join(".");
    case "identifier":
      return n.name;
    case "dot":
      return ".";
    case "nil":
      return "nil";
    case "bool":
      return n.val ? "true" : "false";
    case "number":
      return n.text;
    case "string":
      return n.quoted;
  }
}

// ---------------------------------------------------------------------------
// Go string literal unquoting

function unquote(s: string): string {
  const bad = () => {
    throw new Error("invalid syntax");
  };
  if (s.length < 2) bad();
  const q = s[0];
  if (q !== s[s.length - 1]) bad();
  const body = s.slice(1, -1);
  if (q === "`") {
    if (body.includes("`")) bad();
    return body.replaceAll("\r", "");
  }
  if (q !== '"' && q !== "'") bad();
  if (body.includes("\n")) bad();
  let out = "";
  let i = 0;
  while (i < body.length) {
    const c = body[i];
    if (c === q && q === '"') bad();
    if (c !== "\\") {
      out += c;
      i++;
      continue;
    }
    const r = unquoteEscape(body, i, q);
    out += r.s;
    i = r.next;
  }
  if (q === "'" && [...out].length !== 1) bad();
  return out;
}

function unquoteEscape(body: string, i: number, q: string): { s: string; next: number } {
  const bad = (): never => {
    throw new Error("invalid syntax");
  };
  const e = body[i + 1];
  if (e === undefined) bad();
  const simple: Record<string, string> = {
    a: "\x07",
    b: "\b",
    f: "\f",
    n: "\n",
    r: "\r",
    t: "\t",
    v: "\v",
    "\\": "\\",
  };
  if (e in simple) return { s: simple[e], next: i + 2 };
  if (e === q) return { s: q, next: i + 2 };
  const hexN = e === "x" ? 2 : e === "u" ? 4 : e === "U" ? 8 : 0;
  if (hexN > 0) {
    const h = body.slice(i + 2, i + 2 + hexN);
    if (h.length !== hexN || !/^[0-9a-fA-F]+$/.test(h)) bad();
    const v = parseInt(h, 16);
    if (e === "x") {
      // A raw byte; only valid UTF-8 when < 0x80 in practice.
      return { s: String.fromCharCode(v), next: i + 2 + hexN };
    }
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) bad();
    return { s: String.fromCodePoint(v), next: i + 2 + hexN };
  }
  if (e >= "0" && e <= "7") {
    const o = body.slice(i + 1, i + 4);
    if (!/^[0-7]{3}$/.test(o)) bad();
    const v = parseInt(o, 8);
    if (v > 255) bad();
    return { s: String.fromCharCode(v), next: i + 4 };
  }
  return bad();
}

function parseNumberNode(pos: number, text: string, typ: T): NumberNode {
  const n: NumberNode = {
    k: "number",
    pos,
    text,
    isInt: false,
    isUint: false,
    isFloat: false,
    isComplex: false,
    int: 0n,
    float: 0,
  };
  if (typ === T.CharConstant) {
    // strconv.UnquoteChar on the body, then the closing quote must follow.
    const body = text.slice(1);
    let s: string;
    let rest: string;
    if (body[0] === "\\") {
      const r = unquoteEscape(body, 0, "'");
      s = r.s;
      rest = body.slice(r.next);
    } else {
      const cp0 = body.codePointAt(0);
      if (cp0 === undefined || body[0] === "'") throw new Error("invalid syntax");
      s = String.fromCodePoint(cp0);
      rest = body.slice(s.length);
    }
    if (rest !== "'") throw new Error(`malformed character constant: ${text}`);
    const cp = s.codePointAt(0)!;
    n.int = BigInt(cp);
    n.float = cp;
    n.isInt = n.isUint = n.isFloat = true;
    return n;
  }
  if (typ === T.Complex || text.endsWith("i")) {
    throw new Error(`complex constants are not supported: ${quoteTrunc(text)}`);
  }
  const parseIntText = (t: string): bigint | undefined => {
    let s = t;
    let neg = false;
    if (s[0] === "+" || s[0] === "-") {
      neg = s[0] === "-";
      s = s.slice(1);
    }
    let base = 10;
    let digits = s;
    if (/^0[xX]/.test(s)) {
      base = 16;
      digits = s.slice(2);
    } else if (/^0[oO]/.test(s)) {
      base = 8;
      digits = s.slice(2);
    } else if (/^0[bB]/.test(s)) {
      base = 2;
      digits = s.slice(2);
    } else if (/^0[0-7_]+$/.test(s)) {
      base = 8;
      digits = s.slice(1);
    }
    if (digits.includes("_")) {
      if (!/^_?[0-9a-fA-F]+(_[0-9a-fA-F]+)*$/.test(digits)) return undefined;
      digits = digits.replaceAll("_", "");
    }
    const re = base === 16
      ? /^[0-9a-fA-F]+$/
      : base === 8
      ? /^[0-7]+$/
      : base === 2
      ? /^[01]+$/
      : /^[0-9]+$/;
    if (!re.test(digits)) return undefined;
    const prefix = base === 16 ? "0x" : base === 8 ? "0o" : base === 2 ? "0b" : "";
    const v = BigInt(prefix + digits);
    return neg ? -v : v;
  };
  const iv = parseIntText(text);
  if (iv !== undefined) {
    if (iv >= 0n && iv < 1n << 64n) n.isUint = true;
    if (iv >= -(1n << 63n) && iv < 1n << 63n) n.isInt = true;
    n.int = iv;
    if (n.isInt || n.isUint) {
      n.isFloat = true;
      n.float = Number(iv);
    } else {
      throw new Error(`integer overflow: ${quoteTrunc(text)}`);
    }
    return n;
  }
  const clean = text.replaceAll("_", "");
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(clean)) {
    const f = Number(clean);
    n.isFloat = true;
    n.float = f;
    if (Number.isInteger(f) && Math.abs(f) < 2 ** 63) {
      n.isInt = true;
      n.int = BigInt(f);
      if (f >= 0) n.isUint = true;
    }
    return n;
  }
  throw new Error(`illegal number syntax: ${quoteTrunc(text)}`);
}

// ---------------------------------------------------------------------------
// Parser

/** Names of the functions available to templates (Go builtins plus buildctl's `json`). */
export const TEMPLATE_FUNCS: readonly string[] = [
  "and",
  "call",
  "html",
  "index",
  "slice",
  "js",
  "len",
  "not",
  "or",
  "print",
  "printf",
  "println",
  "urlquery",
  "eq",
  "ge",
  "gt",
  "le",
  "lt",
  "ne",
  "json",
];

class ParseFail extends Error {}

class Parser {
  lex: Lexer;
  token: Item[] = [];
  peekCount = 0;
  vars: string[] = ["$"];
  actionLine = 0;
  rangeDepth = 0;
  stackDepth = 0;
  trees: Map<string, ListNode>;
  text: string;

  constructor(text: string, trees: Map<string, ListNode>, lex?: Lexer) {
    this.text = text;
    this.lex = lex ?? new Lexer(text);
    this.trees = trees;
    this.token = [this.lex.item, this.lex.item, this.lex.item];
  }

  errorf(msg: string): never {
    throw new ParseFail(`template: :${this.token[0].line}: ${msg}`);
  }

  next(): Item {
    if (this.peekCount > 0) this.peekCount--;
    else this.token[0] = this.lex.nextItem();
    return this.token[this.peekCount];
  }
  backup(): void {
    this.peekCount++;
  }
  backup2(t1: Item): void {
    this.token[1] = t1;
    this.peekCount = 2;
  }
  backup3(t2: Item, t1: Item): void {
    this.token[1] = t1;
    this.token[2] = t2;
    this.peekCount = 3;
  }
  peek(): Item {
    if (this.peekCount > 0) return this.token[this.peekCount - 1];
    this.peekCount = 1;
    this.token[0] = this.lex.nextItem();
    return this.token[0];
  }
  nextNonSpace(): Item {
    let t: Item;
    do t = this.next(); while (t.typ === T.Space);
    return t;
  }
  peekNonSpace(): Item {
    const t = this.nextNonSpace();
    this.backup();
    return t;
  }
  expect(typ: T, context: string): Item {
    const t = this.nextNonSpace();
    if (t.typ !== typ) this.unexpected(t, context);
    return t;
  }
  unexpected(token: Item, context: string): never {
    if (token.typ === T.Error) {
      let extra = "";
      if (this.actionLine !== 0 && this.actionLine !== token.line) {
        extra = ` in action started at :${this.actionLine}`;
        if (token.val.endsWith(" action")) extra = extra.slice(" in action".length);
      }
      this.errorf(`${itemString(token)}${extra}`);
    }
    this.errorf(`unexpected ${itemString(token)} in ${context}`);
  }

  parse(): ListNode {
    const root: ListNode = { k: "list", pos: this.peek().pos, nodes: [] };
    while (this.peek().typ !== T.EOF) {
      if (this.peek().typ === T.LeftDelim) {
        const delim = this.next();
        if (this.nextNonSpace().typ === T.Define) {
          this.parseDefinition();
          continue;
        }
        this.backup2(delim);
      }
      const n = this.textOrAction();
      if (n.k === "end" || n.k === "else") this.errorf(`unexpected ${nodeString(n)}`);
      root.nodes.push(n);
    }
    return root;
  }

  parseDefinition(): void {
    const context = "define clause";
    const name = this.nextNonSpace();
    if (name.typ !== T.String && name.typ !== T.RawString) this.unexpected(name, context);
    let tname: string;
    try {
      tname = unquote(name.val);
    } catch (e) {
      this.errorf((e as Error).message);
    }
    this.expect(T.RightDelim, context);
    const savedVars = this.vars;
    this.vars = ["$"];
    const [list, end] = this.itemList();
    this.vars = savedVars;
    if (end.k !== "end") this.errorf(`unexpected ${nodeString(end)} in ${context}`);
    this.addTree(tname, list);
  }

  addTree(name: string, list: ListNode): void {
    const existing = this.trees.get(name);
    if (!existing || isEmptyTree(existing)) {
      this.trees.set(name, list);
      return;
    }
    if (!isEmptyTree(list)) {
      this.errorf(`template: multiple definition of template ${JSON.stringify(name)}`);
    }
  }

  itemList(): [ListNode, Node] {
    const list: ListNode = { k: "list", pos: this.peekNonSpace().pos, nodes: [] };
    while (this.peekNonSpace().typ !== T.EOF) {
      const n = this.textOrAction();
      if (n.k === "end" || n.k === "else") return [list, n];
      list.nodes.push(n);
    }
    this.errorf("unexpected EOF");
  }

  textOrAction(): Node {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case T.Text:
        return { k: "text", pos: token.pos, text: token.val };
      case T.LeftDelim: {
        this.actionLine = token.line;
        try {
          return this.action();
        } finally {
          this.actionLine = 0;
        }
      }
      default:
        this.unexpected(token, "input");
    }
  }

  action(): Node {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case T.Block:
        return this.blockControl();
      case T.Break:
      case T.Continue: {
        const what = token.typ === T.Break ? "break" : "continue";
        const t2 = this.nextNonSpace();
        if (t2.typ !== T.RightDelim) this.unexpected(t2, `{{${what}}}`);
        if (this.rangeDepth === 0) this.errorf(`{{${what}}} outside {{range}}`);
        return { k: what, pos: token.pos, line: token.line };
      }
      case T.Else:
        return this.elseControl();
      case T.End:
        return { k: "end", pos: this.expect(T.RightDelim, "end").pos };
      case T.If:
        return this.control("if");
      case T.Range:
        return this.control("range");
      case T.Template:
        return this.templateControl();
      case T.With:
        return this.control("with");
    }
    this.backup();
    const t = this.peek();
    return { k: "action", pos: t.pos, line: t.line, pipe: this.pipeline("command", T.RightDelim) };
  }

  pipeline(context: string, end: T): PipeNode {
    const token = this.peekNonSpace();
    const pipe: PipeNode = {
      k: "pipe",
      pos: token.pos,
      line: token.line,
      isAssign: false,
      decl: [],
      cmds: [],
    };
    decls: for (;;) {
      const v = this.peekNonSpace();
      if (v.typ === T.Variable) {
        this.next();
        const tokenAfterVariable = this.peek();
        const next = this.peekNonSpace();
        if (next.typ === T.Assign || next.typ === T.Declare) {
          pipe.isAssign = next.typ === T.Assign;
          this.nextNonSpace();
          pipe.decl.push({ k: "variable", pos: v.pos, ident: v.val.split(".") });
          this.vars.push(v.val);
        } else if (next.typ === T.Char && next.val === ",") {
          this.nextNonSpace();
          pipe.decl.push({ k: "variable", pos: v.pos, ident: v.val.split(".") });
          this.vars.push(v.val);
          if (context === "range" && pipe.decl.length < 2) {
            const p = this.peekNonSpace().typ;
            if (p === T.Variable || p === T.RightDelim || p === T.RightParen) continue decls;
            this.errorf("range can only initialize variables");
          }
          this.errorf(`too many declarations in ${context}`);
        } else if (tokenAfterVariable.typ === T.Space) {
          this.backup3(v, tokenAfterVariable);
        } else {
          this.backup2(v);
        }
      }
      break;
    }
    for (;;) {
      const token = this.nextNonSpace();
      if (token.typ === end) {
        this.checkPipeline(pipe, context);
        return pipe;
      }
      switch (token.typ) {
        case T.Bool:
        case T.CharConstant:
        case T.Complex:
        case T.Dot:
        case T.Field:
        case T.Identifier:
        case T.Number:
        case T.Nil:
        case T.RawString:
        case T.String:
        case T.Variable:
        case T.LeftParen:
          this.backup();
          pipe.cmds.push(this.command());
          break;
        default:
          this.unexpected(token, context);
      }
    }
  }

  checkPipeline(pipe: PipeNode, context: string): void {
    if (pipe.cmds.length === 0) this.errorf(`missing value for ${context}`);
    pipe.cmds.slice(1).forEach((c, i) => {
      const k = c.args[0].k;
      if (k === "bool" || k === "dot" || k === "nil" || k === "number" || k === "string") {
        this.errorf(`non executable command in pipeline stage ${i + 2}`);
      }
    });
  }

  control(context: "if" | "range" | "with"): Node {
    const nvars = this.vars.length;
    try {
      const pipe = this.pipeline(context, T.RightDelim);
      if (context === "range") this.rangeDepth++;
      let [list, next] = this.itemList();
      if (context === "range") this.rangeDepth--;
      let elseList: ListNode | undefined;
      if (next.k === "else") {
        if (context === "if" && this.peek().typ === T.If) {
          this.next();
          elseList = { k: "list", pos: next.pos, nodes: [this.control("if")] };
        } else if (context === "with" && this.peek().typ === T.With) {
          this.next();
          elseList = { k: "list", pos: next.pos, nodes: [this.control("with")] };
        } else {
          [elseList, next] = this.itemList();
          if (next.k !== "end") this.errorf(`expected end; found ${nodeString(next)}`);
        }
      }
      list = list ?? { k: "list", pos: 0, nodes: [] };
      return { k: context, pos: pipe.pos, line: pipe.line, pipe, list, elseList };
    } finally {
      this.vars.length = nvars;
    }
  }

  elseControl(): Node {
    const peek = this.peekNonSpace();
    if (peek.typ === T.If || peek.typ === T.With) {
      return { k: "else", pos: peek.pos, line: peek.line };
    }
    const token = this.expect(T.RightDelim, "else");
    return { k: "else", pos: token.pos, line: token.line };
  }

  parseTemplateName(token: Item, context: string): string {
    if (token.typ === T.String || token.typ === T.RawString) {
      try {
        return unquote(token.val);
      } catch (e) {
        this.errorf((e as Error).message);
      }
    }
    this.unexpected(token, context);
  }

  blockControl(): Node {
    const context = "block clause";
    const token = this.nextNonSpace();
    const name = this.parseTemplateName(token, context);
    const pipe = this.pipeline(context, T.RightDelim);
    const savedVars = this.vars;
    this.vars = ["$"];
    const [list, end] = this.itemList();
    this.vars = savedVars;
    if (end.k !== "end") this.errorf(`unexpected ${nodeString(end)} in ${context}`);
    this.addTree(name, list);
    return { k: "template", pos: token.pos, line: token.line, name, pipe };
  }

  templateControl(): Node {
    const context = "template clause";
    const token = this.nextNonSpace();
    const name = this.parseTemplateName(token, context);
    let pipe: PipeNode | undefined;
    if (this.nextNonSpace().typ !== T.RightDelim) {
      this.backup();
      pipe = this.pipeline(context, T.RightDelim);
    }
    return { k: "template", pos: token.pos, line: token.line, name, pipe };
  }

  command(): { k: "command"; pos: number; args: Node[] } {
    const cmd = { k: "command" as const, pos: this.peekNonSpace().pos, args: [] as Node[] };
    for (;;) {
      this.peekNonSpace();
      const operand = this.operand();
      if (operand) cmd.args.push(operand);
      const token = this.next();
      if (token.typ === T.Space) continue;
      if (token.typ === T.RightDelim || token.typ === T.RightParen) this.backup();
      else if (token.typ !== T.Pipe) this.unexpected(token, "operand");
      break;
    }
    if (cmd.args.length === 0) this.errorf("empty command");
    return cmd;
  }

  operand(): Node | undefined {
    let node = this.term();
    if (!node) return undefined;
    if (this.peek().typ === T.Field) {
      const pos = this.peek().pos;
      const fields: string[] = [];
      while (this.peek().typ === T.Field) fields.push(this.next().val.slice(1));
      const chain: Node = { k: "chain", pos, node, field: fields };
      switch (node.k) {
        case "field":
          node = { k: "field", pos, ident: nodeString(chain).slice(1).split(".") };
          break;
        case "variable":
          node = { k: "variable", pos, ident: nodeString(chain).split(".") };
          break;
        case "bool":
        case "string":
        case "number":
        case "nil":
        case "dot":
          this.errorf(`unexpected . after term ${JSON.stringify(nodeString(node))}`);
          break;
        default:
          node = chain;
      }
    }
    return node;
  }

  term(): Node | undefined {
    const token = this.nextNonSpace();
    switch (token.typ) {
      case T.Identifier:
        if (!TEMPLATE_FUNCS.includes(token.val)) {
          this.errorf(`function ${JSON.stringify(token.val)} not defined`);
        }
        return { k: "identifier", pos: token.pos, name: token.val };
      case T.Dot:
        return { k: "dot", pos: token.pos };
      case T.Nil:
        return { k: "nil", pos: token.pos };
      case T.Variable: {
        const ident = token.val.split(".");
        if (!this.vars.includes(ident[0])) {
          this.errorf(`undefined variable ${JSON.stringify(ident[0])}`);
        }
        return { k: "variable", pos: token.pos, ident };
      }
      case T.Field:
        return { k: "field", pos: token.pos, ident: token.val.slice(1).split(".") };
      case T.Bool:
        return { k: "bool", pos: token.pos, val: token.val === "true" };
      case T.CharConstant:
      case T.Complex:
      case T.Number:
        try {
          return parseNumberNode(token.pos, token.val, token.typ);
        } catch (e) {
          this.errorf((e as Error).message);
        }
        break;
      case T.LeftParen: {
        if (this.stackDepth >= 10000) this.errorf("max expression depth exceeded");
        this.stackDepth++;
        try {
          return this.pipeline("parenthesized pipeline", T.RightParen);
        } finally {
          this.stackDepth--;
        }
      }
      case T.String:
      case T.RawString:
        try {
          return { k: "string", pos: token.pos, quoted: token.val, text: unquote(token.val) };
        } catch (e) {
          this.errorf((e as Error).message);
        }
    }
    this.backup();
    return undefined;
  }
}

function isEmptyTree(n: Node): boolean {
  switch (n.k) {
    case "list":
      return n.nodes.every(isEmptyTree);
    case "text":
      return n.text.trim() === "";
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// Execution

class ExecFail extends Error {}
class BreakSignal {}
class ContinueSignal {}

const MISSING: GoValue = { type: undefined, value: Symbol("missing") };
const isMissing = (v: GoValue) => v === MISSING;

interface Func {
  /** Fixed parameter types (reflect.Value params are `undefined`) and variadic elem type. */
  params: (GoType | undefined | "string")[];
  variadic?: GoType | undefined | "any";
  isVariadic: boolean;
  call: (args: GoValue[]) => GoValue;
}

/** Thrown by builtins; becomes "error calling NAME: MSG". */
class CallError extends Error {}

function indirect(v: GoValue): { v: GoValue; isNil: boolean } {
  let cur = dynamic(v);
  while (cur.type && cur.type.kind === "ptr") {
    if (isNilJS(cur.value)) return { v: cur, isNil: true };
    cur = goValue(cur.type.elem, cur.value);
  }
  return { v: cur, isNil: false };
}

function isTrue(v: GoValue): { truth: boolean; ok: boolean } {
  const d = dynamic(v);
  const t = d.type;
  const x = d.value;
  if (!t) return { truth: false, ok: true };
  switch (t.kind) {
    case "string":
      return { truth: String(x ?? "").length > 0, ok: true };
    case "slice":
      return { truth: !isNilJS(x) && (x as unknown[]).length > 0, ok: true };
    case "map":
      return { truth: !isNilJS(x) && Object.keys(x as object).length > 0, ok: true };
    case "bool":
      return { truth: !!x, ok: true };
    case "ptr":
      return { truth: !isNilJS(x), ok: true };
    case "int":
    case "duration":
      return { truth: x !== undefined && x !== null && x !== 0 && x !== 0n, ok: true };
    case "float":
      return { truth: Number(x) !== 0, ok: true };
    case "struct":
    case "time":
      return { truth: true, ok: true };
    default:
      return { truth: false, ok: false };
  }
}

function length(v: GoValue): number {
  const { v: item, isNil } = indirect(v);
  if (isNil) throw new CallError("len of nil pointer");
  const t = item.type;
  if (!t) throw new CallError("len of untyped nil");
  switch (t.kind) {
    case "string":
      return new TextEncoder().encode(String(item.value ?? "")).length;
    case "slice":
      return isNilJS(item.value) ? 0 : (item.value as unknown[]).length;
    case "map":
      return isNilJS(item.value) ? 0 : Object.keys(item.value as object).length;
  }
  throw new CallError(`len of type ${typeName(t)}`);
}

function indexArg(index: GoValue, cap: number): number {
  const d = dynamic(index);
  if (!d.type) throw new CallError("cannot index slice/array with nil");
  if (d.type.kind !== "int") {
    throw new CallError(`cannot index slice/array with type ${typeName(d.type)}`);
  }
  const x = Number(d.value);
  if (x < 0 || x > cap) throw new CallError(`index out of range: ${x}`);
  return x;
}

function index(item: GoValue, indexes: GoValue[]): GoValue {
  let cur = dynamic(item);
  if (!cur.type) throw new CallError("index of untyped nil");
  for (const idx of indexes) {
    const ind = indirect(cur);
    if (ind.isNil) throw new CallError("index of nil pointer");
    cur = ind.v;
    const t = cur.type!;
    if (t.kind === "slice" || t.kind === "string") {
      if (t.kind === "string") {
        const bytes = new TextEncoder().encode(String(cur.value ?? ""));
        const x = indexArg(idx, bytes.length);
        if (x === bytes.length) throw new CallError("reflect: string index out of range");
        cur = goValue({ kind: "int", name: "uint8" }, bytes[x]);
        continue;
      }
      const arr = isNilJS(cur.value) ? [] : (cur.value as unknown[]);
      const x = indexArg(idx, arr.length);
      if (x === arr.length) throw new CallError("reflect: slice index out of range");
      cur = goValue(t.elem, arr[x]);
    } else if (t.kind === "map") {
      const k = dynamic(idx);
      if (!k.type) {
        throw new CallError(`value is nil; should be of type ${typeName(t.key)}`);
      }
      if (typeName(k.type) !== typeName(t.key)) {
        throw new CallError(`value has type ${typeName(k.type)}; should be ${typeName(t.key)}`);
      }
      const m = isNilJS(cur.value) ? {} : (cur.value as Record<string, unknown>);
      const key = String(k.value);
      cur = Object.hasOwn(m, key) ? goValue(t.elem, m[key]) : goValue(t.elem, zeroJS(t.elem));
    } else {
      throw new CallError(`can't index item of type ${typeName(t)}`);
    }
  }
  return cur;
}

function zeroJS(t: GoType): unknown {
  switch (t.kind) {
    case "string":
      return "";
    case "bool":
      return false;
    case "int":
    case "float":
    case "duration":
      return 0;
    case "struct":
      return {};
    case "time":
      return { seconds: -62135596800n, nanos: 0 };
    default:
      return null;
  }
}

function sliceFn(item: GoValue, indexes: GoValue[]): GoValue {
  const d0 = dynamic(item);
  if (!d0.type) throw new CallError("slice of untyped nil");
  const ind = indirect(d0);
  if (ind.isNil) throw new CallError("slice of nil pointer");
  const it = ind.v;
  const t = it.type!;
  if (indexes.length > 3) throw new CallError(`too many slice indexes: ${indexes.length}`);
  let len: number;
  if (t.kind === "string") {
    if (indexes.length === 3) throw new CallError("cannot 3-index slice a string");
    len = new TextEncoder().encode(String(it.value ?? "")).length;
  } else if (t.kind === "slice") {
    len = isNilJS(it.value) ? 0 : (it.value as unknown[]).length;
  } else throw new CallError(`can't slice item of type ${typeName(t)}`);
  const idx = [0, len, len];
  indexes.forEach((x, i) => idx[i] = indexArg(x, len));
  if (idx[0] > idx[1]) throw new CallError(`invalid slice index: ${idx[0]} > ${idx[1]}`);
  if (indexes.length === 3 && idx[1] > idx[2]) {
    throw new CallError(`invalid slice index: ${idx[1]} > ${idx[2]}`);
  }
  if (t.kind === "string") {
    const bytes = new TextEncoder().encode(String(it.value ?? "")).slice(idx[0], idx[1]);
    return goValue(t, new TextDecoder().decode(bytes));
  }
  if (isNilJS(it.value)) return goValue(t, null);
  return goValue(t, (it.value as unknown[]).slice(idx[0], idx[1]));
}

type Kind = "bool" | "int" | "float" | "string" | "invalid";
function basicKind(v: GoValue): Kind {
  const t = v.type;
  if (!t) return "invalid";
  switch (t.kind) {
    case "bool":
      return "bool";
    case "int":
    case "duration":
      return "int";
    case "float":
      return "float";
    case "string":
      return "string";
  }
  return "invalid";
}

function cmpVal(v: GoValue): number | bigint | string | boolean {
  const x = v.value;
  if (basicKind(v) === "int") return typeof x === "bigint" ? x : BigInt(Math.trunc(Number(x ?? 0)));
  if (basicKind(v) === "float") return Number(x);
  if (basicKind(v) === "string") return String(x ?? "");
  return !!x;
}

function eq(a1: GoValue, rest: GoValue[]): boolean {
  const arg1 = dynamic(a1);
  if (rest.length === 0) throw new CallError("missing argument for comparison");
  const k1 = basicKind(arg1);
  for (const r of rest) {
    const arg = dynamic(r);
    const k2 = basicKind(arg);
    let truth = false;
    if (k1 !== k2) {
      if (arg1.type && arg.type) {
        throw new CallError(
          `incompatible types for comparison: ${typeName(arg1.type)} and ${typeName(arg.type)}`,
        );
      }
    } else if (k1 === "invalid") {
      const n1 = !arg1.type || isNilJS(arg1.value);
      const n2 = !arg.type || isNilJS(arg.value);
      if (n1 || n2) truth = n1 === n2;
      else throw new CallError(`non-comparable type ${formatValue(arg)}: ${typeName(arg.type)}`);
    } else {
      truth = cmpVal(arg1) === cmpVal(arg);
    }
    if (truth) return true;
  }
  return false;
}

function lt(a1: GoValue, a2: GoValue): boolean {
  const arg1 = dynamic(a1);
  const arg2 = dynamic(a2);
  const k1 = basicKind(arg1);
  const k2 = basicKind(arg2);
  if (k1 === "invalid" || k2 === "invalid") throw new CallError("invalid type for comparison");
  if (k1 !== k2) {
    throw new CallError(
      `incompatible types for comparison: ${typeName(arg1.type)} and ${typeName(arg2.type)}`,
    );
  }
  if (k1 === "bool") throw new CallError("invalid type for comparison");
  return (cmpVal(arg1) as number) < (cmpVal(arg2) as number);
}

function evalArgsString(args: GoValue[]): string {
  if (args.length === 1) {
    const d = dynamic(args[0]);
    if (d.type?.kind === "string") return String(d.value ?? "");
  }
  return sprint(args);
}

function htmlEscape(s: string): string {
  return s.replace(
    /[\0"'&<>]/g,
    (c) =>
      ({ "\0": "\uFFFD", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]!,
  );
}

function jsEscape(s: string): string {
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case "\\":
        out += "\\\\";
        break;
      case "'":
        out += "\\'";
        break;
      case '"':
        out += '\\"';
        break;
      case "<":
        out += "\\u003C";
        break;
      case ">":
        out += "\\u003E";
        break;
      case "&":
        out += "\\u0026";
        break;
      case "=":
        out += "\\u003D";
        break;
      default:
        if (c < 0x20) out += "\\u" + c.toString(16).toUpperCase().padStart(4, "0");
        else out += ch;
    }
  }
  return out;
}

function urlQueryEscape(s: string): string {
  let out = "";
  for (const b of new TextEncoder().encode(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === " ") out += "+";
    else out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

const builtins: Record<string, Func> = {
  and: { params: [undefined], isVariadic: true, call: () => noValue },
  or: { params: [undefined], isVariadic: true, call: () => noValue },
  not: {
    params: [undefined],
    isVariadic: false,
    call: ([a]) => goValue(tBool, !isTrue(a).truth),
  },
  len: { params: [undefined], isVariadic: false, call: ([a]) => goValue(tInt, length(a)) },
  index: { params: [undefined], isVariadic: true, call: ([a, ...r]) => index(a, r) },
  slice: { params: [undefined], isVariadic: true, call: ([a, ...r]) => sliceFn(a, r) },
  print: {
    params: [],
    variadic: "any",
    isVariadic: true,
    call: (a) => goValue(tString, sprint(a)),
  },
  println: {
    params: [],
    variadic: "any",
    isVariadic: true,
    call: (a) => goValue(tString, sprintln(a)),
  },
  printf: {
    params: ["string"],
    variadic: "any",
    isVariadic: true,
    call: ([f, ...a]) => goValue(tString, sprintf(String(f.value ?? ""), a)),
  },
  eq: { params: [undefined], isVariadic: true, call: ([a, ...r]) => goValue(tBool, eq(a, r)) },
  ne: {
    params: [undefined, undefined],
    isVariadic: false,
    call: ([a, b]) => goValue(tBool, !eq(a, [b])),
  },
  lt: {
    params: [undefined, undefined],
    isVariadic: false,
    call: ([a, b]) => goValue(tBool, lt(a, b)),
  },
  le: {
    params: [undefined, undefined],
    isVariadic: false,
    call: ([a, b]) => goValue(tBool, lt(a, b) || eq(a, [b])),
  },
  gt: {
    params: [undefined, undefined],
    isVariadic: false,
    call: ([a, b]) => goValue(tBool, !(lt(a, b) || eq(a, [b]))),
  },
  ge: {
    params: [undefined, undefined],
    isVariadic: false,
    call: ([a, b]) => goValue(tBool, !lt(a, b)),
  },
  html: {
    params: [],
    variadic: "any",
    isVariadic: true,
    call: (a) => goValue(tString, htmlEscape(evalArgsString(a))),
  },
  js: {
    params: [],
    variadic: "any",
    isVariadic: true,
    call: (a) => goValue(tString, jsEscape(evalArgsString(a))),
  },
  urlquery: {
    params: [],
    variadic: "any",
    isVariadic: true,
    call: (a) => goValue(tString, urlQueryEscape(evalArgsString(a))),
  },
  call: {
    params: [undefined],
    isVariadic: true,
    call: () => {
      throw new CallError("non-function of type");
    },
  },
  json: {
    params: [tAny],
    isVariadic: false,
    call: ([a]) => goValue(tString, encodeJSON(a).trim()),
  },
};

function civilMethod(field: "year" | "day" | "hour" | "min" | "sec" | "yday"): Func {
  const layouts = { year: "2006", day: "2", hour: "15", min: "4", sec: "5", yday: "002" };
  return {
    params: [],
    isVariadic: false,
    call: ([r]) => goValue(tInt, Number(formatGoTime(r.value as GoTime, layouts[field]))),
  };
}

/** Methods available on time.Time / time.Duration values (a practical subset). */
function findMethod(t: GoType | undefined, name: string): Func | undefined {
  if (!t) return undefined;
  const base = t.kind === "ptr" ? t.elem : t;
  if (base.kind === "time") {
    const tv = (a: GoValue) => a.value as GoTime;
    const m: Record<string, Func> = {
      String: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tString, goTimeString(tv(r))),
      },
      Format: {
        params: ["string"],
        isVariadic: false,
        call: ([r, l]) => goValue(tString, formatGoTime(tv(r), String(l.value), UTC)),
      },
      Unix: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tInt64, goTimeParts(tv(r)).sec),
      },
      UnixMilli: {
        params: [],
        isVariadic: false,
        call: ([r]) => {
          const p = goTimeParts(tv(r));
          return goValue(tInt64, p.sec * 1000n + BigInt(Math.floor(p.nsec / 1e6)));
        },
      },
      UnixNano: {
        params: [],
        isVariadic: false,
        call: ([r]) => {
          const p = goTimeParts(tv(r));
          return goValue(tInt64, p.sec * 1_000_000_000n + BigInt(p.nsec));
        },
      },
      IsZero: {
        params: [],
        isVariadic: false,
        call: ([r]) => {
          const p = goTimeParts(tv(r));
          return goValue(tBool, p.sec === -62135596800n && p.nsec === 0);
        },
      },
      UTC: { params: [], isVariadic: false, call: ([r]) => goValue({ kind: "time" }, r.value) },
      Year: civilMethod("year"),
      Day: civilMethod("day"),
      Hour: civilMethod("hour"),
      Minute: civilMethod("min"),
      Second: civilMethod("sec"),
      YearDay: civilMethod("yday"),
      Nanosecond: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tInt, goTimeParts(tv(r)).nsec),
      },
      Month: {
        params: [],
        isVariadic: false,
        call: ([r]) =>
          goValue({ kind: "string", name: "time.Month" }, formatGoTime(tv(r), "January")),
      },
      Weekday: {
        params: [],
        isVariadic: false,
        call: ([r]) =>
          goValue({ kind: "string", name: "time.Weekday" }, formatGoTime(tv(r), "Monday")),
      },
    };
    return m[name];
  }
  if (base.kind === "duration") {
    const ns = (a: GoValue) => BigInt(a.value as number | bigint);
    const m: Record<string, Func> = {
      String: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tString, formatGoDuration(ns(r))),
      },
      Nanoseconds: { params: [], isVariadic: false, call: ([r]) => goValue(tInt64, ns(r)) },
      Microseconds: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tInt64, ns(r) / 1000n),
      },
      Milliseconds: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tInt64, ns(r) / 1_000_000n),
      },
      Seconds: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tFloat64, Number(ns(r)) / 1e9),
      },
      Minutes: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tFloat64, Number(ns(r)) / 6e10),
      },
      Hours: {
        params: [],
        isVariadic: false,
        call: ([r]) => goValue(tFloat64, Number(ns(r)) / 3.6e12),
      },
    };
    return m[name];
  }
  return undefined;
}

interface Variable {
  name: string;
  value: GoValue;
}

class State {
  out = "";
  node: Node | undefined;
  vars: Variable[];
  depth = 0;
  constructor(readonly text: string, readonly trees: Map<string, ListNode>, data: GoValue) {
    this.vars = [{ name: "$", value: data }];
  }

  at(n: Node): void {
    this.node = n;
  }

  errorf(msg: string): never {
    if (!this.node) throw new ExecFail(`template: : ${msg}`);
    const pos = this.node.pos;
    const before = this.text.slice(0, pos);
    const nl = before.lastIndexOf("\n");
    const lineText = nl === -1 ? before : before.slice(nl + 1);
    const col = new TextEncoder().encode(lineText).length;
    const line = 1 + count(before, "\n");
    throw new ExecFail(
      `template: :${line}:${col}: executing "" at <${nodeString(this.node)}>: ${msg}`,
    );
  }

  mark(): number {
    return this.vars.length;
  }
  pop(m: number): void {
    this.vars.length = m;
  }
  push(name: string, value: GoValue): void {
    this.vars.push({ name, value });
  }
  setVar(name: string, value: GoValue): void {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i].name === name) {
        this.vars[i].value = value;
        return;
      }
    }
    this.errorf(`undefined variable: ${name}`);
  }
  setTopVar(n: number, value: GoValue): void {
    this.vars[this.vars.length - n].value = value;
  }
  varValue(name: string): GoValue {
    for (let i = this.vars.length - 1; i >= 0; i--) {
      if (this.vars[i].name === name) return this.vars[i].value;
    }
    this.errorf(`undefined variable: ${name}`);
  }

  walk(dot: GoValue, node: Node): void {
    this.at(node);
    switch (node.k) {
      case "action": {
        const val = this.evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.printValue(node, val);
        break;
      }
      case "break":
        throw new BreakSignal();
      case "continue":
        throw new ContinueSignal();
      case "if":
      case "with":
        this.walkIfOrWith(node.k, dot, node.pipe, node.list, node.elseList);
        break;
      case "list":
        for (const n of node.nodes) this.walk(dot, n);
        break;
      case "range":
        this.walkRange(dot, node);
        break;
      case "template": {
        const tree = this.trees.get(node.name);
        if (!tree) this.errorf(`template ${JSON.stringify(node.name)} not defined`);
        if (this.depth >= 100000) this.errorf("exceeded maximum template depth (100000)");
        const newDot = node.pipe ? this.evalPipeline(dot, node.pipe) : noValue;
        const saved = this.vars;
        this.vars = [{ name: "$", value: newDot }];
        this.depth++;
        try {
          this.walk(newDot, tree);
        } finally {
          this.depth--;
          this.vars = saved;
        }
        break;
      }
      case "text":
        this.out += node.text;
        break;
      default:
        this.errorf(`unknown node: ${nodeString(node)}`);
    }
  }

  walkIfOrWith(
    typ: "if" | "with",
    dot: GoValue,
    pipe: PipeNode,
    list: ListNode,
    elseList: ListNode | undefined,
  ): void {
    const m = this.mark();
    try {
      const val = this.evalPipeline(dot, pipe);
      const { truth, ok } = isTrue(val);
      if (!ok) this.errorf(`if/with can't use ${formatValue(val)}`);
      if (truth) this.walk(typ === "with" ? val : dot, list);
      else if (elseList) this.walk(dot, elseList);
    } finally {
      this.pop(m);
    }
  }

  walkRange(dot: GoValue, r: BranchNode): void {
    this.at(r);
    const m0 = this.mark();
    try {
      const val = indirect(this.evalPipeline(dot, r.pipe)).v;
      const mark = this.mark();
      const oneIteration = (idx: GoValue, elem: GoValue) => {
        const decl = r.pipe.decl;
        if (decl.length > 0) {
          if (r.pipe.isAssign) {
            if (decl.length > 1) this.setVar(decl[0].ident[0], idx);
            else this.setVar(decl[0].ident[0], elem);
          } else this.setTopVar(1, elem);
        }
        if (decl.length > 1) {
          if (r.pipe.isAssign) this.setVar(decl[1].ident[0], elem);
          else this.setTopVar(2, idx);
        }
        try {
          this.walk(elem, r.list);
        } catch (e) {
          if (!(e instanceof ContinueSignal)) throw e;
        } finally {
          this.pop(mark);
        }
      };
      const t = val.type;
      let ran = false;
      try {
        if (!t) {
          // invalid value: acts like an empty map
        } else if (t.kind === "int") {
          if (r.pipe.decl.length > 1) {
            this.errorf(`can't use ${formatValue(val)} to iterate over more than one variable`);
          }
          const n = Number(val.value);
          for (let i = 0; i < n; i++) {
            ran = true;
            oneIteration(noValue, goValue(t, i));
          }
        } else if (t.kind === "slice") {
          const arr = isNilJS(val.value) ? [] : (val.value as unknown[]);
          for (let i = 0; i < arr.length; i++) {
            ran = true;
            oneIteration(goValue(tInt, i), goValue(t.elem, arr[i]));
          }
        } else if (t.kind === "map") {
          const mm = isNilJS(val.value) ? {} : (val.value as Record<string, unknown>);
          for (const k of sortedMapKeys(mm)) {
            ran = true;
            oneIteration(goValue(t.key, k), goValue(t.elem, mm[k]));
          }
        } else {
          this.errorf(`range can't iterate over ${formatValue(val)}`);
        }
      } catch (e) {
        if (!(e instanceof BreakSignal)) throw e;
        return;
      }
      if (!ran && r.elseList) this.walk(dot, r.elseList);
    } finally {
      this.pop(m0);
    }
  }

  evalPipeline(dot: GoValue, pipe: PipeNode | undefined): GoValue {
    if (!pipe) return noValue;
    this.at(pipe);
    let value = MISSING;
    for (const cmd of pipe.cmds) {
      value = this.evalCommand(dot, cmd, value);
      if (value.type?.kind === "any") value = dynamic(value);
    }
    for (const v of pipe.decl) {
      if (pipe.isAssign) this.setVar(v.ident[0], value);
      else this.push(v.ident[0], value);
    }
    return value;
  }

  notAFunction(args: Node[], final: GoValue): void {
    if (args.length > 1 || !isMissing(final)) {
      this.errorf(`can't give argument to non-function ${nodeString(args[0])}`);
    }
  }

  evalCommand(
    dot: GoValue,
    cmd: { k: "command"; pos: number; args: Node[] },
    final: GoValue,
  ): GoValue {
    const first = cmd.args[0];
    switch (first.k) {
      case "field":
        this.at(first);
        return this.evalFieldChain(dot, dot, first, first.ident, cmd.args, final);
      case "chain":
        return this.evalChainNode(dot, first, cmd.args, final);
      case "identifier":
        return this.evalFunction(dot, first, cmd, cmd.args, final);
      case "pipe":
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first);
      case "variable":
        return this.evalVariableNode(dot, first, cmd.args, final);
    }
    this.at(first);
    this.notAFunction(cmd.args, final);
    switch (first.k) {
      case "bool":
        return goValue(tBool, first.val);
      case "dot":
        return dot;
      case "nil":
        this.errorf("nil is not a command");
        break;
      case "number":
        return this.idealConstant(first);
      case "string":
        return goValue(tString, first.text);
    }
    this.errorf(`can't evaluate command ${JSON.stringify(nodeString(first))}`);
  }

  idealConstant(n: NumberNode): GoValue {
    this.at(n);
    const t = n.text;
    const isHex = t.length > 2 && t[0] === "0" && (t[1] === "x" || t[1] === "X") && !/[pP]/.test(t);
    if (n.isFloat && !isHex && t[0] !== "'" && /[.eEpP]/.test(t)) return goValue(tFloat64, n.float);
    if (n.isInt) return goValue(tInt, n.int);
    if (n.isUint) this.errorf(`${t} overflows int`);
    return noValue;
  }

  evalChainNode(
    dot: GoValue,
    chain: Extract<Node, { k: "chain" }>,
    args: Node[],
    final: GoValue,
  ): GoValue {
    this.at(chain);
    if (chain.node.k === "nil") {
      this.errorf(`indirection through explicit nil in ${nodeString(chain)}`);
    }
    const pipe = this.evalArg(dot, undefined, chain.node);
    return this.evalFieldChain(dot, pipe, chain, chain.field, args, final);
  }

  evalVariableNode(
    dot: GoValue,
    v: Extract<Node, { k: "variable" }>,
    args: Node[],
    final: GoValue,
  ): GoValue {
    this.at(v);
    const value = this.varValue(v.ident[0]);
    if (v.ident.length === 1) {
      this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(dot, value, v, v.ident.slice(1), args, final);
  }

  evalFieldChain(
    dot: GoValue,
    receiver: GoValue,
    node: Node,
    ident: string[],
    args: Node[],
    final: GoValue,
  ): GoValue {
    const n = ident.length;
    for (let i = 0; i < n - 1; i++) {
      receiver = this.evalField(dot, ident[i], node, [], MISSING, receiver);
    }
    return this.evalField(dot, ident[n - 1], node, args, final, receiver);
  }

  evalFunction(
    dot: GoValue,
    node: Extract<Node, { k: "identifier" }>,
    cmd: Node,
    args: Node[],
    final: GoValue,
  ): GoValue {
    this.at(node);
    const fn = builtins[node.name];
    if (!fn) this.errorf(`${JSON.stringify(node.name)} is not a defined function`);
    return this.evalCall(dot, fn, true, cmd, node.name, args, final);
  }

  evalField(
    dot: GoValue,
    fieldName: string,
    node: Node,
    args: Node[],
    final: GoValue,
    receiver: GoValue,
  ): GoValue {
    if (!receiver.type) return noValue;
    const recv = dynamic(receiver);
    if (!recv.type) this.errorf(`nil pointer evaluating interface {}.${fieldName}`);
    const typ = recv.type;
    const { v: r, isNil } = indirect(recv);
    const method = findMethod(typ, fieldName);
    if (method) {
      if (isNil) {
        const base = typeName(typ).replace(/^\*+/, "");
        const short = base.slice(base.lastIndexOf(".") + 1);
        // Go calls the value method through the nil pointer, which fails inside the call.
        this.errorf(
          `error calling ${fieldName}: value method ${base}.${fieldName} called using nil *${short} pointer`,
        );
      }
      return this.evalCall(dot, method, false, node, fieldName, args, final, r);
    }
    const hasArgs = args.length > 1 || !isMissing(final);
    const rt = r.type!;
    if (rt.kind === "struct" && !isNil) {
      const f = rt.fields.find((x) => x.name === fieldName);
      if (f) {
        if (hasArgs) this.errorf(`${fieldName} has arguments but cannot be invoked as function`);
        const o = (r.value ?? {}) as Record<string, unknown>;
        return goValue(f.type, o[f.name]);
      }
    } else if (rt.kind === "map" && !isNil && rt.key.kind === "string") {
      if (hasArgs) this.errorf(`${fieldName} is not a method but has arguments`);
      const m = isNilJS(r.value) ? {} : (r.value as Record<string, unknown>);
      if (!Object.hasOwn(m, fieldName)) return noValue;
      return goValue(rt.elem, m[fieldName]);
    } else if (rt.kind === "ptr" && isNil) {
      const et = rt.elem;
      if (et.kind !== "struct" || et.fields.some((x) => x.name === fieldName)) {
        this.errorf(`nil pointer evaluating ${typeName(typ)}.${fieldName}`);
      }
    }
    this.errorf(`can't evaluate field ${fieldName} in type ${typeName(typ)}`);
  }

  evalCall(
    dot: GoValue,
    fn: Func,
    isBuiltin: boolean,
    node: Node,
    name: string,
    args: Node[],
    final: GoValue,
    receiver?: GoValue,
  ): GoValue {
    const argNodes = args.slice(1);
    let numIn = argNodes.length;
    if (!isMissing(final)) numIn++;
    const totalParams = fn.params.length + (fn.isVariadic ? 1 : 0);
    let numFixed = argNodes.length;
    if (fn.isVariadic) {
      numFixed = totalParams - 1;
      if (numIn < numFixed) {
        this.errorf(
          `wrong number of args for ${name}: want at least ${
            totalParams - 1
          } got ${argNodes.length}`,
        );
      }
    } else if (numIn !== totalParams) {
      this.errorf(`wrong number of args for ${name}: want ${totalParams} got ${numIn}`);
    }
    const paramType = (i: number): GoType | undefined | "string" | "any" => {
      if (i < numFixed) return fn.params[i];
      if (fn.isVariadic) {
        if (fn.variadic !== undefined) return fn.variadic;
        return undefined; // ...reflect.Value
      }
      return fn.params[i];
    };
    if (isBuiltin && (name === "and" || name === "or")) {
      let v: GoValue = noValue;
      for (const a of argNodes) {
        v = this.evalArg(dot, undefined, a);
        if (isTrue(v).truth === (name === "or")) return v;
      }
      if (!isMissing(final)) v = final;
      return v;
    }
    const argv: GoValue[] = [];
    let i = 0;
    for (; i < argNodes.length; i++) argv.push(this.evalArg(dot, paramType(i), argNodes[i]));
    if (!isMissing(final)) argv.push(this.validateType(final, paramType(i)));
    try {
      return receiver ? fn.call([receiver, ...argv]) : fn.call(argv);
    } catch (e) {
      if (e instanceof CallError) {
        this.at(node);
        this.errorf(`error calling ${name}: ${e.message}`);
      }
      throw e;
    }
  }

  validateType(value: GoValue, typ: GoType | undefined | "string" | "any"): GoValue {
    if (!value.type) {
      if (typ === undefined || typ === "any" || (typeof typ === "object" && typ.kind === "any")) {
        return value;
      }
      if (typ === "string") this.errorf("invalid value; expected string");
      if (["ptr", "slice", "map"].includes(typ.kind)) return goValue(typ, null);
      this.errorf(`invalid value; expected ${typeName(typ)}`);
    }
    if (typ === "string") {
      const t = value.type;
      if (t.kind === "string" && !t.name) return value;
      if (t.kind === "ptr" && t.elem.kind === "string" && !t.elem.name) {
        if (isNilJS(value.value)) this.errorf("dereference of nil pointer of type string");
        return goValue(t.elem, value.value);
      }
      this.errorf(`wrong type for value; expected string; got ${typeName(t)}`);
    }
    return value;
  }

  evalArg(dot: GoValue, typ: GoType | undefined | "string" | "any", n: Node): GoValue {
    this.at(n);
    switch (n.k) {
      case "dot":
        return this.validateType(dot, typ);
      case "nil":
        if (typ === undefined || typ === "any" || (typeof typ === "object" && typ.kind === "any")) {
          return noValue;
        }
        this.errorf(`cannot assign nil to ${typ === "string" ? "string" : typeName(typ)}`);
        break;
      case "field":
        this.at(n);
        return this.validateType(this.evalFieldChain(dot, dot, n, n.ident, [n], MISSING), typ);
      case "variable":
        return this.validateType(this.evalVariableNode(dot, n, [], MISSING), typ);
      case "pipe":
        return this.validateType(this.evalPipeline(dot, n), typ);
      case "identifier":
        return this.validateType(this.evalFunction(dot, n, n, [], MISSING), typ);
      case "chain":
        return this.validateType(this.evalChainNode(dot, n, [], MISSING), typ);
    }
    if (typ === "string") {
      if (n.k === "string") return goValue(tString, n.text);
      this.errorf(`expected string; found ${nodeString(n)}`);
    }
    // empty interface or reflect.Value
    switch (n.k) {
      case "bool":
        return goValue(tBool, n.val);
      case "number":
        return this.idealConstant(n);
      case "string":
        return goValue(tString, n.text);
    }
    this.errorf(`can't handle assignment of ${nodeString(n)} to empty interface argument`);
  }

  printValue(n: Node, v: GoValue): void {
    this.at(n);
    let pv = dynamic(v);
    if (pv.type?.kind === "ptr") {
      const ind = indirect(pv);
      pv = ind.v;
    }
    if (!pv.type) {
      this.out += "<no value>";
      return;
    }
    this.out += formatValue(pv);
  }
}

/** A parsed template. */
export interface Template {
  /** The (alias-expanded) template text. */
  readonly text: string;
  /** Executes the template on typed data, returning the output. Throws {@link TemplateError}. */
  execute(data: GoValue): string;
}

/**
 * Parses a buildctl `--format` template like `bccommon.ParseTemplate`: the alias `json` expands to
 * `{{json .}}`. Throws a {@link TemplateError} with Go's message on syntax errors.
 */
export function parseTemplate(format: string): Template {
  const text = format === "json" ? "{{json .}}" : format;
  const trees = new Map<string, ListNode>();
  let root: ListNode;
  try {
    const p = new Parser(text, trees);
    root = p.parse();
    p.addTree("", root);
  } catch (e) {
    if (e instanceof ParseFail) throw new TemplateError(e.message, text);
    throw e;
  }
  const main = trees.get("") ?? root;
  return {
    text,
    execute(data: GoValue): string {
      const s = new State(text, trees, data);
      try {
        s.walk(data, main);
      } catch (e) {
        if (e instanceof ExecFail) throw new TemplateError(e.message, text, s.out);
        if (e instanceof BreakSignal || e instanceof ContinueSignal) return s.out;
        throw e;
      }
      return s.out;
    },
  };
}

/** Parses and executes `format` on `data` (typed with `type`); the result has no trailing newline. */
export function executeTemplate(format: string, type: GoType, data: unknown): string {
  return parseTemplate(format).execute(goValue(type, data));
}
