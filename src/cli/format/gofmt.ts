/**
 * A subset of Go's `fmt` (Sprint, Sprintln, Sprintf) over typed {@link GoValue}s, as needed by the
 * template builtins `print`, `println` and `printf`.
 *
 * @module
 */

import {
  dynamic,
  formatValue,
  type GoValue,
  goValue,
  isNilJS,
  sortedMapKeys,
  typeName,
} from "./gotypes.ts";
import { formatGoDuration, formatGoFloat, type GoTime, goTimeString } from "./units.ts";

function isStringKind(v: GoValue): boolean {
  const d = dynamic(v);
  return d.type?.kind === "string";
}

/** Go `fmt.Sprint`: operands in `%v`, spaces between operands when neither is a string. */
export function sprint(args: GoValue[]): string {
  let out = "";
  let prevString = false;
  args.forEach((a, i) => {
    const isString = isStringKind(a);
    if (i > 0 && !isString && !prevString) out += " ";
    out += formatValue(a);
    prevString = isString;
  });
  return out;
}

/** Go `fmt.Sprintln`: operands in `%v`, always space-separated, newline appended. */
export function sprintln(args: GoValue[]): string {
  return args.map((a) => formatValue(a)).join(" ") + "\n";
}

const printableRe = /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u;

/** Go `strconv.Quote`. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === "\\") {
      out += "\\" + ch;
      continue;
    }
    if (ch === " " || (c >= 0x20 && c < 0x7f) || (c >= 0x80 && printableRe.test(ch))) {
      if (c >= 0xd800 && c <= 0xdfff) out += "\\ufffd";
      else out += ch;
      continue;
    }
    switch (ch) {
      case "\x07":
        out += "\\a";
        break;
      case "\b":
        out += "\\b";
        break;
      case "\f":
        out += "\\f";
        break;
      case "\n":
        out += "\\n";
        break;
      case "\r":
        out += "\\r";
        break;
      case "\t":
        out += "\\t";
        break;
      case "\v":
        out += "\\v";
        break;
      default:
        if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
        else if (c < 0x10000) out += "\\u" + c.toString(16).padStart(4, "0");
        else out += "\\U" + c.toString(16).padStart(8, "0");
    }
  }
  return out + '"';
}

interface Spec {
  minus: boolean;
  plus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  plusV?: boolean;
  width?: number;
  prec?: number;
  verb: string;
}

function pad(s: string, spec: Spec, numeric = false): string {
  const w = spec.width;
  if (w === undefined) return s;
  const len = [...s].length;
  if (len >= w) return s;
  if (spec.minus) return s + " ".repeat(w - len);
  if (spec.zero && numeric) {
    const sign = s[0] === "-" || s[0] === "+" || s[0] === " " ? s[0] : "";
    return sign + "0".repeat(w - len) + s.slice(sign.length);
  }
  return " ".repeat(w - len) + s;
}

function badVerb(spec: Spec, v: GoValue): string {
  if (!v.type || (dynamic(v).type === undefined)) return `%!${spec.verb}(<nil>)`;
  const d = dynamic(v);
  return `%!${spec.verb}(${typeName(d.type)}=${formatValue(d)})`;
}

function toBig(x: unknown): bigint {
  if (typeof x === "bigint") return x;
  if (typeof x === "number") return BigInt(Math.trunc(x));
  return 0n;
}

function fmtInt(n: bigint, spec: Spec): string {
  const neg = n < 0n;
  const a = neg ? -n : n;
  let s: string;
  switch (spec.verb) {
    case "d":
    case "v":
      s = a.toString();
      break;
    case "x":
      s = a.toString(16);
      if (spec.sharp) s = "0x" + s;
      break;
    case "X":
      s = a.toString(16).toUpperCase();
      if (spec.sharp) s = "0X" + s;
      break;
    case "o":
      s = a.toString(8);
      if (spec.sharp) s = "0" + s;
      break;
    case "b":
      s = a.toString(2);
      break;
    default:
      s = a.toString();
  }
  if (spec.prec !== undefined) s = s.padStart(spec.prec, "0");
  const sign = neg ? "-" : spec.plus ? "+" : spec.space ? " " : "";
  return pad(sign + s, spec, spec.prec === undefined);
}

function fmtFloat(f: number, spec: Spec): string {
  let s: string;
  const verb = spec.verb === "v" ? "g" : spec.verb === "F" ? "f" : spec.verb;
  const prec = spec.prec ?? (verb === "g" || verb === "G" ? -1 : 6);
  s = formatGoFloat(f, verb as "e" | "f" | "g" | "E" | "G", prec);
  if (spec.plus && !s.startsWith("-") && !s.startsWith("+")) s = "+" + s;
  else if (spec.space && !s.startsWith("-") && !s.startsWith("+")) s = " " + s;
  if (s === "+Inf" && !spec.plus) s = spec.space ? " Inf" : "+Inf";
  return pad(s, spec, Number.isFinite(f));
}

function fmtString(s: string, spec: Spec): string {
  if (spec.prec !== undefined) s = [...s].slice(0, spec.prec).join("");
  switch (spec.verb) {
    case "q":
      return pad(spec.sharp && !s.includes("`") ? "`" + s + "`" : goQuote(s), spec);
    case "x":
    case "X": {
      let h = [...new TextEncoder().encode(s)].map((b) => b.toString(16).padStart(2, "0")).join(
        spec.space ? " " : "",
      );
      if (spec.verb === "X") h = h.toUpperCase();
      return pad(h, spec);
    }
    default:
      return pad(s, spec);
  }
}

/** Formats one operand for a verb, like Go's `printArg`/`printValue`. */
function fmtArg(v: GoValue, spec: Spec, depth: number): string {
  const d = dynamic(v);
  const t = d.type;
  const x = d.value;
  if (!t) {
    if (spec.verb === "T" || spec.verb === "v") return pad("<nil>", spec);
    return badVerb(spec, d);
  }
  if (spec.verb === "T") return pad(typeName(t), spec);
  // Stringers: time.Time, time.Duration and pointers to them.
  const stringerKind = t.kind === "time" || t.kind === "duration" ||
    (t.kind === "ptr" && (t.elem.kind === "time" || t.elem.kind === "duration"));
  if (
    stringerKind &&
    (spec.verb === "v" || spec.verb === "s" || spec.verb === "q" || spec.verb === "x" ||
      spec.verb === "X")
  ) {
    let s: string;
    if (t.kind === "ptr") {
      if (isNilJS(x)) s = "<nil>";
      else s = t.elem.kind === "time" ? goTimeString(x as GoTime) : formatGoDuration(x as number);
    } else s = t.kind === "time" ? goTimeString(x as GoTime) : formatGoDuration((x ?? 0) as number);
    return fmtString(s, spec);
  }
  switch (t.kind) {
    case "bool":
      if (spec.verb === "t" || spec.verb === "v") return pad(x ? "true" : "false", spec);
      return badVerb(spec, d);
    case "int":
    case "duration":
      if ("vdxXob".includes(spec.verb)) return fmtInt(toBig(x), spec);
      if (spec.verb === "c") return pad(String.fromCodePoint(Number(toBig(x))), spec);
      if (spec.verb === "U") {
        const cp = Number(toBig(x));
        let u = "U+" + cp.toString(16).toUpperCase().padStart(4, "0");
        if (spec.sharp) u += " '" + String.fromCodePoint(cp) + "'";
        return pad(u, spec);
      }
      if (spec.verb === "q") return pad("'" + String.fromCodePoint(Number(toBig(x))) + "'", spec);
      return badVerb(spec, d);
    case "float":
      if ("veEfFgG".includes(spec.verb)) return fmtFloat(Number(x), spec);
      return badVerb(spec, d);
    case "string":
      if ("vsqxX".includes(spec.verb)) return fmtString(String(x ?? ""), spec);
      return badVerb(spec, d);
    case "ptr":
      if (isNilJS(x)) {
        if (spec.verb === "v" || spec.verb === "s") return pad("<nil>", spec);
        return badVerb(spec, d);
      }
      if (
        depth === 0 &&
        (t.elem.kind === "struct" || t.elem.kind === "slice" || t.elem.kind === "map")
      ) {
        return "&" + fmtArg(goValue(t.elem, x), spec, depth + 1);
      }
      return pad(formatValue(d, depth + 1), spec);
    case "slice": {
      const arr = isNilJS(x) ? [] : (x as unknown[]);
      return "[" + arr.map((e) => fmtArg(goValue(t.elem, e), spec, depth + 1)).join(" ") + "]";
    }
    case "map": {
      const m = isNilJS(x) ? {} : (x as Record<string, unknown>);
      return "map[" +
        sortedMapKeys(m).map((k) =>
          fmtArg(goValue(t.key, k), spec, depth + 1) + ":" +
          fmtArg(goValue(t.elem, m[k]), spec, depth + 1)
        ).join(" ") + "]";
    }
    case "struct": {
      const o = (x ?? {}) as Record<string, unknown>;
      return "{" + t.fields.map((f) =>
        (spec.plusV ? f.name + ":" : "") +
        fmtArg(goValue(f.type, o[f.name]), spec, depth + 1)
      ).join(" ") + "}";
    }
    default:
      return pad(formatValue(d, depth), spec);
  }
}

/** Go `fmt.Sprintf` (common verbs: v s d q t f e g x X o b c T %; flags `-+# 0`, width, precision). */
export function sprintf(format: string, args: GoValue[]): string {
  let out = "";
  let argNum = 0;
  let i = 0;
  const n = format.length;
  while (i < n) {
    const ch = format[i];
    if (ch !== "%") {
      out += ch;
      i++;
      continue;
    }
    i++;
    const spec: Spec = {
      minus: false,
      plus: false,
      sharp: false,
      space: false,
      zero: false,
      verb: "",
    };
    for (; i < n; i++) {
      const c = format[i];
      if (c === "-") spec.minus = true;
      else if (c === "+") spec.plus = true;
      else if (c === "#") spec.sharp = true;
      else if (c === " ") spec.space = true;
      else if (c === "0") spec.zero = !spec.minus;
      else break;
    }
    const num = () => {
      let s = "";
      while (i < n && format[i] >= "0" && format[i] <= "9") s += format[i++];
      return s === "" ? undefined : Number(s);
    };
    if (format[i] === "*") {
      i++;
      const a = args[argNum++];
      const dv = a ? dynamic(a) : undefined;
      if (dv?.type?.kind === "int") {
        spec.width = Number(dv.value);
        if (spec.width < 0) {
          spec.minus = true;
          spec.width = -spec.width;
        }
      } else out += "%!(BADWIDTH)";
    } else spec.width = num();
    if (format[i] === ".") {
      i++;
      if (format[i] === "*") {
        i++;
        const a = args[argNum++];
        const dv = a ? dynamic(a) : undefined;
        if (dv?.type?.kind === "int") spec.prec = Number(dv.value);
        else out += "%!(BADPREC)";
      } else spec.prec = num() ?? 0;
    }
    if (i >= n) {
      out += "%!(NOVERB)";
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i)!);
    i += verb.length;
    spec.verb = verb;
    if (verb === "%") {
      out += "%";
      continue;
    }
    if (argNum >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const a = args[argNum++];
    if (verb === "v" && spec.plus) {
      spec.plus = false;
      spec.plusV = true;
    }
    if (!"vsdqtfFeEgGxXobcTU".includes(verb)) {
      out += badVerb(spec, a);
      continue;
    }
    out += fmtArg(a, spec, 0);
  }
  if (argNum < args.length) {
    out += "%!(EXTRA " + args.slice(argNum).map((a) => {
      const d = dynamic(a);
      return d.type ? `${typeName(d.type)}=${formatValue(d)}` : "<nil>";
    }).join(", ") + ")";
  }
  return out;
}
