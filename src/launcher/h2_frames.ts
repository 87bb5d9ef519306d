/**
 * HTTP/2 (RFC 9113) frame layout for the gatekeeper's frame-level proxy:
 * constants, a splitter that turns socket chunks into whole frames without
 * copying (only a frame straddling two chunks is copied), and builders for the
 * few frames the gatekeeper writes itself. Pure: no I/O, no npm code.
 *
 * @module
 */

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE: Uint8Array = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Size of a frame header. */
export const FRAME_HEADER_BYTES = 9;

/** The smallest SETTINGS_MAX_FRAME_SIZE a peer may advertise: frames we build never exceed it. */
export const MIN_MAX_FRAME_SIZE = 16384;

/** The initial connection and stream flow-control window. */
export const DEFAULT_WINDOW = 65535;

/** Frame types. */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags. */
export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** SETTINGS identifiers the gatekeeper looks at. */
export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  INITIAL_WINDOW_SIZE: 0x4,
} as const;

/** Error codes. */
export const H2Code = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
} as const;

/** Payload length of the frame whose header starts at `off`. */
export function frameLength(buf: Uint8Array, off: number): number {
  return (buf[off]! << 16) | (buf[off + 1]! << 8) | buf[off + 2]!;
}

/** Stream id (reserved bit cleared) of the frame whose header starts at `off`. */
export function frameStream(buf: Uint8Array, off: number): number {
  return ((buf[off + 5]! & 0x7f) << 24 | buf[off + 6]! << 16 | buf[off + 7]! << 8 |
    buf[off + 8]!) >>>
    0;
}

/** Overwrites the stream id of the frame whose header starts at `off`. */
export function setFrameStream(buf: Uint8Array, off: number, id: number): void {
  writeU31(buf, off + 5, id);
}

/** Reads a 31-bit big-endian value (reserved bit cleared). */
export function readU31(buf: Uint8Array, off: number): number {
  return ((buf[off]! & 0x7f) << 24 | buf[off + 1]! << 16 | buf[off + 2]! << 8 | buf[off + 3]!) >>>
    0;
}

/** Writes a 31-bit big-endian value (reserved bit zero). */
export function writeU31(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0x7f;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

/** Writes a frame header at `off`; returns where its payload starts. */
export function writeFrameHeader(
  buf: Uint8Array,
  off: number,
  len: number,
  type: number,
  flags: number,
  stream: number,
): number {
  buf[off] = (len >>> 16) & 0xff;
  buf[off + 1] = (len >>> 8) & 0xff;
  buf[off + 2] = len & 0xff;
  buf[off + 3] = type;
  buf[off + 4] = flags;
  writeU31(buf, off + 5, stream);
  return off + FRAME_HEADER_BYTES;
}

/** Builds one frame. */
export function frame(
  type: number,
  flags: number,
  stream: number,
  payload?: Uint8Array,
): Uint8Array {
  const len = payload?.length ?? 0;
  const out = new Uint8Array(FRAME_HEADER_BYTES + len);
  writeFrameHeader(out, 0, len, type, flags, stream);
  if (payload) out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** A GOAWAY payload: the last stream id, the error code and optional debug text. */
export function goawayPayload(lastStream: number, code: number, debug = ""): Uint8Array {
  const text = new TextEncoder().encode(debug);
  const p = new Uint8Array(8 + text.length);
  writeU31(p, 0, lastStream);
  writeU32(p, 4, code);
  p.set(text, 8);
  return p;
}

/** A WINDOW_UPDATE frame. */
export function windowUpdate(stream: number, increment: number): Uint8Array {
  const p = new Uint8Array(4);
  writeU31(p, 0, increment);
  return frame(FrameType.WINDOW_UPDATE, 0, stream, p);
}

/** An RST_STREAM frame. */
export function rstStream(stream: number, code: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, code, false);
  return frame(FrameType.RST_STREAM, 0, stream, p);
}

/**
 * A header block as HEADERS (+ CONTINUATION) frames of at most
 * {@linkcode MIN_MAX_FRAME_SIZE} bytes each, concatenated.
 */
export function headerFrames(stream: number, block: Uint8Array, endStream: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  let off = 0;
  do {
    const end = Math.min(block.length, off + MIN_MAX_FRAME_SIZE);
    const last = end === block.length;
    const type = off === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    let flags = last ? Flag.END_HEADERS : 0;
    if (off === 0 && endStream) flags |= Flag.END_STREAM;
    parts.push(frame(type, flags, stream, block.subarray(off, end)));
    off = end;
  } while (off < block.length);
  return parts.length === 1 ? parts[0]! : concatBytes(parts);
}

/** DATA frames of at most {@linkcode MIN_MAX_FRAME_SIZE} bytes carrying `data`, concatenated. */
export function dataFrames(stream: number, data: Uint8Array, endStream: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  let off = 0;
  do {
    const end = Math.min(data.length, off + MIN_MAX_FRAME_SIZE);
    const flags = end === data.length && endStream ? Flag.END_STREAM : 0;
    parts.push(frame(FrameType.DATA, flags, stream, data.subarray(off, end)));
    off = end;
  } while (off < data.length);
  return parts.length === 1 ? parts[0]! : concatBytes(parts);
}

/** A malformed frame (a connection error). */
export class FrameError extends Error {
  /** Always `"FrameError"`. */
  override name = "FrameError";
}

/**
 * The content of a DATA or HEADERS frame without padding (and, for HEADERS,
 * without the priority fields).
 *
 * @throws {FrameError} when the padding is longer than the frame
 */
export function unpadded(buf: Uint8Array, off: number): Uint8Array {
  const len = frameLength(buf, off);
  const type = buf[off + 3]!;
  const flags = buf[off + 4]!;
  let start = off + FRAME_HEADER_BYTES;
  let end = start + len;
  if (flags & Flag.PADDED) {
    if (len < 1) throw new FrameError("padded frame without a pad length");
    end -= buf[start]!;
    start += 1;
  }
  if (type === FrameType.HEADERS && (flags & Flag.PRIORITY)) start += 5;
  if (end < start) throw new FrameError("padding exceeds the frame");
  return buf.subarray(start, end);
}

/**
 * Takes over frames whose payload has not fully arrived, so their bytes can be
 * relayed as they come instead of being reassembled (see {@linkcode FrameSplitter.push}).
 */
export interface FrameStreamer {
  /**
   * A frame's header is complete but its payload is not: header at
   * `buf[off]`, `len` payload bytes of which `avail` follow the header in
   * `buf`. Return true to receive the rest through `payload` (the frame is
   * then not handed to `onFrame`); `buf` may be a fresh copy of the header
   * (when `avail` is 0 and the header straddled chunks).
   */
  begin(buf: Uint8Array, off: number, len: number, avail: number): boolean;
  /** The next payload bytes `buf[start, end)` of the frame taken over; `last` at its end. */
  payload(buf: Uint8Array, start: number, end: number, last: boolean): void;
}

/**
 * Cuts a byte stream into whole frames. Frames that lie inside one chunk are
 * handed out as views of that chunk (the caller may rewrite their headers in
 * place); a frame straddling chunks is copied into a fresh buffer, unless a
 * {@linkcode FrameStreamer} takes its payload over piecewise.
 */
export class FrameSplitter {
  #head = new Uint8Array(FRAME_HEADER_BYTES);
  #headLen = 0;
  #body: Uint8Array | undefined;
  #bodyLen = 0;
  /** Payload bytes still owed to the streamer for the frame it took over. */
  #streamLeft = 0;
  #maxLength: number;

  /** `maxLength`: refuse a frame whose declared payload is longer (a connection error). */
  constructor(maxLength = (1 << 24) - 1) {
    this.#maxLength = maxLength;
  }

  /**
   * Feeds one chunk; `onFrame(buf, off, len)` gets every completed frame
   * (header at `buf[off]`, payload of `len` bytes after it), in order. With a
   * `streamer`, a frame cut by the chunk's end is first offered to it.
   *
   * @throws {FrameError} for an over-long frame
   */
  push(
    chunk: Uint8Array,
    onFrame: (buf: Uint8Array, off: number, len: number) => void,
    streamer?: FrameStreamer,
  ): void {
    let pos = 0;
    if (this.#streamLeft > 0) {
      const take = Math.min(this.#streamLeft, chunk.length);
      this.#streamLeft -= take;
      pos = take;
      streamer!.payload(chunk, 0, take, this.#streamLeft === 0);
      if (this.#streamLeft > 0) return;
    }
    if (this.#headLen > 0 || this.#body) {
      if (!this.#body) {
        const take = Math.min(FRAME_HEADER_BYTES - this.#headLen, chunk.length - pos);
        this.#head.set(chunk.subarray(pos, pos + take), this.#headLen);
        this.#headLen += take;
        pos += take;
        if (this.#headLen < FRAME_HEADER_BYTES) return;
        const len = frameLength(this.#head, 0);
        if (len > this.#maxLength) throw new FrameError(`frame of ${len} bytes`);
        if (len > chunk.length - pos && streamer?.begin(this.#head.slice(), 0, len, 0)) {
          this.#headLen = 0;
          this.#streamLeft = len;
          const take = chunk.length - pos;
          this.#streamLeft -= take;
          if (take > 0) streamer.payload(chunk, pos, chunk.length, false);
          return;
        }
        this.#body = new Uint8Array(FRAME_HEADER_BYTES + len);
        this.#body.set(this.#head);
        this.#bodyLen = FRAME_HEADER_BYTES;
      }
      const body = this.#body;
      const take = Math.min(body.length - this.#bodyLen, chunk.length - pos);
      body.set(chunk.subarray(pos, pos + take), this.#bodyLen);
      this.#bodyLen += take;
      pos += take;
      if (this.#bodyLen < body.length) return;
      this.#body = undefined;
      this.#headLen = 0;
      onFrame(body, 0, body.length - FRAME_HEADER_BYTES);
    }
    while (chunk.length - pos >= FRAME_HEADER_BYTES) {
      const len = frameLength(chunk, pos);
      if (len > this.#maxLength) throw new FrameError(`frame of ${len} bytes`);
      const avail = chunk.length - pos - FRAME_HEADER_BYTES;
      if (avail < len) {
        if (streamer?.begin(chunk, pos, len, avail)) {
          this.#streamLeft = len - avail;
          return;
        }
        break;
      }
      onFrame(chunk, pos, len);
      pos += FRAME_HEADER_BYTES + len;
    }
    if (pos < chunk.length) {
      const rest = chunk.subarray(pos);
      if (rest.length < FRAME_HEADER_BYTES) {
        this.#head.set(rest, 0);
        this.#headLen = rest.length;
      } else {
        const len = frameLength(rest, 0);
        this.#body = new Uint8Array(FRAME_HEADER_BYTES + len);
        this.#body.set(rest);
        this.#bodyLen = rest.length;
        this.#headLen = FRAME_HEADER_BYTES;
      }
    }
  }
}

/** Reads a big-endian uint32. */
export function readU32(buf: Uint8Array, off: number): number {
  return (buf[off]! << 24 | buf[off + 1]! << 16 | buf[off + 2]! << 8 | buf[off + 3]!) >>> 0;
}

/** Writes a big-endian uint32. */
export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0xff;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

/** Whether two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
