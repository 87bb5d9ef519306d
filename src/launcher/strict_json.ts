/**
 * A strict, bounded JSON reader for the launcher's root-owned files.
 *
 * Stricter than `JSON.parse` on purpose: no byte-order mark, no NUL (raw or
 * `\u0000`), no duplicate object keys (JSON.parse silently keeps the last
 * one), integers only (no fractions or exponents, so `1e3` is not 1000), a
 * nesting limit and an input size limit. A file is either read exactly or
 * refused; there is no partial result. Pure: no I/O, no permissions.
 *
 * @module
 */

/** The values this reader produces. Numbers are always safe integers. */
export type StrictJson =
  | null
  | boolean
  | number
  | string
  | StrictJson[]
  | { [key: string]: StrictJson };

/** Limits of {@linkcode parseStrictJson}. */
export interface StrictJsonLimits {
  /** Largest accepted input, in bytes of UTF-8. */
  maxBytes: number;
  /** Deepest accepted nesting of arrays and objects. */
  maxDepth: number;
}

/** A refusal, with the byte offset (in the decoded text) where it happened. */
export class StrictJsonError extends Error {
  override name = "StrictJsonError";
  /** Offset in the text where the problem was found. */
  readonly offset: number;

  /** Builds the error. */
  constructor(message: string, offset: number) {
    super(`${message} at offset ${offset}`);
    this.offset = offset;
  }
}

/**
 * Decodes and parses `bytes` as strict JSON.
 *
 * @throws {StrictJsonError} on invalid UTF-8, a BOM, NUL, duplicate keys,
 * non-integer numbers, too deep nesting, trailing data or too many bytes.
 */
export function parseStrictJson(bytes: Uint8Array, limits: StrictJsonLimits): StrictJson {
  if (bytes.length > limits.maxBytes) {
    throw new StrictJsonError(`input is larger than ${limits.maxBytes} bytes`, 0);
  }
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    throw new StrictJsonError("byte-order mark is not allowed", 0);
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw new StrictJsonError("NUL byte is not allowed", nul);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new StrictJsonError("input is not valid UTF-8", 0);
  }
  const p = new Parser(text, limits.maxDepth);
  p.ws();
  const value = p.value(0);
  p.ws();
  if (p.pos !== text.length) throw new StrictJsonError("unexpected data after the value", p.pos);
  return value;
}

class Parser {
  pos = 0;
  readonly #text: string;
  readonly #maxDepth: number;

  constructor(text: string, maxDepth: number) {
    this.#text = text;
    this.#maxDepth = maxDepth;
  }

  ws(): void {
    const t = this.#text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.pos++;
      else break;
    }
  }

  #fail(message: string): never {
    throw new StrictJsonError(message, this.pos);
  }

  value(depth: number): StrictJson {
    const t = this.#text;
    const c = t[this.pos];
    switch (c) {
      case "{":
        return this.#object(depth + 1);
      case "[":
        return this.#array(depth + 1);
      case '"':
        return this.#string();
      case "t":
        return this.#literal("true", true);
      case "f":
        return this.#literal("false", false);
      case "n":
        return this.#literal("null", null);
      default:
        if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return this.#number();
        return this.#fail(c === undefined ? "unexpected end of input" : "unexpected character");
    }
  }

  #literal<T extends StrictJson>(word: string, value: T): T {
    if (this.#text.startsWith(word, this.pos)) {
      this.pos += word.length;
      return value;
    }
    return this.#fail("invalid literal");
  }

  #number(): number {
    const m = /^-?(0|[1-9][0-9]*)/.exec(this.#text.slice(this.pos, this.pos + 32));
    if (!m) return this.#fail("invalid number");
    const next = this.#text[this.pos + m[0].length];
    if (
      next === "." || next === "e" || next === "E" || (next !== undefined && /[0-9]/.test(next))
    ) {
      return this.#fail("only integers are allowed");
    }
    const n = Number(m[0]);
    if (!Number.isSafeInteger(n) || m[0] === "-0") return this.#fail("integer out of range");
    this.pos += m[0].length;
    return n;
  }

  #string(): string {
    const t = this.#text;
    this.pos++; // opening quote
    let out = "";
    for (;;) {
      if (this.pos >= t.length) return this.#fail("unterminated string");
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        this.pos++;
        return out;
      }
      if (c < 0x20) return this.#fail("control character in string");
      if (c !== 0x5c) {
        out += t[this.pos];
        this.pos++;
        continue;
      }
      const e = t[this.pos + 1];
      this.pos += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case "\\":
          out += "\\";
          break;
        case "/":
          out += "/";
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hex = t.slice(this.pos, this.pos + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) return this.#fail("invalid \\u escape");
          const code = parseInt(hex, 16);
          if (code === 0) return this.#fail("NUL is not allowed");
          out += String.fromCharCode(code);
          this.pos += 4;
          break;
        }
        default:
          this.pos -= 1;
          return this.#fail("invalid escape");
      }
    }
  }

  #array(depth: number): StrictJson[] {
    if (depth > this.#maxDepth) return this.#fail(`nesting deeper than ${this.#maxDepth}`);
    this.pos++;
    const out: StrictJson[] = [];
    this.ws();
    if (this.#text[this.pos] === "]") {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      out.push(this.value(depth));
      this.ws();
      const c = this.#text[this.pos];
      if (c === ",") {
        this.pos++;
        continue;
      }
      if (c === "]") {
        this.pos++;
        return out;
      }
      return this.#fail("expected , or ]");
    }
  }

  #object(depth: number): { [key: string]: StrictJson } {
    if (depth > this.#maxDepth) return this.#fail(`nesting deeper than ${this.#maxDepth}`);
    this.pos++;
    const out: { [key: string]: StrictJson } = Object.create(null);
    this.ws();
    if (this.#text[this.pos] === "}") {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.#text[this.pos] !== '"') return this.#fail("expected a string key");
      const keyAt = this.pos;
      const key = this.#string();
      if (Object.hasOwn(out, key)) {
        throw new StrictJsonError(`duplicate key ${JSON.stringify(key)}`, keyAt);
      }
      this.ws();
      if (this.#text[this.pos] !== ":") return this.#fail("expected :");
      this.pos++;
      this.ws();
      out[key] = this.value(depth);
      this.ws();
      const c = this.#text[this.pos];
      if (c === ",") {
        this.pos++;
        continue;
      }
      if (c === "}") {
        this.pos++;
        return out;
      }
      return this.#fail("expected , or }");
    }
  }
}
