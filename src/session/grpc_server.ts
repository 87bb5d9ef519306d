/**
 * A minimal gRPC server for the session tunnel, where the daemon is the
 * client (protocol doc §2), on our own HTTP/2 server ({@linkcode H2Connection}).
 *
 * It exists instead of grpc-js' server for two reasons: handlers need the raw,
 * repeated request header fields (grpc-js joins them with `", "`, which
 * breaks patterns that contain commas), and the file-sync data path wants
 * pre-framed buffers written without extra copies.
 *
 * Only what the session needs: identity encoding, streaming in both
 * directions, status in trailers (or trailers-only for early errors).
 *
 * @module
 */

import { readU32, writeU32 } from "../launcher/h2_frames.ts";
import { GrpcCode } from "../client/grpc.ts";
import {
  allocBuffer,
  type ByteStream,
  H2Connection,
  type H2Options,
  type H2Stream,
  joinChunks,
} from "./h2_server.ts";

/** gRPC status codes (the client's table: one list for the whole program). */
export const Status = GrpcCode;

/** An error that a handler throws to end its call with a specific status. */
export class GrpcStatusError extends Error {
  override name = "GrpcStatusError";
  /** The gRPC status code. */
  readonly code: number;

  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** One incoming call, as seen by a handler. */
export interface ServerCall {
  /** The method path, e.g. `/moby.filesync.v1.FileSync/DiffCopy`. */
  readonly path: string;
  /** Request header fields by lower-case name, each repeated field kept separately, in order. */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** Aborted when the client cancels the call or the connection goes away. */
  readonly signal: AbortSignal;
  /** The next request message, or `null` once the client has half-closed. */
  recv(): Promise<Uint8Array | null>;
  /** Sends one response message. Resolves when it may be followed by more (backpressure). */
  send(message: Uint8Array): Promise<void>;
  /**
   * Sends one response message whose first 5 bytes are reserved for the gRPC
   * prefix (filled in here): avoids a copy for large messages.
   */
  sendFramed(frame: Uint8Array): Promise<void>;
  /**
   * Like {@linkcode ServerCall.sendFramed}, and also reports when the stream
   * is done with `frame` (so that its memory can be reused).
   */
  sendFramedTracked(frame: Uint8Array): { ready: Promise<void>; flushed: Promise<void> };
}

/** A method handler: resolving ends the call with OK; throwing ends it with an error status. */
export type Handler = (call: ServerCall) => Promise<void>;

/** First value of a header, or undefined. */
export function header(call: ServerCall, name: string): string | undefined {
  return call.headers.get(name)?.[0];
}

/** Options of {@linkcode serveGrpc}. */
export interface ServeOptions {
  /** HTTP/2 tuning (windows, output envelope). */
  h2?: H2Options;
}

/** A running server on one connection. */
export interface GrpcConnection {
  /** Settles when the HTTP/2 session has closed. */
  closed: Promise<void>;
  /** Closes the HTTP/2 session (pending calls are cancelled). */
  close(): void;
}

/**
 * Serves gRPC on `conn` (an established byte stream on which the peer is the
 * HTTP/2 client) with the given handlers, keyed by method path.
 */
export function serveGrpc(
  conn: ByteStream,
  handlers: ReadonlyMap<string, Handler>,
  opts: ServeOptions = {},
): GrpcConnection {
  const h2 = new H2Connection(conn, (stream) => handleStream(stream, handlers), opts.h2);
  return {
    closed: h2.closed,
    close: () => h2.close(),
  };
}

function headerMap(fields: readonly (readonly [string, string])[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [k, v] of fields) {
    const list = out.get(k);
    if (list) list.push(v);
    else out.set(k, [v]);
  }
  return out;
}

const RESPONSE_HEADERS: [string, string][] = [[":status", "200"], [
  "content-type",
  "application/grpc",
]];

function handleStream(stream: H2Stream, handlers: ReadonlyMap<string, Handler>): void {
  const headers = headerMap(stream.headers);
  const path = headers.get(":path")?.[0] ?? "";
  const handler = handlers.get(path);
  let finished = false;

  const finish = (code: number, message: string) => {
    if (finished) return;
    finished = true;
    if (stream.signal.aborted) return;
    const trailers: [string, string][] = [["grpc-status", String(code)]];
    if (message) trailers.push(["grpc-message", encodeGrpcMessage(message)]);
    if (!stream.headersSent) stream.respond([...RESPONSE_HEADERS, ...trailers], true);
    else stream.end(trailers);
  };

  if (!handler) {
    finish(Status.UNIMPLEMENTED, `unknown method ${path}`);
    return;
  }

  const reader = new MessageReader(stream);

  /** Writes one framed message; `flushed` settles once `buf` may be reused. */
  const write = (buf: Uint8Array): { ready: Promise<void>; flushed: Promise<void> } => {
    if (finished) {
      return {
        ready: Promise.reject(new GrpcStatusError(Status.CANCELLED, "call already finished")),
        flushed: Promise.resolve(),
      };
    }
    if (stream.signal.aborted) {
      return { ready: Promise.reject(cancelled(stream)), flushed: Promise.resolve() };
    }
    if (!stream.headersSent) stream.respond(RESPONSE_HEADERS);
    const { ready, copied } = stream.write(buf);
    return { ready: ready.catch(() => Promise.reject(cancelled(stream))), flushed: copied };
  };

  const frame = (buf: Uint8Array): Uint8Array => {
    buf[0] = 0;
    writeU32(buf, 1, buf.length - 5);
    return buf;
  };

  const call: ServerCall = {
    path,
    headers,
    signal: stream.signal,
    recv: () => reader.next(),
    send(message: Uint8Array) {
      const buf = new Uint8Array(5 + message.length);
      buf.set(message, 5);
      return write(frame(buf)).ready;
    },
    sendFramed(buf: Uint8Array) {
      return write(frame(buf)).ready;
    },
    sendFramedTracked(buf: Uint8Array) {
      return write(frame(buf));
    },
  };

  // A handler that throws before returning its promise fails only its own call.
  new Promise<void>((resolve) => resolve(handler(call))).then(
    () => finish(Status.OK, ""),
    (err: unknown) => {
      if (err instanceof GrpcStatusError) finish(err.code, err.message);
      else finish(Status.UNKNOWN, err instanceof Error ? err.message : String(err));
    },
  );
}

function cancelled(stream: H2Stream): GrpcStatusError {
  const reason = stream.signal.reason as Error | undefined;
  return new GrpcStatusError(
    Status.CANCELLED,
    `call cancelled: ${reason?.message ?? "stream closed"}`,
  );
}

/** Percent-encodes a grpc-message value (grpc spec: bytes outside 0x20..0x7e, and '%'). */
export function encodeGrpcMessage(message: string): string {
  const bytes = new TextEncoder().encode(message);
  let out = "";
  for (const b of bytes) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Splits the request byte stream into gRPC messages. */
class MessageReader {
  #stream: H2Stream;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;

  constructor(stream: H2Stream) {
    this.#stream = stream;
  }

  /** Takes `n` bytes from the front of the buffer (n <= buffered). */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return out;
    }
    const out = allocBuffer(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0]!;
      const want = n - off;
      if (c.length <= want) {
        out.set(c, off);
        off += c.length;
        this.#chunks.shift();
      } else {
        out.set(c.subarray(0, want), off);
        this.#chunks[0] = c.subarray(want);
        off += want;
      }
    }
    this.#buffered -= n;
    return out;
  }

  #pull(): Promise<boolean> {
    return this.#stream.read().then(
      (c) => {
        if (c === null) {
          this.#ended = true;
          return false;
        }
        this.#chunks.push(c);
        this.#buffered += c.length;
        return true;
      },
      (err) => {
        throw err instanceof GrpcStatusError
          ? err
          : new GrpcStatusError(Status.CANCELLED, `call cancelled: ${(err as Error).message}`);
      },
    );
  }

  /** The next message, or `null` once the client has half-closed. */
  async next(): Promise<Uint8Array | null> {
    for (;;) {
      if (this.#buffered >= 5) {
        if (this.#chunks[0]!.length < 5) this.#chunks = [joinChunks(this.#chunks, this.#buffered)];
        const head = this.#chunks[0]!;
        if (head[0] !== 0) {
          throw new GrpcStatusError(Status.UNIMPLEMENTED, "compressed messages are not supported");
        }
        const len = readU32(head, 1);
        if (this.#buffered >= 5 + len) {
          this.#take(5);
          return len === 0 ? new Uint8Array(0) : this.#take(len);
        }
      }
      if (this.#ended) {
        if (this.#buffered > 0) {
          throw new GrpcStatusError(Status.INTERNAL, "truncated gRPC message");
        }
        return null;
      }
      await this.#pull();
    }
  }
}
