/**
 * A small HTTP/2 server (RFC 9113, server side only, cleartext with prior
 * knowledge) over any byte stream: the session tunnel, where the daemon is
 * the HTTP/2 client.
 *
 * Why not `node:http2`: in the session, every byte goes through two HTTP/2
 * layers in this process. Owning this one lets DATA frames be assembled
 * straight into large output buffers (one copy, no per-frame objects), keeps
 * request header fields raw and separate, and bounds memory by flow control.
 *
 * Supported: SETTINGS, HEADERS (+CONTINUATION, padding, priority), DATA
 * (padding), WINDOW_UPDATE, PING, RST_STREAM, GOAWAY, PRIORITY (ignored).
 * No server push.
 *
 * @module
 */

import { encodeHeaders, HpackDecoder } from "../launcher/hpack.ts";
import {
  bytesEqual,
  concatBytes,
  Flag as F,
  frame,
  FRAME_HEADER_BYTES,
  FrameType as T,
  goawayPayload,
  H2Code,
  PREFACE,
  readU32,
  rstStream,
  windowUpdate,
  writeFrameHeader,
  writeU32,
} from "../launcher/h2_frames.ts";

/** Requests up to this size are carved out of a shared slab. */
const SLAB_MAX_ITEM = 64 << 10;
/** Size of one slab. */
const SLAB_SIZE = 256 << 10;
let slab: ArrayBuffer | undefined;
let slabOffset = 0;

/**
 * `n` bytes for data about to be copied in (its contents are unspecified).
 * Every allocation of a separate ArrayBuffer is costly on the data path
 * (tens of thousands of message-sized copies per transfer): small requests
 * are therefore carved one after the other out of a shared 256 KiB slab,
 * which is freed once none of its pieces is referenced.
 */
export function allocBuffer(n: number): Uint8Array {
  if (n > SLAB_MAX_ITEM) return new Uint8Array(n);
  if (!slab || slabOffset + n > SLAB_SIZE) {
    slab = new ArrayBuffer(SLAB_SIZE);
    slabOffset = 0;
  }
  const out = new Uint8Array(slab, slabOffset, n);
  // Keep pieces 8-byte aligned.
  slabOffset += (n + 7) & ~7;
  return out;
}

/** Joins `chunks` (of `total` bytes) into one new array. */
export function joinChunks(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = allocBuffer(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

const EMPTY = new Uint8Array(0);

/** HTTP/2 error codes (shared with the gatekeeper's frame layer). */
export const H2Error = H2Code;

/** Options of {@linkcode H2Connection}. */
export interface H2Options {
  /** Receive window we grant per stream (SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindow?: number;
  /** Receive window we grant for the whole connection. */
  connectionWindow?: number;
  /** Largest output buffer handed to the transport at once. */
  maxWriteSize?: number;
  /**
   * Lets the transport reserve bytes in front of each output buffer (the
   * tunnel writes its message header there, saving a copy). `seal` gets the
   * buffer with `headroom` free bytes in front of the payload and returns
   * what to write.
   */
  envelope?: { headroom: number; seal(buf: Uint8Array, payloadLength: number): Uint8Array };
}

/**
 * The byte stream a connection runs on: the part of a `node:stream` Duplex
 * it uses, so that a socket or the session tunnel (which avoids loading
 * `node:stream`) both fit.
 */
export interface ByteStream {
  on(event: "data", fn: (chunk: Uint8Array) => void): unknown;
  on(event: "end" | "close" | "drain", fn: () => void): unknown;
  on(event: "error", fn: (err: Error) => void): unknown;
  /** Returns false when the caller should wait for `drain`. */
  write(chunk: Uint8Array): boolean;
  end(): unknown;
}

/** Called for each new request stream. */
export type StreamHandler = (stream: H2Stream) => void;

interface OutItem {
  /** DATA payload (or undefined for a HEADERS item). */
  data?: Uint8Array;
  offset: number;
  headers?: Uint8Array;
  endStream: boolean;
  /** Called once the payload has been copied into an output buffer. */
  onCopied?: () => void;
}

/** One request stream, from the server's side. */
export class H2Stream {
  /** Stream id. */
  readonly id: number;
  /** Request header fields in order (repeated fields stay separate). */
  readonly headers: readonly (readonly [string, string])[];
  /** Aborted on RST_STREAM from the peer or when the connection goes away. */
  readonly signal: AbortSignal;

  #conn: H2Connection;
  #abort = new AbortController();
  #chunks: Uint8Array[] = [];
  #remoteEnded = false;
  #localEnded = false;
  #waiter: (() => void) | undefined;
  /** @internal Send window. */
  sendWindow: number;
  /** @internal Queued output. */
  out: OutItem[] = [];
  /** @internal Bytes of DATA queued and not yet framed. */
  queued = 0;
  #drainWaiters: (() => void)[] = [];
  #respondedHeaders = false;

  /** @internal */
  constructor(conn: H2Connection, id: number, headers: [string, string][], sendWindow: number) {
    this.#conn = conn;
    this.id = id;
    this.headers = headers;
    this.sendWindow = sendWindow;
    this.signal = this.#abort.signal;
  }

  /** Whether response headers were sent. */
  get headersSent(): boolean {
    return this.#respondedHeaders;
  }

  /** Whether both directions are finished. */
  get closed(): boolean {
    return (this.#remoteEnded && this.#localEnded) || this.#abort.signal.aborted;
  }

  /** @internal Incoming DATA payload. */
  pushData(data: Uint8Array): void {
    if (this.#abort.signal.aborted) return;
    this.#chunks.push(data);
    this.#wake();
  }

  /** @internal END_STREAM from the peer. */
  pushEnd(): void {
    this.#remoteEnded = true;
    this.#wake();
    this.#conn.maybeForget(this);
  }

  /** @internal RST_STREAM from the peer, or connection loss. */
  abort(reason: Error): void {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort(reason);
    this.out = [];
    this.queued = 0;
    this.#wake();
    this.#drained();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /** The next chunk of request data, or `null` after END_STREAM. Consuming it returns flow-control credit. */
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const c = this.#chunks.shift();
      if (c) {
        this.#conn.consumed(this, c.length);
        return c;
      }
      if (this.#remoteEnded) return null;
      if (this.#abort.signal.aborted) throw this.#abort.signal.reason;
      await new Promise<void>((r) => this.#waiter = r);
    }
  }

  /** Sends response headers (once). */
  respond(headers: readonly (readonly [string, string])[], endStream = false): void {
    if (this.#respondedHeaders || this.#localEnded || this.#abort.signal.aborted) return;
    this.#respondedHeaders = true;
    this.out.push({ headers: encodeHeaders(headers), offset: 0, endStream });
    if (endStream) this.#localEnd();
    this.#conn.schedule(this);
  }

  /**
   * Queues DATA. `ready` resolves when more may be queued (backpressure);
   * `copied` once `data` is no longer referenced (it may then be reused).
   */
  write(data: Uint8Array): { ready: Promise<void>; copied: Promise<void> } {
    if (this.#localEnded || this.#abort.signal.aborted) {
      const err = this.#abort.signal.reason ?? new Error("stream already ended");
      return { ready: Promise.reject(err), copied: Promise.resolve() };
    }
    let onCopied!: () => void;
    const copied = new Promise<void>((r) => onCopied = r);
    this.out.push({ data, offset: 0, endStream: false, onCopied });
    this.queued += data.length;
    this.#conn.schedule(this);
    if (this.queued < this.#conn.streamHighWater) return { ready: Promise.resolve(), copied };
    return { ready: new Promise<void>((r) => this.#drainWaiters.push(r)), copied };
  }

  /** @internal Called when queued output drops. */
  drained(): void {
    if (this.queued < this.#conn.streamHighWater) this.#drained();
  }

  #drained(): void {
    const w = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const f of w) f();
  }

  /** Ends the response with trailers (HEADERS + END_STREAM) after all queued DATA. */
  end(trailers: readonly (readonly [string, string])[]): void {
    if (this.#localEnded || this.#abort.signal.aborted) return;
    this.out.push({ headers: encodeHeaders(trailers), offset: 0, endStream: true });
    this.#localEnd();
    this.#conn.schedule(this);
  }

  #localEnd(): void {
    this.#localEnded = true;
  }

  /** @internal Our END_STREAM went out. */
  sentEnd(): void {
    if (!this.#remoteEnded) {
      // The response is complete: tell the client to stop sending (RFC 9113 §8.1).
      this.#conn.sendRst(this.id, H2Error.NO_ERROR);
      this.#remoteEnded = true;
      this.#chunks = [];
      this.#wake();
    }
    this.#conn.maybeForget(this);
  }

  /** Resets the stream (RST_STREAM) with `code`. */
  reset(code: number = H2Error.CANCEL): void {
    if (this.closed) return;
    this.#conn.sendRst(this.id, code);
    this.abort(new Error(`stream reset (code ${code})`));
    this.#conn.maybeForget(this);
  }
}

/** One HTTP/2 server connection. */
export class H2Connection {
  /** Settles when the connection has ended. */
  readonly closed: Promise<void>;

  #transport: ByteStream;
  #onStream: StreamHandler;
  #decoder = new HpackDecoder();
  #streams = new Map<number, H2Stream>();
  #lastStreamId = 0;
  #inbuf: Uint8Array[] = [];
  #inlen = 0;
  #prefaceSeen = false;
  #headerBlock: { streamId: number; endStream: boolean; parts: Uint8Array[] } | undefined;

  // Send side.
  #peerMaxFrame = 16384;
  #peerInitialWindow = 65535;
  #connSendWindow = 65535;
  #urgent: Uint8Array[] = [];
  #ready = new Set<H2Stream>();
  #flushScheduled = false;
  #blockedOnTransport = false;
  #maxWrite: number;
  #envelope: H2Options["envelope"];

  // Receive side.
  #streamWindow: number;
  #connWindow: number;
  #connUnacked = 0;
  #streamUnacked = new Map<number, number>();

  #ended = false;
  #resolveClosed!: () => void;
  /** @internal Per-stream queued bytes above which `write` asks callers to wait. */
  readonly streamHighWater = 1 << 20;

  constructor(transport: ByteStream, onStream: StreamHandler, opts: H2Options = {}) {
    this.#transport = transport;
    this.#onStream = onStream;
    this.#streamWindow = opts.streamWindow ?? (4 << 20);
    this.#connWindow = opts.connectionWindow ?? (16 << 20);
    this.#maxWrite = opts.maxWriteSize ?? (1 << 20);
    this.#envelope = opts.envelope;
    this.closed = new Promise<void>((r) => this.#resolveClosed = r);

    transport.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    transport.on("end", () => this.#terminate(new Error("connection closed by the peer")));
    transport.on("close", () => this.#terminate(new Error("connection closed")));
    transport.on("error", (err: Error) => this.#terminate(err));
    transport.on("drain", () => {
      this.#blockedOnTransport = false;
      this.#scheduleFlush();
    });

    // Our SETTINGS, then a bigger connection receive window.
    const settings = new Uint8Array(18);
    settings[1] = 0x3; // MAX_CONCURRENT_STREAMS
    writeU32(settings, 2, 1000);
    settings[7] = 0x4; // INITIAL_WINDOW_SIZE
    writeU32(settings, 8, this.#streamWindow);
    settings[13] = 0x5; // MAX_FRAME_SIZE
    writeU32(settings, 14, 1 << 20);
    this.#urgent.push(frame(T.SETTINGS, 0, 0, settings));
    if (this.#connWindow > 65535) this.#urgent.push(windowUpdate(0, this.#connWindow - 65535));
    this.#scheduleFlush();
  }

  /** Sends GOAWAY and ends the transport. */
  close(): void {
    if (this.#ended) return;
    this.#urgent.push(frame(T.GOAWAY, 0, 0, goawayPayload(this.#lastStreamId, H2Error.NO_ERROR)));
    this.#flush();
    this.#terminate(new Error("connection closed"));
    this.#transport.end();
  }

  /** @internal */
  maybeForget(s: H2Stream): void {
    if (s.closed && s.out.length === 0) {
      this.#streams.delete(s.id);
      this.#streamUnacked.delete(s.id);
    }
  }

  /** @internal Schedules a stream's output. */
  schedule(s: H2Stream): void {
    this.#ready.add(s);
    this.#scheduleFlush();
  }

  /** @internal */
  sendRst(id: number, code: number): void {
    this.#urgent.push(rstStream(id, code));
    this.#scheduleFlush();
  }

  /** @internal Returns flow-control credit for consumed request data. */
  consumed(s: H2Stream, n: number): void {
    if (n === 0) return;
    this.#connUnacked += n;
    if (this.#connUnacked >= this.#connWindow / 2) {
      this.#urgent.push(windowUpdate(0, this.#connUnacked));
      this.#connUnacked = 0;
      this.#scheduleFlush();
    }
    if (!s.closed) {
      const u = (this.#streamUnacked.get(s.id) ?? 0) + n;
      if (u >= this.#streamWindow / 2) {
        this.#urgent.push(windowUpdate(s.id, u));
        this.#streamUnacked.set(s.id, 0);
        this.#scheduleFlush();
      } else {
        this.#streamUnacked.set(s.id, u);
      }
    }
  }

  #terminate(err: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const s of this.#streams.values()) s.abort(err);
    this.#streams.clear();
    this.#resolveClosed();
  }

  #connectionError(code: number, message: string): void {
    this.#urgent.push(frame(T.GOAWAY, 0, 0, goawayPayload(this.#lastStreamId, code, message)));
    this.#flush();
    this.#terminate(new Error(`HTTP/2 protocol error: ${message}`));
    this.#transport.end();
  }

  // ------------------------------------------------------------------ input

  #onData(chunk: Uint8Array): void {
    if (this.#ended) return;
    this.#inbuf.push(chunk);
    this.#inlen += chunk.length;
    try {
      this.#parse();
    } catch (err) {
      this.#connectionError(H2Error.PROTOCOL_ERROR, (err as Error).message);
    }
  }

  #take(n: number): Uint8Array {
    const first = this.#inbuf[0]!;
    let out: Uint8Array;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#inbuf.shift();
      else this.#inbuf[0] = first.subarray(n);
    } else {
      out = allocBuffer(n);
      let off = 0;
      while (off < n) {
        const c = this.#inbuf[0]!;
        const want = n - off;
        if (c.length <= want) {
          out.set(c, off);
          off += c.length;
          this.#inbuf.shift();
        } else {
          out.set(c.subarray(0, want), off);
          this.#inbuf[0] = c.subarray(want);
          off += want;
        }
      }
    }
    this.#inlen -= n;
    return out;
  }

  /** Takes `n` bytes (n <= buffered) as views of the input chunks. */
  #takePieces(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    let left = n;
    while (left > 0) {
      const c = this.#inbuf[0]!;
      if (c.length <= left) {
        if (c.length > 0) out.push(c);
        left -= c.length;
        this.#inbuf.shift();
      } else {
        out.push(c.subarray(0, left));
        this.#inbuf[0] = c.subarray(left);
        left = 0;
      }
    }
    this.#inlen -= n;
    return out;
  }

  #peek(n: number): Uint8Array {
    if (this.#inbuf[0]!.length >= n) return this.#inbuf[0]!;
    // Join just enough leading chunks to hold n bytes.
    let count = 0;
    let total = 0;
    while (total < n) total += this.#inbuf[count++]!.length;
    const merged = joinChunks(this.#inbuf.slice(0, count), total);
    this.#inbuf.splice(0, count, merged);
    return merged;
  }

  #parse(): void {
    if (!this.#prefaceSeen) {
      if (this.#inlen < PREFACE.length) return;
      const p = this.#take(PREFACE.length);
      if (!bytesEqual(p, PREFACE)) throw new Error("bad connection preface");
      this.#prefaceSeen = true;
    }
    while (!this.#ended && this.#inlen >= 9) {
      const h = this.#peek(9);
      const len = (h[0]! << 16) | (h[1]! << 8) | h[2]!;
      if (this.#inlen < 9 + len) return;
      const type = h[3]!;
      const flags = h[4]!;
      const streamId = readU32(h, 5) & 0x7fffffff;
      this.#take(9);
      if (
        type === T.DATA && !(flags & F.PADDED) && !this.#headerBlock && len > 0 &&
        this.#inbuf[0]!.length < len
      ) {
        // A DATA payload split across input chunks goes to its stream in pieces (no copy).
        this.#onDataPieces(flags, streamId, this.#takePieces(len), len);
        continue;
      }
      const payload = len > 0 ? this.#take(len) : EMPTY;
      this.#onFrame(type, flags, streamId, payload);
    }
  }

  #onFrame(type: number, flags: number, id: number, payload: Uint8Array): void {
    if (this.#headerBlock && type !== T.CONTINUATION) throw new Error("expected CONTINUATION");
    switch (type) {
      case T.SETTINGS:
        if (flags & F.ACK) return;
        if (payload.length % 6 !== 0) throw new Error("bad SETTINGS length");
        for (let i = 0; i < payload.length; i += 6) {
          const key = (payload[i]! << 8) | payload[i + 1]!;
          const value = readU32(payload, i + 2);
          if (key === 0x4) {
            const delta = value - this.#peerInitialWindow;
            this.#peerInitialWindow = value;
            for (const s of this.#streams.values()) s.sendWindow += delta;
          } else if (key === 0x5) {
            this.#peerMaxFrame = Math.max(16384, Math.min(value, 16777215));
          }
        }
        this.#urgent.push(frame(T.SETTINGS, F.ACK, 0, EMPTY));
        this.#readyAll();
        return;
      case T.PING:
        if (!(flags & F.ACK)) {
          this.#urgent.push(frame(T.PING, F.ACK, 0, payload));
          this.#scheduleFlush();
        }
        return;
      case T.WINDOW_UPDATE: {
        const inc = readU32(payload, 0) & 0x7fffffff;
        if (id === 0) {
          this.#connSendWindow += inc;
          this.#readyAll();
        } else {
          const s = this.#streams.get(id);
          if (s) {
            s.sendWindow += inc;
            this.schedule(s);
          }
        }
        return;
      }
      case T.HEADERS: {
        let p = payload;
        if (flags & F.PADDED) {
          const pad = p[0]!;
          p = p.subarray(1, p.length - pad);
        }
        if (flags & F.PRIORITY) p = p.subarray(5);
        this.#headerBlock = { streamId: id, endStream: (flags & F.END_STREAM) !== 0, parts: [p] };
        if (flags & F.END_HEADERS) this.#endHeaders();
        return;
      }
      case T.CONTINUATION:
        if (!this.#headerBlock || this.#headerBlock.streamId !== id) {
          throw new Error("unexpected CONTINUATION");
        }
        this.#headerBlock.parts.push(payload);
        if (flags & F.END_HEADERS) this.#endHeaders();
        return;
      case T.DATA: {
        // Flow control counts the whole payload, padding included.
        let p = payload;
        let padding = 0;
        if (flags & F.PADDED) {
          padding = p[0]! + 1;
          p = p.subarray(1, p.length - p[0]!);
        }
        this.#onDataPieces(flags, id, p.length > 0 ? [p] : [], payload.length, padding);
        return;
      }
      case T.RST_STREAM: {
        const s = this.#streams.get(id);
        if (s) {
          s.abort(new Error(`stream cancelled by the peer (code ${readU32(payload, 0)})`));
          this.#streams.delete(id);
        }
        return;
      }
      case T.GOAWAY:
        return;
      default:
        return; // PRIORITY, PUSH_PROMISE from a client (invalid, ignored), unknown types
    }
  }

  /** A DATA frame of `frameLength` bytes (`padding` of them padding) carrying `pieces`. */
  #onDataPieces(
    flags: number,
    id: number,
    pieces: readonly Uint8Array[],
    frameLength: number,
    padding = 0,
  ): void {
    const s = this.#streams.get(id);
    if (!s || s.closed) {
      // Closed or unknown stream: keep the connection window going.
      this.#connUnacked += frameLength;
      if (this.#connUnacked >= this.#connWindow / 2) {
        this.#urgent.push(windowUpdate(0, this.#connUnacked));
        this.#connUnacked = 0;
        this.#scheduleFlush();
      }
      return;
    }
    if (padding > 0) this.consumed(s, padding);
    for (const p of pieces) s.pushData(p);
    if (flags & F.END_STREAM) s.pushEnd();
  }

  #endHeaders(): void {
    const hb = this.#headerBlock!;
    this.#headerBlock = undefined;
    const block = hb.parts.length === 1 ? hb.parts[0]! : concatBytes(hb.parts);
    let headers: [string, string][];
    try {
      headers = this.#decoder.decode(block);
    } catch (err) {
      this.#connectionError(H2Error.COMPRESSION_ERROR, (err as Error).message);
      return;
    }
    const existing = this.#streams.get(hb.streamId);
    if (existing) {
      // Trailers from the client: only END_STREAM matters.
      if (hb.endStream) existing.pushEnd();
      return;
    }
    if (hb.streamId <= this.#lastStreamId || hb.streamId % 2 === 0) {
      if (hb.streamId <= this.#lastStreamId) return; // a closed stream's trailers
      throw new Error(`bad stream id ${hb.streamId}`);
    }
    this.#lastStreamId = hb.streamId;
    const s = new H2Stream(this, hb.streamId, headers, this.#peerInitialWindow);
    this.#streams.set(s.id, s);
    if (hb.endStream) s.pushEnd();
    this.#onStream(s);
  }

  // ------------------------------------------------------------------ output

  #readyAll(): void {
    for (const s of this.#streams.values()) if (s.out.length > 0) this.#ready.add(s);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#ended) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Frames queued output into one buffer (up to maxWrite) and writes it; repeats while possible. */
  #flush(): void {
    while (!this.#ended || this.#urgent.length > 0) {
      if (this.#blockedOnTransport && this.#urgent.length === 0) return;
      const parts: Uint8Array[] = [];
      const copiedCallbacks: (() => void)[] = [];
      let size = 0;
      for (const u of this.#urgent) {
        parts.push(u);
        size += u.length;
      }
      this.#urgent = [];
      if (!this.#blockedOnTransport) {
        // Round-robin over streams with output, one frame each per pass.
        let progress = true;
        while (progress && size < this.#maxWrite) {
          progress = false;
          for (const s of this.#ready) {
            if (size >= this.#maxWrite) break;
            const item = s.out[0];
            if (!item) {
              this.#ready.delete(s);
              continue;
            }
            if (item.headers) {
              parts.push(
                frameHeader(
                  T.HEADERS,
                  F.END_HEADERS | (item.endStream ? F.END_STREAM : 0),
                  s.id,
                  item.headers.length,
                ),
              );
              parts.push(item.headers);
              size += 9 + item.headers.length;
              s.out.shift();
              if (item.endStream) s.sentEnd();
              progress = true;
              continue;
            }
            const data = item.data!;
            const remaining = data.length - item.offset;
            const n = Math.min(remaining, this.#peerMaxFrame, s.sendWindow, this.#connSendWindow);
            if (n <= 0 && remaining > 0) {
              this.#ready.delete(s); // blocked by flow control; WINDOW_UPDATE reschedules
              continue;
            }
            parts.push(frameHeader(T.DATA, 0, s.id, n));
            parts.push(data.subarray(item.offset, item.offset + n));
            size += 9 + n;
            item.offset += n;
            s.sendWindow -= n;
            this.#connSendWindow -= n;
            s.queued -= n;
            if (item.offset >= data.length) {
              s.out.shift();
              if (item.onCopied) copiedCallbacks.push(item.onCopied);
            }
            s.drained();
            progress = true;
          }
        }
      }
      if (parts.length === 0) return;
      const headroom = this.#envelope?.headroom ?? 0;
      const buf = allocBuffer(headroom + size);
      let off = headroom;
      for (const p of parts) {
        buf.set(p, off);
        off += p.length;
      }
      for (const cb of copiedCallbacks) cb();
      const out = this.#envelope ? this.#envelope.seal(buf, size) : buf;
      if (!this.#transport.write(out)) this.#blockedOnTransport = true;
      if (this.#ended) return;
    }
  }
}

function frameHeader(type: number, flags: number, id: number, len: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  writeFrameHeader(h, 0, len, type, flags, id);
  return h;
}
