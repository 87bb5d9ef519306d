/**
 * The `Control/Session` byte tunnel: the bidi `BytesMessage` stream to the
 * daemon, wrapped as a byte stream so that an HTTP/2 server can run over it
 * (protocol doc §2).
 *
 * Messages are encoded and decoded by hand: incoming `data` is a view (no
 * copy); outgoing buffers sealed with {@linkcode tunnelEnvelope} are sent as
 * they are, any other write becomes one message (one copy).
 *
 * @module
 */

import type { BuildkitClient, CallStatus, ClientCall, HeaderList } from "../client/mod.ts";

/** Buffers that already are encoded BytesMessages (made by {@linkcode tunnelEnvelope}). */
const sealed = new WeakSet<Uint8Array>();

/**
 * Lets a writer build tunnel messages in place: it leaves `headroom` bytes
 * in front of its payload and calls `seal`, which writes the BytesMessage
 * header there. The tunnel then sends the buffer as is (no copy).
 */
export const tunnelEnvelope = {
  headroom: 6,
  seal(buf: Uint8Array, payloadLength: number): Uint8Array {
    const hlen = 1 + varintSize(payloadLength);
    const start = 6 - hlen;
    buf[start] = 0x0a;
    writeVarint(buf, start + 1, payloadLength);
    const out = buf.subarray(start, 6 + payloadLength);
    sealed.add(out);
    return out;
  },
};

/** Largest BytesMessage we send (the daemon accepts 16 MiB). */
const MAX_OUT_MESSAGE = 4 << 20;

/** Encodes `BytesMessage{data}`: tag 0x0a, varint length, bytes. */
export function encodeBytesMessage(data: Uint8Array): Uint8Array {
  const n = data.length;
  const lenBytes = varintSize(n);
  const out = new Uint8Array(1 + lenBytes + n);
  out[0] = 0x0a;
  let pos = writeVarint(out, 1, n);
  out.set(data, pos);
  pos += n;
  return out;
}

/** Decodes a `BytesMessage`, returning a view of its `data` (no copy). */
export function decodeBytesMessage(bytes: Uint8Array): Uint8Array {
  const buf = bytes;
  let pos = 0;
  let data: Uint8Array = EMPTY;
  while (pos < buf.length) {
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const wire = tag & 7;
    if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      pos = p2;
      if (tag >>> 3 === 1) data = buf.subarray(pos, pos + len);
      pos += len;
    } else if (wire === 0) {
      pos = readVarint(buf, pos)[1];
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`cannot decode BytesMessage: wire type ${wire}`);
    }
  }
  return data;
}

const EMPTY = new Uint8Array(0);

/** Size of `n` as a protobuf varint (n < 2^53). */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Writes `n` as a varint at `pos`; returns the position after it. */
export function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Reads a varint (up to 2^53) at `pos`; returns [value, position after]. */
export function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let result = 0;
  let mul = 1;
  for (;;) {
    if (pos >= buf.length) throw new Error("cannot decode varint: truncated message");
    const b = buf[pos++]!;
    result += (b & 0x7f) * mul;
    if (b < 0x80) return [result, pos];
    mul *= 128;
    if (mul > 2 ** 63) throw new Error("cannot decode varint: too long");
  }
}

/** The tunnel as a byte stream plus the underlying call. */
export interface Tunnel {
  /** Bytes from the daemon in, bytes to the daemon out. */
  duplex: TunnelStream;
  /** The gRPC call (cancel it to tear everything down at once). */
  call: ClientCall;
  /** Settles when the call has ended (status received), never rejects. */
  ended: Promise<CallStatus>;
}

/** `write` returns false while more than this many bytes are not yet framed. */
const WRITE_HIGH_WATER = 1 << 20;

type Listener = (arg?: unknown) => void;

/**
 * The tunnel seen as a byte stream, with the part of the `node:stream`
 * Duplex interface our HTTP/2 server uses (`data`, `end`, `error`, `close`
 * and `drain` events; `write` with backpressure; `end`). It is not a real
 * Duplex because `node:stream` alone costs a build about 13 ms of start-up.
 */
export class TunnelStream {
  #call: ClientCall;
  #listeners = new Map<string, Listener[]>();
  #inflight = 0;
  #blocked = false;
  #closed = false;

  /** @internal */
  constructor(call: ClientCall) {
    this.#call = call;
  }

  /** Adds a listener: `data` (Uint8Array), `end`, `error` (Error), `close`, `drain`. */
  on(event: string, fn: (arg: never) => void): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(fn as Listener);
    this.#listeners.set(event, list);
    return this;
  }

  /** @internal */
  emit(event: string, arg?: unknown): void {
    for (const fn of this.#listeners.get(event) ?? []) fn(arg);
  }

  /**
   * Sends bytes to the daemon: a buffer sealed by {@linkcode tunnelEnvelope}
   * is one message as it is; other bytes become one message each (split at
   * the message size limit). Returns false once too much waits to be
   * framed; `drain` follows when it has gone down.
   */
  write(chunk: Uint8Array): boolean {
    if (this.#closed) return false;
    const messages: Uint8Array[] = [];
    if (sealed.has(chunk)) messages.push(chunk);
    else {
      for (let off = 0; off < chunk.length; off += MAX_OUT_MESSAGE) {
        messages.push(encodeBytesMessage(chunk.subarray(off, off + MAX_OUT_MESSAGE)));
      }
    }
    for (const m of messages) {
      this.#inflight += m.length;
      this.#call.write(m).then(() => {
        this.#inflight -= m.length;
        if (this.#blocked && this.#inflight < WRITE_HIGH_WATER) {
          this.#blocked = false;
          this.emit("drain");
        }
      });
    }
    if (this.#inflight >= WRITE_HIGH_WATER) this.#blocked = true;
    return !this.#blocked;
  }

  /** Half-closes the call: no more bytes from us. */
  end(): void {
    this.#call.end();
  }

  /** Cancels the call. */
  destroy(): void {
    this.#call.cancel();
  }

  /** @internal The call ended: `end` (OK) or `error`, then `close`. */
  finish(status: CallStatus): void {
    if (this.#closed) return;
    this.#closed = true;
    if (status.code === 0) this.emit("end");
    else this.emit("error", new Error(`session ended: ${status.details}`));
    this.emit("close");
  }
}

/**
 * Opens `Control/Session` with the given metadata and returns it as a byte
 * stream. Ending the stream half-closes the call.
 */
export function openTunnel(client: BuildkitClient, metadata: HeaderList): Tunnel {
  const call = client.openSession(metadata);
  const stream = new TunnelStream(call);
  call.onMessage = (message) => {
    const data = decodeBytesMessage(message);
    if (data.length > 0) stream.emit("data", data);
  };
  const ended = call.status.then((status) => {
    stream.finish(status);
    return status;
  });
  return { duplex: stream, call, ended };
}
