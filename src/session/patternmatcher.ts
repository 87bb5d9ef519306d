/**
 * `.dockerignore`-style path patterns with the semantics of
 * moby/patternmatcher (protocol doc §8): ancestor matching, `!` exceptions
 * (last relevant hit wins), `**` rules, and per-pattern parent results
 * carried down a walk.
 *
 * Paths are `/`-separated and relative. Patterns are trimmed, dropped when
 * empty and cleaned like Go's `filepath.Clean`.
 *
 * @module
 */

import { cleanPath } from "../path.ts";

/** Thrown for a syntactically invalid pattern (Go: `filepath.ErrBadPattern`). */
export class BadPatternError extends Error {
  override name = "BadPatternError";
  constructor(message = "syntax error in pattern") {
    super(message);
  }
}

type MatchKind = "exact" | "prefix" | "suffix" | "regexp";

/** One compiled pattern. */
export class Pattern {
  /** The cleaned pattern text, without a leading `!`. */
  readonly text: string;
  /** Whether it is a `!` exception. */
  readonly exclusion: boolean;
  /** Number of path segments of the pattern. */
  readonly depth: number;
  #kind: MatchKind | undefined;
  #regexp: RegExp | undefined;
  #bad = false;

  constructor(text: string, exclusion: boolean) {
    this.text = text;
    this.exclusion = exclusion;
    this.depth = text.split("/").length;
  }

  /** Whether `path` matches the whole pattern. @throws {BadPatternError} */
  matches(path: string): boolean {
    if (this.#kind === undefined && !this.#bad) this.#compile();
    if (this.#bad) throw new BadPatternError();
    switch (this.#kind) {
      case "exact":
        return path === this.text;
      case "prefix":
        return path.startsWith(this.text.slice(0, -2));
      case "suffix": {
        const suffix = this.text.slice(2);
        if (path.endsWith(suffix)) return true;
        return suffix.startsWith("/") && path === suffix.slice(1);
      }
      default:
        return this.#regexp!.test(path);
    }
  }

  /**
   * Builds the matcher the way patternmatcher does: a regexp in RE2 syntax
   * (translated here to a JS regexp), or a plain exact/prefix/suffix test.
   */
  #compile(): void {
    const chars = Array.from(this.text);
    let re = "^";
    let kind: MatchKind = "exact";
    let i = 0;
    for (let step = 0; i < chars.length; step++) {
      const ch = chars[i++]!;
      if (ch === "*") {
        if (chars[i] === "*") {
          i++;
          if (chars[i] === "/") i++;
          if (i >= chars.length) {
            if (kind === "exact") kind = "prefix";
            else {
              re += ".*";
              kind = "regexp";
            }
          } else {
            re += "(.*/)?";
            kind = "regexp";
          }
          if (step === 0) kind = "suffix";
        } else {
          re += "[^/]*";
          kind = "regexp";
        }
      } else if (ch === "?") {
        re += "[^/]";
        kind = "regexp";
      } else if (".+()|{}$".includes(ch)) {
        re += "\\" + ch;
      } else if (ch === "\\") {
        if (i < chars.length) {
          re += "\\" + chars[i++]!;
          kind = "regexp";
        } else {
          re += "\\\\";
        }
      } else if (ch === "[" || ch === "]") {
        re += ch;
        kind = "regexp";
      } else {
        re += ch;
      }
    }
    if (kind === "regexp") {
      try {
        this.#regexp = new RegExp(re2ToJs(re + "$"), "u");
      } catch {
        this.#bad = true;
        return;
      }
    }
    this.#kind = kind;
  }
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: "0-9A-Za-z",
  alpha: "A-Za-z",
  ascii: "\\x00-\\x7F",
  blank: "\\t ",
  cntrl: "\\x00-\\x1F\\x7F",
  digit: "0-9",
  graph: "!-~",
  lower: "a-z",
  print: " -~",
  punct: "!-\\/:-@\\[-`{-~",
  space: "\\t\\n\\v\\f\\r ",
  upper: "A-Z",
  word: "0-9A-Za-z_",
  xdigit: "0-9A-Fa-f",
};

const PERL_CLASSES: Record<string, string> = {
  d: "[0-9]",
  D: "[^0-9]",
  s: "[\\t\\n\\f\\r ]",
  S: "[^\\t\\n\\f\\r ]",
  w: "[0-9A-Za-z_]",
  W: "[^0-9A-Za-z_]",
};
const PERL_IN_CLASS: Record<string, string> = { d: "0-9", s: "\\t\\n\\f\\r ", w: "0-9A-Za-z_" };
const SIMPLE_ESCAPES: Record<string, string> = {
  a: "\\x07",
  f: "\\f",
  t: "\\t",
  n: "\\n",
  r: "\\r",
  v: "\\v",
};

/** Escapes one literal code point for a JS `u` regexp. */
function lit(ch: string, inClass: boolean): string {
  if (inClass) return /[\\^\]\[-]/.test(ch) ? "\\" + ch : ch;
  return /[\\^$.*+?()[\]{}|\/]/.test(ch) ? "\\" + ch : ch;
}

/**
 * Translates the RE2 regexp that patternmatcher builds into an equivalent JS
 * (`u` flag) regexp: `.` excludes only `\n`, a `]` outside a class is
 * literal, `[` inside a class is literal, POSIX and Perl classes are expanded.
 * Unsupported syntax throws, which the caller reports as a bad pattern.
 */
export function re2ToJs(re: string): string {
  const cs = Array.from(re);
  let out = "";
  let i = 0;
  const escape = (inClass: boolean): string => {
    const c = cs[i++];
    if (c === undefined) throw new Error("trailing backslash");
    if (/[0-9A-Za-z]/.test(c)) {
      if (SIMPLE_ESCAPES[c]) return SIMPLE_ESCAPES[c];
      if (inClass && PERL_IN_CLASS[c]) return PERL_IN_CLASS[c];
      if (!inClass && PERL_CLASSES[c]) return PERL_CLASSES[c];
      throw new Error(`unsupported escape \\${c}`);
    }
    return lit(c, inClass);
  };
  while (i < cs.length) {
    const c = cs[i++]!;
    if (c === "\\") {
      out += escape(false);
    } else if (c === ".") {
      out += "[^\\n]";
    } else if (c === "]" || c === "}" || c === "{") {
      out += "\\" + c;
    } else if (c === "[") {
      // Character class: [^]...] forms; `]` right after `[` or `[^` is literal.
      out += "[";
      if (cs[i] === "^") {
        out += "^";
        i++;
      }
      let first = true;
      let closed = false;
      while (i < cs.length) {
        const d = cs[i++]!;
        if (d === "]" && !first) {
          closed = true;
          break;
        }
        first = false;
        if (d === "[" && cs[i] === ":") {
          const end = cs.indexOf(":", i + 1);
          if (end > 0 && cs[end + 1] === "]") {
            let name = cs.slice(i + 1, end).join("");
            const neg = name.startsWith("^");
            if (neg) name = name.slice(1);
            const cls = POSIX_CLASSES[name];
            if (!cls || neg) throw new Error(`unsupported class [:${name}:]`);
            out += cls;
            i = end + 2;
            continue;
          }
        }
        if (d === "\\") out += escape(true);
        else if (d === "-") out += "-";
        else out += lit(d, true);
      }
      if (!closed) throw new Error("missing ]");
      out += "]";
    } else {
      out += c;
    }
  }
  return out;
}

/**
 * Checks a pattern the way Go's `filepath.Match(pattern, ".")` does, which
 * reports syntax errors only (unclosed classes, bad escapes, empty ranges).
 *
 * @throws {BadPatternError}
 */
export function validateGlob(pattern: string): void {
  globMatch(pattern, ".");
}

/**
 * Go's `filepath.Match` (Unix): shell glob of one path, `*` and `?` never
 * match `/`, `[...]` classes with `^` negation, `\` escapes.
 *
 * @throws {BadPatternError} on invalid syntax, even when the name does not match.
 */
export function globMatch(pattern: string, name: string): boolean {
  let rest = pattern;
  outer: while (rest.length > 0) {
    let star = false;
    while (rest.startsWith("*")) {
      rest = rest.slice(1);
      star = true;
    }
    const [chunk, after] = scanChunk(rest);
    rest = after;
    if (star && chunk === "") return !name.includes("/");
    const r = matchChunk(chunk, name);
    if (r.ok && (r.rest.length === 0 || rest.length > 0)) {
      name = r.rest;
      continue;
    }
    if (star) {
      const cps = Array.from(name);
      for (let i = 0; i < cps.length && cps[i] !== "/"; i++) {
        const r2 = matchChunk(chunk, cps.slice(i + 1).join(""));
        if (r2.ok) {
          if (rest.length === 0 && r2.rest.length > 0) continue;
          name = r2.rest;
          continue outer;
        }
      }
    }
    // No match: still validate the remainder of the pattern.
    while (rest.length > 0) {
      while (rest.startsWith("*")) rest = rest.slice(1);
      const [c, a] = scanChunk(rest);
      rest = a;
      matchChunk(c, "");
    }
    return false;
  }
  return name.length === 0;
}

function scanChunk(pattern: string): [string, string] {
  let inRange = false;
  let i = 0;
  for (; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      if (i + 1 < pattern.length) i++;
    } else if (c === "[") inRange = true;
    else if (c === "]") inRange = false;
    else if (c === "*" && !inRange) break;
  }
  return [pattern.slice(0, i), pattern.slice(i)];
}

/** Go's matchChunk: keeps parsing after a mismatch so that syntax errors surface. */
function matchChunk(chunk: string, s: string): { ok: boolean; rest: string } {
  let failed = false;
  const cs = Array.from(chunk);
  let ss = Array.from(s);
  let i = 0;
  while (i < cs.length) {
    if (!failed && ss.length === 0) failed = true;
    const c = cs[i]!;
    if (c === "[") {
      let r = "";
      if (!failed) {
        r = ss[0]!;
        ss = ss.slice(1);
      }
      i++;
      let negated = false;
      if (cs[i] === "^") {
        negated = true;
        i++;
      }
      let match = false;
      let nrange = 0;
      for (;;) {
        if (i < cs.length && cs[i] === "]" && nrange > 0) {
          i++;
          break;
        }
        let lo: string;
        [lo, i] = getEsc(cs, i);
        let hi = lo;
        if (cs[i] === "-") [hi, i] = getEsc(cs, i + 1);
        if (
          !failed && lo.codePointAt(0)! <= r.codePointAt(0)! &&
          r.codePointAt(0)! <= hi.codePointAt(0)!
        ) {
          match = true;
        }
        nrange++;
      }
      if (match === negated) failed = true;
    } else if (c === "?") {
      if (!failed) {
        if (ss[0] === "/") failed = true;
        ss = ss.slice(1);
      }
      i++;
    } else {
      let ch = c;
      if (c === "\\") {
        i++;
        if (i >= cs.length) throw new BadPatternError();
        ch = cs[i]!;
      }
      if (!failed) {
        if (ch !== ss[0]) failed = true;
        ss = ss.slice(1);
      }
      i++;
    }
  }
  if (failed) return { ok: false, rest: "" };
  return { ok: true, rest: ss.join("") };
}

function getEsc(cs: string[], i: number): [string, number] {
  if (i >= cs.length || cs[i] === "-" || cs[i] === "]") throw new BadPatternError();
  if (cs[i] === "\\") {
    i++;
    if (i >= cs.length) throw new BadPatternError();
  }
  const r = cs[i]!;
  i++;
  if (i >= cs.length) throw new BadPatternError();
  return [r, i];
}

/** Per-pattern results for a directory, handed down to its children. */
export type MatchInfo = readonly boolean[] | undefined;

/** An ordered list of patterns with exceptions. */
export class PatternMatcher {
  /** The compiled patterns, in order. */
  readonly patterns: readonly Pattern[];
  /** Whether any pattern is a `!` exception. */
  readonly exclusions: boolean;

  /**
   * Compiles `patterns`: trims, drops empty ones, cleans, splits off `!`.
   *
   * @throws {BadPatternError} on a lone `!` or invalid glob syntax.
   */
  constructor(patterns: readonly string[]) {
    const out: Pattern[] = [];
    let exclusions = false;
    for (let p of patterns) {
      p = p.trim();
      if (p === "") continue;
      p = cleanPath(p);
      let exclusion = false;
      if (p[0] === "!") {
        if (p.length === 1) throw new BadPatternError('illegal exclusion pattern: "!"');
        exclusion = true;
        exclusions = true;
        p = p.slice(1);
      }
      validateGlob(p);
      out.push(new Pattern(p, exclusion));
    }
    this.patterns = out;
    this.exclusions = exclusions;
  }

  /** Whether `file` or one of its ancestors matches (no walk state needed). @throws {BadPatternError} */
  matchesOrParentMatches(file: string): boolean {
    return this.matchesUsingParentResults(file, undefined)[0];
  }

  /**
   * The walking form: `parent` is the info returned for the parent directory
   * (undefined at the top, or when unknown: ancestors are then checked
   * directly). Returns the result and the info to pass to children.
   *
   * @throws {BadPatternError}
   */
  matchesUsingParentResults(file: string, parent: MatchInfo): [boolean, boolean[]] {
    if (parent && parent.length !== 0 && parent.length !== this.patterns.length) {
      throw new Error("wrong number of values in parentMatched");
    }
    const info = new Array<boolean>(this.patterns.length).fill(false);
    let matched = false;
    for (let i = 0; i < this.patterns.length; i++) {
      const pattern = this.patterns[i]!;
      let match = parent && parent.length ? parent[i]! : false;
      if (!match) {
        if (pattern.exclusion !== matched) continue;
        match = pattern.matches(file);
        if (!match && !(parent && parent.length)) {
          const slash = file.lastIndexOf("/");
          if (slash > 0) {
            const dirs = file.slice(0, slash).split("/");
            for (let j = 0; j < dirs.length; j++) {
              let m = false;
              try {
                m = pattern.matches(dirs.slice(0, j + 1).join("/"));
              } catch { /* Go ignores errors here */ }
              if (m) {
                match = true;
                break;
              }
            }
          }
        }
      }
      info[i] = match;
      if (match) matched = !pattern.exclusion;
    }
    return [matched, info];
  }
}
