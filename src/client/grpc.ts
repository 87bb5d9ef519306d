/**
 * A gRPC client over our own HTTP/2 (RFC 9113, client side): cleartext with
 * prior knowledge over unix or tcp sockets, or h2 over TLS.
 *
 * Why not grpc-js: loading it costs about 45 ms of CPU per command, which is
 * most of a small command's run time, and every byte of a build's context
 * goes through this layer. This client reads into large slabs and hands out
 * views (no copy for messages inside one read), frames outgoing DATA straight
 * into large output blocks (one copy), and needs nothing but the frame and
 * HPACK code the session server and the gatekeeper already use.
 *
 * Supported: unary, server-streaming and bidirectional calls, deadlines
 * (`grpc-timeout` plus a local timer), cancellation, flow control with
 * per-call pause, SETTINGS, PING, GOAWAY, RST_STREAM, CONTINUATION, padding.
 * No compression (requests never ask for it), no server push.
 *
 * @module
 */

import { after } from "../timer.ts";
import { encodeHeaders, HpackDecoder } from "../launcher/hpack.ts";
import {
  concatBytes,
  DEFAULT_WINDOW,
  Flag,
  FRAME_HEADER_BYTES,
  FrameError,
  FrameSplitter,
  FrameType as T,
  goawayPayload,
  H2Code,
  MIN_MAX_FRAME_SIZE,
  PREFACE,
  readU31,
  unpadded,
  writeFrameHeader,
  writeU31,
} from "../launcher/h2_frames.ts";

/** gRPC status codes. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** Header fields in order, names in lower case; repeated fields stay separate. */
export type HeaderList = readonly (readonly [string, string])[];

/** How a call ended. */
export interface CallStatus {
  code: number;
  /** `grpc-message`, percent-decoded. */
  details: string;
  /** Response headers and trailers (`-bin` values still base64). */
  metadata: HeaderList;
}

/** A call that ended with a status other than OK. */
export class GrpcError extends Error {
  override name = "GrpcError";
  /** gRPC status code ({@linkcode GrpcCode}). */
  readonly code: number;
  /** The status message. */
  readonly details: string;
  /** Response headers and trailers. */
  readonly metadata: HeaderList;

  constructor(status: CallStatus) {
    super(`${codeName(status.code)}: ${status.details}`);
    this.code = status.code;
    this.details = status.details;
    this.metadata = status.metadata;
  }

  /** The decoded `grpc-status-details-bin` trailer (a `google.rpc.Status`), if any. */
  get statusDetails(): Uint8Array | undefined {
    const v = this.metadata.find(([k]) => k === "grpc-status-details-bin")?.[1];
    if (v === undefined) return undefined;
    try {
      return decodeBase64(v);
    } catch {
      return undefined;
    }
  }
}

/** The name of a status code, e.g. `UNAVAILABLE`. */
export function codeName(code: number): string {
  for (const [k, v] of Object.entries(GrpcCode)) if (v === code) return k;
  return `code ${code}`;
}

/** A byte transport under the HTTP/2 connection. */
export interface Transport {
  /** Starts reading: `onData` for each chunk (views stay valid), `onClose` once at the end. */
  start(onData: (chunk: Uint8Array) => void, onClose: (err?: Error) => void): void;
  /** Writes all of `buf`. */
  write(buf: Uint8Array): Promise<void>;
  /** Closes both directions. */
  close(): void;
}

/** Reads of a `Deno.Conn` land in slabs of this size; views of them are handed out. */
const READ_SLAB = 512 << 10;
/** A new slab is started when less than this is left in the current one. */
const READ_MIN = 64 << 10;

/** A {@linkcode Transport} over a Deno connection (unix, tcp or TLS). */
export function connTransport(conn: Deno.Conn): Transport {
  let closed = false;
  return {
    start(onData, onClose) {
      (async () => {
        let slab = new Uint8Array(READ_SLAB);
        let off = 0;
        try {
          for (;;) {
            if (slab.length - off < READ_MIN) {
              slab = new Uint8Array(READ_SLAB);
              off = 0;
            }
            const n = await conn.read(slab.subarray(off));
            if (n === null) break;
            const chunk = slab.subarray(off, off + n);
            off += n;
            onData(chunk);
          }
          onClose();
        } catch (err) {
          onClose(closed ? undefined : err as Error);
        }
      })();
    },
    async write(buf) {
      let off = 0;
      while (off < buf.length) off += await conn.write(buf.subarray(off));
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}

/** Options of {@linkcode H2Channel}. */
export interface ChannelOptions {
  /** `:authority` of every request. */
  authority: string;
  /** `:scheme`: `http` (cleartext) or `https` (TLS). */
  scheme: "http" | "https";
  /** Receive window per stream (and for the connection). Default 16 MiB. */
  window?: number;
  /** Largest message accepted from the server. Default 16 MiB. */
  maxReceiveMessage?: number;
}

/** Options of one call. */
export interface CallOptions {
  /** Extra request metadata, in order. */
  metadata?: HeaderList;
  /** Absolute deadline (ms since the epoch). */
  deadline?: number;
  /** Cancels the call when aborted. */
  signal?: AbortSignal;
}

/** Bytes of DATA framed into one output block at most. */
const OUT_BLOCK = 256 << 10;
/** Framing pauses while this much is waiting to be written. */
const OUT_HIGH_WATER = 4 << 20;
const DEFAULT_RECEIVE_WINDOW = 16 << 20;
const MAX_WINDOW = 2 ** 31 - 1;

interface PendingWrite {
  bytes: Uint8Array;
  offset: number;
  done?: () => void;
}

/** One call: a request stream from our side. */
export class ClientCall {
  /** Settles once with the final status (never rejects). */
  readonly status: Promise<CallStatus>;
  /** Gets each response message (a view, valid for as long as it is kept). */
  onMessage: (message: Uint8Array) => void = () => {};

  /** @internal */
  readonly id: number;
  /** @internal Send window. */
  sendWindow: number;
  /** @internal Unframed request bytes. */
  pending: PendingWrite[] = [];
  /** @internal */
  pendingBytes = 0;
  /** @internal END_STREAM is owed after the pending bytes. */
  endRequested = false;
  /** @internal END_STREAM was sent. */
  localEnded = false;

  #channel: H2Channel;
  #resolve!: (s: CallStatus) => void;
  #ended = false;
  #metadata: [string, string][] = [];
  #headersSeen = false;
  // Message reassembly.
  #prefix = new Uint8Array(5);
  #prefixLen = 0;
  #msgLen = -1;
  #msgParts: Uint8Array[] = [];
  #msgGot = 0;
  // Flow control of what we receive.
  #unacked = 0;
  #paused = false;
  #cancelDeadline: (() => void) | undefined;
  #signal: AbortSignal | undefined;
  #onAbort = () => this.cancel();

  /** @internal */
  constructor(channel: H2Channel, id: number, sendWindow: number, opts: CallOptions) {
    this.#channel = channel;
    this.id = id;
    this.sendWindow = sendWindow;
    this.status = new Promise((r) => this.#resolve = r);
    if (opts.deadline !== undefined) {
      const ms = Math.max(0, opts.deadline - Date.now());
      this.#cancelDeadline = after(
        ms,
        () => this.#fail(GrpcCode.DEADLINE_EXCEEDED, "deadline exceeded", H2Code.CANCEL),
      );
    }
    if (opts.signal) {
      this.#signal = opts.signal;
      opts.signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /** Whether the call has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Sends one message. Resolves once it has been framed for the wire (flow
   * control permitting), which is the backpressure signal.
   */
  write(message: Uint8Array): Promise<void> {
    if (this.#ended || this.endRequested) return Promise.resolve();
    const prefix = new Uint8Array(5);
    new DataView(prefix.buffer).setUint32(1, message.length, false);
    return new Promise((resolve) => {
      this.pending.push({ bytes: prefix, offset: 0 });
      this.pending.push({ bytes: message, offset: 0, done: resolve });
      this.pendingBytes += 5 + message.length;
      this.#channel.schedule(this);
    });
  }

  /** Half-closes: no more messages from us. */
  end(): void {
    if (this.#ended || this.endRequested) return;
    this.endRequested = true;
    this.#channel.schedule(this);
  }

  /** Cancels the call (RST_STREAM CANCEL); its status becomes CANCELLED. */
  cancel(): void {
    this.#fail(GrpcCode.CANCELLED, "call cancelled by the client", H2Code.CANCEL);
  }

  /** Stops granting the server more window for this call until {@linkcode resume}. */
  pause(): void {
    this.#paused = true;
  }

  /** Grants the window withheld since {@linkcode pause}. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#ack(0);
  }

  /** @internal A decoded header block (`endStream`: its HEADERS frame ended the stream). */
  onHeaders(fields: [string, string][], endStream: boolean): void {
    if (this.#ended) return;
    const isTrailers = this.#headersSeen;
    this.#headersSeen = true;
    if (!isTrailers) {
      const status = fields.find(([k]) => k === ":status")?.[1];
      if (status !== "200") {
        const grpcStatus = fields.find(([k]) => k === "grpc-status");
        if (!grpcStatus || status !== undefined) {
          this.#fail(
            httpToGrpc(Number(status)),
            `unexpected HTTP status ${status ?? "(none)"} from the server`,
            H2Code.CANCEL,
            fields,
          );
          return;
        }
      }
    }
    for (const f of fields) if (!f[0].startsWith(":")) this.#metadata.push(f);
    if (endStream || isTrailers) this.#finishFromTrailers(fields);
  }

  /** @internal A DATA payload (`frameLength` counts padding, for flow control). */
  onData(payload: Uint8Array, frameLength: number, endStream: boolean): void {
    if (this.#ended) return;
    this.#ack(frameLength);
    let pos = 0;
    while (pos < payload.length) {
      if (this.#msgLen < 0) {
        const take = Math.min(5 - this.#prefixLen, payload.length - pos);
        this.#prefix.set(payload.subarray(pos, pos + take), this.#prefixLen);
        this.#prefixLen += take;
        pos += take;
        if (this.#prefixLen < 5) break;
        if (this.#prefix[0] !== 0) {
          this.#fail(GrpcCode.INTERNAL, "compressed message without negotiated encoding");
          return;
        }
        this.#msgLen = new DataView(this.#prefix.buffer).getUint32(1, false);
        if (this.#msgLen > this.#channel.maxReceiveMessage) {
          this.#fail(
            GrpcCode.RESOURCE_EXHAUSTED,
            `received message larger than max (${this.#msgLen} vs. ${this.#channel.maxReceiveMessage})`,
          );
          return;
        }
        this.#prefixLen = 0;
        this.#msgGot = 0;
      }
      const take = Math.min(this.#msgLen - this.#msgGot, payload.length - pos);
      if (take > 0) this.#msgParts.push(payload.subarray(pos, pos + take));
      this.#msgGot += take;
      pos += take;
      if (this.#msgGot === this.#msgLen) {
        const parts = this.#msgParts;
        this.#msgParts = [];
        this.#msgLen = -1;
        const msg = parts.length === 1 ? parts[0]! : concatBytes(parts);
        try {
          this.onMessage(msg);
        } catch (err) {
          this.#fail(GrpcCode.INTERNAL, `cannot handle a response: ${(err as Error).message}`);
          return;
        }
        if (this.#ended) return;
      }
    }
    if (endStream) {
      this.#fail(GrpcCode.INTERNAL, "server closed the stream without sending trailers");
    }
  }

  /** @internal RST_STREAM from the server. */
  onReset(h2code: number): void {
    const code = h2code === H2Code.REFUSED_STREAM
      ? GrpcCode.UNAVAILABLE
      : h2code === H2Code.CANCEL
      ? GrpcCode.CANCELLED
      : h2code === 0xb /* ENHANCE_YOUR_CALM */
      ? GrpcCode.RESOURCE_EXHAUSTED
      : h2code === 0xc /* INADEQUATE_SECURITY */
      ? GrpcCode.PERMISSION_DENIED
      : GrpcCode.INTERNAL;
    this.#fail(code, `stream reset by the server (HTTP/2 error ${h2code})`, null);
  }

  /** @internal The connection went away. */
  onConnectionLost(details: string): void {
    this.#fail(GrpcCode.UNAVAILABLE, details, null);
  }

  /** Grants the server window for `consumed` more bytes (withheld while paused). */
  #ack(consumed: number): void {
    this.#unacked += consumed;
    if (!this.#paused && this.#unacked >= this.#channel.window / 4) {
      this.#channel.sendWindowUpdate(this.id, this.#unacked);
      this.#unacked = 0;
    }
  }

  #finishFromTrailers(fields: [string, string][]): void {
    const raw = fields.find(([k]) => k === "grpc-status")?.[1];
    const code = raw === undefined ? GrpcCode.UNKNOWN : Number(raw);
    const msg = fields.find(([k]) => k === "grpc-message")?.[1];
    let details = msg === undefined ? "" : percentDecode(msg);
    if (raw === undefined) details = "server ended the call without a grpc-status";
    if (code === GrpcCode.OK && (this.#msgLen >= 0 || this.#prefixLen > 0)) {
      this.#fail(GrpcCode.INTERNAL, "server ended the call in the middle of a message");
      return;
    }
    // The server is done; if we still have a request stream open, it is reset.
    this.#settle(
      { code, details, metadata: this.#metadata },
      this.localEnded ? null : H2Code.NO_ERROR,
    );
  }

  #fail(code: number, details: string, rst: number | null = H2Code.CANCEL, extra?: HeaderList) {
    if (this.#ended) return;
    if (extra) {
      for (const f of extra) {
        if (!f[0].startsWith(":")) this.#metadata.push([f[0], f[1]]);
      }
    }
    this.#settle({ code, details, metadata: this.#metadata }, rst);
  }

  #settle(status: CallStatus, rst: number | null): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#cancelDeadline?.();
    this.#signal?.removeEventListener("abort", this.#onAbort);
    for (const p of this.pending) p.done?.();
    this.pending = [];
    this.pendingBytes = 0;
    this.#channel.release(this, rst);
    this.#resolve(status);
  }
}

/** An HTTP/2 connection carrying gRPC calls. */
export class H2Channel {
  /** Receive window per stream and for the connection. */
  readonly window: number;
  /** Largest message accepted. */
  readonly maxReceiveMessage: number;
  /** Settles when the connection is gone (never rejects). */
  readonly closed: Promise<void>;

  #transport: Transport;
  #opts: ChannelOptions;
  #calls = new Map<number, ClientCall>();
  #nextId = 1;
  #decoder = new HpackDecoder();
  #splitter = new FrameSplitter();
  // Sending.
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerMaxFrame = MIN_MAX_FRAME_SIZE;
  #connSendWindow = DEFAULT_WINDOW;
  #sending = new Set<ClientCall>();
  #outQueue: Uint8Array[] = [];
  #outBytes = 0;
  #block: Uint8Array | undefined;
  #blockStart = 0;
  #blockPos = 0;
  #writing = false;
  #pumpScheduled = false;
  // Receiving.
  #connUnacked = 0;
  /** Stream id whose header block is being continued, or 0. */
  #continuing = 0;
  /**
   * Fragments of the header block being received, and whether its HEADERS
   * frame had END_STREAM. Kept here, not in the call: the block must reach
   * the HPACK decoder whole even if its call ends before the last fragment.
   */
  #headerParts: Uint8Array[] = [];
  #headerEndStream = false;
  #goneReason: string | undefined;
  #goawayLastId = MAX_WINDOW;
  /** GOAWAY received: the transport closes when the last call ends. */
  #draining = false;
  #resolveClosed!: () => void;

  constructor(transport: Transport, opts: ChannelOptions) {
    this.#transport = transport;
    this.#opts = opts;
    this.window = Math.min(opts.window ?? DEFAULT_RECEIVE_WINDOW, MAX_WINDOW);
    this.maxReceiveMessage = opts.maxReceiveMessage ?? 16 << 20;
    this.closed = new Promise((r) => this.#resolveClosed = r);
    // Preface, SETTINGS (no push, our stream window), and the connection window.
    const settings = new Uint8Array(12);
    const dv = new DataView(settings.buffer);
    dv.setUint16(0, 0x2); // ENABLE_PUSH
    dv.setUint32(2, 0);
    dv.setUint16(6, 0x4); // INITIAL_WINDOW_SIZE
    dv.setUint32(8, this.window);
    this.#emit(PREFACE);
    this.#emitFrame(T.SETTINGS, 0, 0, settings);
    if (this.window > DEFAULT_WINDOW) this.sendWindowUpdate(0, this.window - DEFAULT_WINDOW);
    transport.start((chunk) => this.#onChunk(chunk), (err) => {
      this.#lost(err ? `connection error: ${err.message}` : "connection closed by the server");
    });
  }

  /** Whether new calls can still be made. */
  get usable(): boolean {
    return this.#goneReason === undefined;
  }

  /** Starts a call of `method` (a full path, `/package.Service/Method`). */
  call(method: string, opts: CallOptions = {}): ClientCall {
    const id = this.#nextId;
    this.#nextId += 2;
    const call = new ClientCall(this, id, this.#peerInitialWindow, opts);
    if (this.#goneReason !== undefined || id > MAX_WINDOW) {
      call.onConnectionLost(this.#goneReason ?? "out of stream ids");
      return call;
    }
    if (opts.signal?.aborted) {
      call.cancel();
      return call;
    }
    this.#calls.set(id, call);
    const fields: [string, string][] = [
      [":method", "POST"],
      [":scheme", this.#opts.scheme],
      [":path", method],
      [":authority", this.#opts.authority],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ["user-agent", "buildctl-deno"],
    ];
    if (opts.deadline !== undefined) {
      fields.push(["grpc-timeout", grpcTimeout(opts.deadline - Date.now())]);
    }
    for (const [k, v] of opts.metadata ?? []) fields.push([k.toLowerCase(), v]);
    const block = encodeHeaders(fields);
    let off = 0;
    do {
      const end = Math.min(block.length, off + this.#peerMaxFrame);
      const flags = end === block.length ? Flag.END_HEADERS : 0;
      this.#emitFrame(off === 0 ? T.HEADERS : T.CONTINUATION, flags, id, block.subarray(off, end));
      off = end;
    } while (off < block.length);
    return call;
  }

  /** One request, one response. Rejects with {@linkcode GrpcError} unless OK. */
  async unary(method: string, request: Uint8Array, opts: CallOptions = {}): Promise<Uint8Array> {
    const call = this.call(method, opts);
    let response: Uint8Array | undefined;
    call.onMessage = (m) => response = m;
    call.write(request);
    call.end();
    const status = await call.status;
    if (status.code !== GrpcCode.OK) throw new GrpcError(status);
    if (!response) {
      throw new GrpcError({
        code: GrpcCode.INTERNAL,
        details: "no response message",
        metadata: status.metadata,
      });
    }
    return response;
  }

  /** One request, a stream of responses to `onMessage`. Rejects with {@linkcode GrpcError} unless OK. */
  async serverStream(
    method: string,
    request: Uint8Array,
    onMessage: (m: Uint8Array) => void,
    opts: CallOptions = {},
  ): Promise<void> {
    const call = this.call(method, opts);
    call.onMessage = onMessage;
    call.write(request);
    call.end();
    const status = await call.status;
    if (status.code !== GrpcCode.OK) throw new GrpcError(status);
  }

  /** Cancels every call and closes the connection. */
  close(): void {
    this.#lost("channel closed");
  }

  #decodeHeaders(parts: Uint8Array[]): [string, string][] {
    const block = parts.length === 1 ? parts[0]! : concatBytes(parts);
    return this.#decoder.decode(block, 1 << 20);
  }

  /** A protocol error: the connection is unusable. */
  #fatal(err: Error): void {
    this.#emitFrame(T.GOAWAY, 0, 0, goawayPayload(0, H2Code.PROTOCOL_ERROR));
    this.#lost(`protocol error: ${err.message}`, true);
    // Let the GOAWAY go out first.
    this.#afterWrites(() => this.#transport.close());
  }

  /** @internal */
  sendWindowUpdate(stream: number, increment: number): void {
    if (increment <= 0 || this.#goneReason !== undefined) return;
    const p = new Uint8Array(4);
    writeU31(p, 0, increment);
    this.#emitFrame(T.WINDOW_UPDATE, 0, stream, p);
  }

  /** @internal The call has request bytes or an END_STREAM to send. */
  schedule(call: ClientCall): void {
    if (call.ended) return;
    this.#sending.add(call);
    if (!this.#pumpScheduled) {
      this.#pumpScheduled = true;
      queueMicrotask(() => {
        this.#pumpScheduled = false;
        this.#pump();
      });
    }
  }

  /** @internal The call ended: forget it, resetting the stream when `rst` is a code. */
  release(call: ClientCall, rst: number | null): void {
    this.#sending.delete(call);
    if (!this.#calls.delete(call.id)) return;
    if (rst !== null && this.#goneReason === undefined) {
      const p = new Uint8Array(4);
      new DataView(p.buffer).setUint32(0, rst, false);
      this.#emitFrame(T.RST_STREAM, 0, call.id, p);
    }
    if (this.#draining && this.#calls.size === 0) this.#transport.close();
  }

  // ------------------------------------------------------------------ output

  /** Frames pending request data of all calls, as flow control allows. */
  #pump(): void {
    for (const call of this.#sending) {
      if (this.#outBytes >= OUT_HIGH_WATER) return;
      if (call.ended) {
        this.#sending.delete(call);
        continue;
      }
      while (call.pendingBytes > 0) {
        const room = Math.min(this.#peerMaxFrame, call.sendWindow, this.#connSendWindow);
        if (room <= 0 || this.#outBytes >= OUT_HIGH_WATER) break;
        const n = Math.min(room, call.pendingBytes);
        const last = n === call.pendingBytes && call.endRequested;
        const buf = this.#reserve(FRAME_HEADER_BYTES + n);
        let pos = writeFrameHeader(
          buf.bytes,
          buf.offset,
          n,
          T.DATA,
          last ? Flag.END_STREAM : 0,
          call.id,
        );
        let left = n;
        while (left > 0) {
          const item = call.pending[0]!;
          const take = Math.min(left, item.bytes.length - item.offset);
          buf.bytes.set(item.bytes.subarray(item.offset, item.offset + take), pos);
          pos += take;
          item.offset += take;
          left -= take;
          if (item.offset === item.bytes.length) {
            call.pending.shift();
            item.done?.();
          }
        }
        call.pendingBytes -= n;
        call.sendWindow -= n;
        this.#connSendWindow -= n;
        if (last) call.localEnded = true;
      }
      if (call.pendingBytes === 0) {
        if (call.endRequested && !call.localEnded) {
          this.#emitFrame(T.DATA, Flag.END_STREAM, call.id);
          call.localEnded = true;
        }
        this.#sending.delete(call);
      }
    }
    this.#flush();
  }

  /** Room for `n` bytes in the current output block. */
  #reserve(n: number): { bytes: Uint8Array; offset: number } {
    if (!this.#block || this.#block.length - this.#blockPos < n) {
      this.#sealBlock();
      this.#block = new Uint8Array(Math.max(OUT_BLOCK, n));
      this.#blockStart = 0;
      this.#blockPos = 0;
    }
    const offset = this.#blockPos;
    this.#blockPos += n;
    return { bytes: this.#block, offset };
  }

  #sealBlock(): void {
    if (this.#block && this.#blockPos > this.#blockStart) {
      const part = this.#block.subarray(this.#blockStart, this.#blockPos);
      this.#outQueue.push(part);
      this.#outBytes += part.length;
      this.#blockStart = this.#blockPos;
    }
  }

  #emit(bytes: Uint8Array): void {
    const buf = this.#reserve(bytes.length);
    buf.bytes.set(bytes, buf.offset);
    this.#scheduleFlush();
  }

  #emitFrame(type: number, flags: number, stream: number, payload?: Uint8Array): void {
    const len = payload?.length ?? 0;
    const buf = this.#reserve(FRAME_HEADER_BYTES + len);
    const pos = writeFrameHeader(buf.bytes, buf.offset, len, type, flags, stream);
    if (payload) buf.bytes.set(payload, pos);
    this.#scheduleFlush();
  }

  #flushScheduled = false;
  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #afterWritesWaiters: (() => void)[] = [];
  #afterWrites(fn: () => void): void {
    // Frames still in the current block count as unwritten (a flush is scheduled for them).
    this.#sealBlock();
    if (!this.#writing && this.#outQueue.length === 0) fn();
    else this.#afterWritesWaiters.push(fn);
  }

  #flush(): void {
    this.#sealBlock();
    if (this.#writing || this.#outQueue.length === 0) {
      if (!this.#writing) this.#afterWritesWaiters.splice(0).forEach((f) => f());
      return;
    }
    this.#writing = true;
    (async () => {
      try {
        while (this.#outQueue.length > 0) {
          const parts = this.#outQueue;
          this.#outQueue = [];
          // Neighbouring views of one block are one range: write it at once.
          for (const buf of coalesce(parts)) {
            await this.#transport.write(buf);
            this.#outBytes -= buf.length;
          }
          if (this.#sending.size > 0) this.#pump();
          this.#sealBlock();
        }
      } catch (err) {
        this.#outQueue = [];
        this.#outBytes = 0;
        this.#lost(`connection error: ${(err as Error).message}`);
      } finally {
        this.#writing = false;
        this.#afterWritesWaiters.splice(0).forEach((f) => f());
      }
    })();
  }

  // ------------------------------------------------------------------- input

  #onChunk(chunk: Uint8Array): void {
    try {
      this.#splitter.push(chunk, (buf, off, len) => this.#onFrame(buf, off, len));
    } catch (err) {
      this.#fatal(err as Error);
    }
  }

  #onFrame(buf: Uint8Array, off: number, len: number): void {
    const type = buf[off + 3]!;
    const flags = buf[off + 4]!;
    const stream = readU31(buf, off + 5);
    if (this.#continuing !== 0 && (type !== T.CONTINUATION || stream !== this.#continuing)) {
      throw new FrameError("expected a CONTINUATION frame");
    }
    const payload = buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len);
    switch (type) {
      case T.DATA: {
        this.#connUnacked += len;
        if (this.#connUnacked >= this.window / 4) {
          this.sendWindowUpdate(0, this.#connUnacked);
          this.#connUnacked = 0;
        }
        const call = this.#calls.get(stream);
        if (call) call.onData(unpadded(buf, off), len, (flags & Flag.END_STREAM) !== 0);
        break;
      }
      case T.HEADERS: {
        this.#headerParts.push(unpadded(buf, off));
        this.#headerEndStream = (flags & Flag.END_STREAM) !== 0;
        if (flags & Flag.END_HEADERS) this.#endHeaderBlock(stream);
        else this.#continuing = stream;
        break;
      }
      case T.CONTINUATION: {
        if (this.#continuing !== stream) throw new FrameError("unexpected CONTINUATION frame");
        this.#headerParts.push(payload);
        if (flags & Flag.END_HEADERS) {
          this.#continuing = 0;
          this.#endHeaderBlock(stream);
        }
        break;
      }
      case T.RST_STREAM:
        if (len !== 4) throw new FrameError("RST_STREAM of the wrong size");
        this.#calls.get(stream)?.onReset(
          new DataView(payload.buffer, payload.byteOffset).getUint32(0),
        );
        break;
      case T.SETTINGS:
        if (flags & Flag.ACK) break;
        if (len % 6 !== 0) throw new FrameError("SETTINGS of the wrong size");
        this.#applySettings(payload);
        this.#emitFrame(T.SETTINGS, Flag.ACK, 0);
        break;
      case T.PING:
        if (len !== 8) throw new FrameError("PING of the wrong size");
        if (!(flags & Flag.ACK)) this.#emitFrame(T.PING, Flag.ACK, 0, payload.slice());
        break;
      case T.GOAWAY: {
        if (len < 8) throw new FrameError("GOAWAY too short");
        this.#goawayLastId = readU31(payload, 0);
        const code = new DataView(payload.buffer, payload.byteOffset).getUint32(4);
        const debug = new TextDecoder().decode(payload.subarray(8));
        this.#goaway(code, debug);
        break;
      }
      case T.WINDOW_UPDATE: {
        if (len !== 4) throw new FrameError("WINDOW_UPDATE of the wrong size");
        const inc = readU31(payload, 0);
        if (stream === 0) this.#connSendWindow += inc;
        else {
          const call = this.#calls.get(stream);
          if (call) call.sendWindow += inc;
        }
        if (this.#sending.size > 0) this.#pump();
        break;
      }
      case T.PUSH_PROMISE:
        throw new FrameError("PUSH_PROMISE although push is disabled");
      default:
        // PRIORITY and unknown frame types are ignored.
        break;
    }
  }

  /**
   * A complete header block: decoded even for streams we forgot (HPACK
   * state), then handed to the stream's call if it is still there.
   */
  #endHeaderBlock(stream: number): void {
    const parts = this.#headerParts;
    this.#headerParts = [];
    const fields = this.#decodeHeaders(parts);
    this.#calls.get(stream)?.onHeaders(fields, this.#headerEndStream);
  }

  #applySettings(p: Uint8Array): void {
    const dv = new DataView(p.buffer, p.byteOffset, p.length);
    for (let i = 0; i < p.length; i += 6) {
      const id = dv.getUint16(i);
      const value = dv.getUint32(i + 2);
      if (id === 0x4) {
        if (value > MAX_WINDOW) throw new FrameError("INITIAL_WINDOW_SIZE too large");
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const call of this.#calls.values()) call.sendWindow += delta;
      } else if (id === 0x5) {
        if (value < MIN_MAX_FRAME_SIZE || value > (1 << 24) - 1) {
          throw new FrameError("MAX_FRAME_SIZE out of range");
        }
        this.#peerMaxFrame = value;
      }
    }
    if (this.#sending.size > 0) this.#pump();
  }

  #goaway(code: number, debug: string): void {
    const why = `the server closed the connection (HTTP/2 GOAWAY ${code}${
      debug ? `: ${debug}` : ""
    })`;
    this.#goneReason ??= why;
    this.#draining = true;
    for (const call of [...this.#calls.values()]) {
      if (call.id > this.#goawayLastId) call.onConnectionLost(why);
    }
    if (this.#calls.size === 0) this.#transport.close();
  }

  /** The connection is unusable: every call fails; the transport closes unless `keepOpen`. */
  #lost(details: string, keepOpen = false): void {
    this.#goneReason ??= details;
    for (const call of [...this.#calls.values()]) call.onConnectionLost(details);
    this.#calls.clear();
    this.#sending.clear();
    if (!keepOpen) this.#transport.close();
    this.#resolveClosed();
  }
}

/** Joins views that are adjacent in the same buffer. */
function coalesce(parts: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const p of parts) {
    const prev = out[out.length - 1];
    if (prev && prev.buffer === p.buffer && prev.byteOffset + prev.length === p.byteOffset) {
      out[out.length - 1] = new Uint8Array(prev.buffer, prev.byteOffset, prev.length + p.length);
    } else out.push(p);
  }
  return out;
}

/** `grpc-timeout` for `ms` milliseconds (at most 8 digits per unit). */
export function grpcTimeout(ms: number): string {
  const v = Math.max(0, Math.ceil(ms));
  if (v < 1e8) return `${v}m`;
  const s = Math.ceil(v / 1000);
  if (s < 1e8) return `${s}S`;
  return `${Math.min(Math.ceil(s / 3600), 99_999_999)}H`;
}

/** gRPC's mapping of HTTP status codes of non-gRPC responses. */
function httpToGrpc(status: number): number {
  switch (status) {
    case 400:
      return GrpcCode.INTERNAL;
    case 401:
      return GrpcCode.UNAUTHENTICATED;
    case 403:
      return GrpcCode.PERMISSION_DENIED;
    case 404:
      return GrpcCode.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcCode.UNAVAILABLE;
    default:
      return GrpcCode.UNKNOWN;
  }
}

/** Decodes `grpc-message` (percent-encoded UTF-8; bad escapes stay as they are). */
export function percentDecode(s: string): string {
  if (!s.includes("%")) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25 && i + 2 < s.length && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      // Whole code points: a lone half of a surrogate pair would encode as U+FFFD.
      const ch = String.fromCodePoint(s.codePointAt(i)!);
      for (const b of new TextEncoder().encode(ch)) bytes.push(b);
      i += ch.length - 1;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Decodes base64 with or without padding (gRPC `-bin` values). */
function decodeBase64(s: string): Uint8Array {
  const padded = s + "===".slice((s.length + 3) % 4);
  const bin = atob(padded);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
