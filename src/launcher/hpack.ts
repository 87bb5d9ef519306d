/**
 * HPACK (RFC 7541), shared by the session's HTTP/2 server and the launcher's
 * gatekeeper: a full decoder (static and dynamic tables, Huffman strings) and
 * a minimal encoder (literals without indexing, no Huffman), which never
 * touches the peer's dynamic table. Pure: no I/O, no npm code.
 *
 * @module
 */

/** HPACK static table (RFC 7541 Appendix A), index 1..61. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/** HPACK Huffman codes (RFC 7541 Appendix B) for symbols 0..255: code, bit length. */
export const HUFFMAN_CODES: readonly number[] = [
  0x1ff8,
  0x7fffd8,
  0xfffffe2,
  0xfffffe3,
  0xfffffe4,
  0xfffffe5,
  0xfffffe6,
  0xfffffe7,
  0xfffffe8,
  0xffffea,
  0x3ffffffc,
  0xfffffe9,
  0xfffffea,
  0x3ffffffd,
  0xfffffeb,
  0xfffffec,
  0xfffffed,
  0xfffffee,
  0xfffffef,
  0xffffff0,
  0xffffff1,
  0xffffff2,
  0x3ffffffe,
  0xffffff3,
  0xffffff4,
  0xffffff5,
  0xffffff6,
  0xffffff7,
  0xffffff8,
  0xffffff9,
  0xffffffa,
  0xffffffb,
  0x14,
  0x3f8,
  0x3f9,
  0xffa,
  0x1ff9,
  0x15,
  0xf8,
  0x7fa,
  0x3fa,
  0x3fb,
  0xf9,
  0x7fb,
  0xfa,
  0x16,
  0x17,
  0x18,
  0x0,
  0x1,
  0x2,
  0x19,
  0x1a,
  0x1b,
  0x1c,
  0x1d,
  0x1e,
  0x1f,
  0x5c,
  0xfb,
  0x7ffc,
  0x20,
  0xffb,
  0x3fc,
  0x1ffa,
  0x21,
  0x5d,
  0x5e,
  0x5f,
  0x60,
  0x61,
  0x62,
  0x63,
  0x64,
  0x65,
  0x66,
  0x67,
  0x68,
  0x69,
  0x6a,
  0x6b,
  0x6c,
  0x6d,
  0x6e,
  0x6f,
  0x70,
  0x71,
  0x72,
  0xfc,
  0x73,
  0xfd,
  0x1ffb,
  0x7fff0,
  0x1ffc,
  0x3ffc,
  0x22,
  0x7ffd,
  0x3,
  0x23,
  0x4,
  0x24,
  0x5,
  0x25,
  0x26,
  0x27,
  0x6,
  0x74,
  0x75,
  0x28,
  0x29,
  0x2a,
  0x7,
  0x2b,
  0x76,
  0x2c,
  0x8,
  0x9,
  0x2d,
  0x77,
  0x78,
  0x79,
  0x7a,
  0x7b,
  0x7ffe,
  0x7fc,
  0x3ffd,
  0x1ffd,
  0xffffffc,
  0xfffe6,
  0x3fffd2,
  0xfffe7,
  0xfffe8,
  0x3fffd3,
  0x3fffd4,
  0x3fffd5,
  0x7fffd9,
  0x3fffd6,
  0x7fffda,
  0x7fffdb,
  0x7fffdc,
  0x7fffdd,
  0x7fffde,
  0xffffeb,
  0x7fffdf,
  0xffffec,
  0xffffed,
  0x3fffd7,
  0x7fffe0,
  0xffffee,
  0x7fffe1,
  0x7fffe2,
  0x7fffe3,
  0x7fffe4,
  0x1fffdc,
  0x3fffd8,
  0x7fffe5,
  0x3fffd9,
  0x7fffe6,
  0x7fffe7,
  0xffffef,
  0x3fffda,
  0x1fffdd,
  0xfffe9,
  0x3fffdb,
  0x3fffdc,
  0x7fffe8,
  0x7fffe9,
  0x1fffde,
  0x7fffea,
  0x3fffdd,
  0x3fffde,
  0xfffff0,
  0x1fffdf,
  0x3fffdf,
  0x7fffeb,
  0x7fffec,
  0x1fffe0,
  0x1fffe1,
  0x3fffe0,
  0x1fffe2,
  0x7fffed,
  0x3fffe1,
  0x7fffee,
  0x7fffef,
  0xfffea,
  0x3fffe2,
  0x3fffe3,
  0x3fffe4,
  0x7ffff0,
  0x3fffe5,
  0x3fffe6,
  0x7ffff1,
  0x3ffffe0,
  0x3ffffe1,
  0xfffeb,
  0x7fff1,
  0x3fffe7,
  0x7ffff2,
  0x3fffe8,
  0x1ffffec,
  0x3ffffe2,
  0x3ffffe3,
  0x3ffffe4,
  0x7ffffde,
  0x7ffffdf,
  0x3ffffe5,
  0xfffff1,
  0x1ffffed,
  0x7fff2,
  0x1fffe3,
  0x3ffffe6,
  0x7ffffe0,
  0x7ffffe1,
  0x3ffffe7,
  0x7ffffe2,
  0xfffff2,
  0x1fffe4,
  0x1fffe5,
  0x3ffffe8,
  0x3ffffe9,
  0xffffffd,
  0x7ffffe3,
  0x7ffffe4,
  0x7ffffe5,
  0xfffec,
  0xfffff3,
  0xfffed,
  0x1fffe6,
  0x3fffe9,
  0x1fffe7,
  0x1fffe8,
  0x7ffff3,
  0x3fffea,
  0x3fffeb,
  0x1ffffee,
  0x1ffffef,
  0xfffff4,
  0xfffff5,
  0x3ffffea,
  0x7ffff4,
  0x3ffffeb,
  0x7ffffe6,
  0x3ffffec,
  0x3ffffed,
  0x7ffffe7,
  0x7ffffe8,
  0x7ffffe9,
  0x7ffffea,
  0x7ffffeb,
  0xffffffe,
  0x7ffffec,
  0x7ffffed,
  0x7ffffee,
  0x7ffffef,
  0x7fffff0,
  0x3ffffee,
];

/** Bit lengths of {@linkcode HUFFMAN_CODES}. */
export const HUFFMAN_LENGTHS: readonly number[] = [
  13,
  23,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  24,
  30,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  6,
  10,
  10,
  12,
  13,
  6,
  8,
  11,
  10,
  10,
  8,
  11,
  8,
  6,
  6,
  6,
  5,
  5,
  5,
  6,
  6,
  6,
  6,
  6,
  6,
  6,
  7,
  8,
  15,
  6,
  12,
  10,
  13,
  6,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  8,
  7,
  8,
  13,
  19,
  13,
  14,
  6,
  15,
  5,
  6,
  5,
  6,
  5,
  6,
  6,
  6,
  5,
  7,
  7,
  6,
  6,
  6,
  5,
  6,
  7,
  6,
  5,
  5,
  6,
  7,
  7,
  7,
  7,
  7,
  15,
  11,
  14,
  13,
  28,
  20,
  22,
  20,
  20,
  22,
  22,
  22,
  23,
  22,
  23,
  23,
  23,
  23,
  23,
  24,
  23,
  24,
  24,
  22,
  23,
  24,
  23,
  23,
  23,
  23,
  21,
  22,
  23,
  22,
  23,
  23,
  24,
  22,
  21,
  20,
  22,
  22,
  23,
  23,
  21,
  23,
  22,
  22,
  24,
  21,
  22,
  23,
  23,
  21,
  21,
  22,
  21,
  23,
  22,
  23,
  23,
  20,
  22,
  22,
  22,
  23,
  22,
  22,
  23,
  26,
  26,
  20,
  19,
  22,
  23,
  22,
  25,
  26,
  26,
  26,
  27,
  27,
  26,
  24,
  25,
  19,
  21,
  26,
  27,
  27,
  26,
  27,
  24,
  21,
  21,
  26,
  26,
  28,
  27,
  27,
  27,
  20,
  24,
  20,
  21,
  22,
  21,
  21,
  23,
  22,
  22,
  25,
  25,
  24,
  24,
  26,
  23,
  26,
  27,
  26,
  26,
  27,
  27,
  27,
  27,
  27,
  28,
  27,
  27,
  27,
  27,
  27,
  26,
];

/** A decoding error (a connection error of type COMPRESSION_ERROR). */
export class HpackError extends Error {
  override name = "HpackError";
}

interface TrieNode {
  children: [TrieNode | undefined, TrieNode | undefined];
  symbol: number;
}

function buildTrie(): TrieNode {
  const root: TrieNode = { children: [undefined, undefined], symbol: -1 };
  for (let sym = 0; sym < 256; sym++) {
    const code = HUFFMAN_CODES[sym]!;
    const len = HUFFMAN_LENGTHS[sym]!;
    let node = root;
    for (let i = len - 1; i >= 0; i--) {
      const bit = Math.floor(code / 2 ** i) & 1;
      node = node.children[bit] ??= { children: [undefined, undefined], symbol: -1 };
    }
    node.symbol = sym;
  }
  return root;
}

let trie: TrieNode | undefined;

/** Decodes a Huffman-coded string (RFC 7541 §5.2). */
export function huffmanDecode(data: Uint8Array): Uint8Array {
  trie ??= buildTrie();
  const out: number[] = [];
  let node = trie;
  let depth = 0;
  let allOnes = true;
  for (const byte of data) {
    for (let i = 7; i >= 0; i--) {
      const bit = (byte >> i) & 1;
      const next = node.children[bit];
      if (!next) throw new HpackError("invalid Huffman code");
      node = next;
      depth++;
      if (bit === 0) allOnes = false;
      if (node.symbol >= 0) {
        out.push(node.symbol);
        node = trie;
        depth = 0;
        allOnes = true;
      }
    }
  }
  if (depth > 7 || !allOnes) throw new HpackError("invalid Huffman padding");
  return Uint8Array.from(out);
}

/** Decodes an integer with an N-bit prefix at `pos`; returns [value, next position]. */
function decodeInt(buf: Uint8Array, pos: number, prefixBits: number): [number, number] {
  const max = (1 << prefixBits) - 1;
  let value = buf[pos++]! & max;
  if (value < max) return [value, pos];
  let m = 1;
  for (;;) {
    if (pos >= buf.length) throw new HpackError("truncated integer");
    const b = buf[pos++]!;
    value += (b & 0x7f) * m;
    m *= 128;
    if ((b & 0x80) === 0) return [value, pos];
    if (m > 2 ** 35) throw new HpackError("integer overflow");
  }
}

const utf8 = new TextDecoder();

/** Stateful decoder for one connection's request header blocks. */
export class HpackDecoder {
  #dynamic: [string, string, number][] = [];
  #size = 0;
  #maxSize: number;
  #limit: number;

  /** `maxTableSize` = the SETTINGS_HEADER_TABLE_SIZE we advertised (default 4096). */
  constructor(maxTableSize = 4096) {
    this.#maxSize = maxTableSize;
    this.#limit = maxTableSize;
  }

  #entry(index: number): [string, string] {
    if (index <= 0) throw new HpackError("index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as [string, string];
    const d = this.#dynamic[index - STATIC_TABLE.length - 1];
    if (!d) throw new HpackError(`invalid index ${index}`);
    return [d[0], d[1]];
  }

  #evict(): void {
    while (this.#size > this.#maxSize && this.#dynamic.length > 0) {
      const e = this.#dynamic.pop()!;
      this.#size -= e[2];
    }
  }

  #add(name: string, value: string, nameLen: number, valueLen: number): void {
    const size = nameLen + valueLen + 32;
    this.#dynamic.unshift([name, value, size]);
    this.#size += size;
    this.#evict();
  }

  #string(buf: Uint8Array, pos: number): [string, number, number] {
    if (pos >= buf.length) throw new HpackError("truncated string");
    const huffman = (buf[pos]! & 0x80) !== 0;
    const [len, p] = decodeInt(buf, pos, 7);
    if (p + len > buf.length) throw new HpackError("truncated string");
    let bytes = buf.subarray(p, p + len);
    if (huffman) bytes = huffmanDecode(bytes);
    return [utf8.decode(bytes), bytes.length, p + len];
  }

  /**
   * Raises (or lowers) the largest dynamic table size the encoder may ask
   * for, e.g. when a new SETTINGS_HEADER_TABLE_SIZE is advertised.
   */
  setMaxTableSizeLimit(limit: number): void {
    this.#limit = limit;
  }

  /**
   * Decodes one complete header block into (name, value) pairs, in order.
   *
   * @param maxListSize refuse a block whose decoded size (RFC 7540 §6.5.2:
   *   name + value + 32 per field) exceeds this
   * @throws {HpackError} on a malformed block or one over `maxListSize`
   */
  decode(block: Uint8Array, maxListSize = Infinity): [string, string][] {
    const out: [string, string][] = [];
    let pos = 0;
    let listSize = 0;
    while (pos < block.length) {
      if (listSize > maxListSize) throw new HpackError("header list too large");
      const b = block[pos]!;
      if (b & 0x80) {
        const [index, p] = decodeInt(block, pos, 7);
        pos = p;
        const e = this.#entry(index);
        listSize += e[0].length + e[1].length + 32;
        out.push(e);
      } else if ((b & 0xe0) === 0x20) {
        const [size, p] = decodeInt(block, pos, 5);
        pos = p;
        if (size > this.#limit) throw new HpackError("table size update above the limit");
        this.#maxSize = size;
        this.#evict();
      } else {
        const indexing = (b & 0xc0) === 0x40;
        const [index, p] = decodeInt(block, pos, indexing ? 6 : 4);
        pos = p;
        let name: string;
        let nameLen: number;
        if (index === 0) {
          [name, nameLen, pos] = this.#string(block, pos);
        } else {
          name = this.#entry(index)[0];
          nameLen = new TextEncoder().encode(name).length;
        }
        const [value, valueLen, p2] = this.#string(block, pos);
        pos = p2;
        if (indexing) this.#add(name, value, nameLen, valueLen);
        listSize += nameLen + valueLen + 32;
        out.push([name, value]);
      }
    }
    if (listSize > maxListSize) throw new HpackError("header list too large");
    return out;
  }
}

function encodeInt(out: number[], value: number, prefixBits: number, flags: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  value -= max;
  while (value >= 128) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

const utf8Enc = new TextEncoder();

/** Encodes headers as literals without indexing (stateless, no Huffman). */
export function encodeHeaders(headers: readonly (readonly [string, string])[]): Uint8Array {
  const out: number[] = [];
  for (const [name, value] of headers) {
    out.push(0x00);
    const n = utf8Enc.encode(name.toLowerCase());
    encodeInt(out, n.length, 7, 0);
    for (const x of n) out.push(x);
    const v = utf8Enc.encode(value);
    encodeInt(out, v.length, 7, 0);
    for (const x of v) out.push(x);
  }
  return Uint8Array.from(out);
}
