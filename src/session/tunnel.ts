/**
 * The `Control/Session` byte tunnel: the bidi `BytesMessage` stream to the
 * daemon, wrapped as a `node:stream` Duplex so that an HTTP/2 server can run
 * over it (protocol doc §2).
 *
 * Messages are encoded and decoded by hand: incoming `data` is a view (no
 * copy); outgoing buffers sealed with {@linkcode tunnelEnvelope} are sent as
 * they are, other writes are joined into one message (one copy) while the
 * previous message is in flight (`_writev`).
 *
 * @module
 */

import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
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
  seal(buf: Buffer, payloadLength: number): Buffer {
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
export function encodeBytesMessage(data: Uint8Array): Buffer {
  const n = data.length;
  const lenBytes = varintSize(n);
  const out = Buffer.allocUnsafe(1 + lenBytes + n);
  out[0] = 0x0a;
  let pos = writeVarint(out, 1, n);
  out.set(data, pos);
  pos += n;
  return out;
}

/** Encodes the concatenation of several chunks as one `BytesMessage`. */
export function encodeBytesMessageV(chunks: Uint8Array[], total: number): Buffer {
  const out = Buffer.allocUnsafe(1 + varintSize(total) + total);
  out[0] = 0x0a;
  let pos = writeVarint(out, 1, total);
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

/** Decodes a `BytesMessage`, returning a view of its `data` (no copy). */
export function decodeBytesMessage(bytes: Uint8Array): Buffer {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let pos = 0;
  let data: Buffer = EMPTY;
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

const EMPTY = Buffer.alloc(0);

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

/** The tunnel as a Duplex plus the underlying call. */
export interface Tunnel {
  /** Bytes from the daemon in, bytes to the daemon out. */
  duplex: Duplex;
  /** The gRPC call (cancel it to tear everything down at once). */
  call: ClientCall;
  /** Settles when the call has ended (status received), never rejects. */
  ended: Promise<CallStatus>;
}

/**
 * Opens `Control/Session` with the given metadata and returns it as a Duplex.
 * Ending the Duplex's writable side half-closes the call.
 */
export function openTunnel(client: BuildkitClient, metadata: HeaderList): Tunnel {
  const call = client.openSession(metadata);
  let paused = false;
  const duplex = new Duplex({
    readableHighWaterMark: 4 << 20,
    writableHighWaterMark: 1 << 20,
    allowHalfOpen: true,
    read() {
      if (paused) {
        paused = false;
        call.resume();
      }
    },
    write(chunk: Buffer, _enc, cb) {
      sendAll([chunk], cb);
    },
    writev(items: { chunk: Buffer }[], cb) {
      sendAll(items.map((i) => i.chunk), cb);
    },
    final(cb) {
      call.end();
      cb();
    },
    destroy(err, cb) {
      call.cancel();
      cb(err);
    },
  });

  /**
   * Sends chunks to the daemon; cb once the call has framed the last one.
   * Sealed chunks (see {@linkcode tunnelEnvelope}) are already messages; runs
   * of plain chunks are joined into one message (up to MAX_OUT_MESSAGE).
   */
  function sendAll(chunks: Uint8Array[], cb: (err?: Error | null) => void) {
    const messages: Uint8Array[] = [];
    let run: Uint8Array[] = [];
    let runLen = 0;
    const endRun = () => {
      if (runLen === 0) return;
      for (let off = 0; off < run.length;) {
        // Split runs into messages of at most MAX_OUT_MESSAGE bytes (chunks are never cut).
        const part: Uint8Array[] = [];
        let n = 0;
        while (off < run.length && (n === 0 || n + run[off]!.length <= MAX_OUT_MESSAGE)) {
          n += run[off]!.length;
          part.push(run[off++]!);
        }
        messages.push(encodeBytesMessageV(part, n));
      }
      run = [];
      runLen = 0;
    };
    for (const c of chunks) {
      if (sealed.has(c)) {
        endRun();
        messages.push(c);
      } else {
        run.push(c);
        runLen += c.length;
      }
    }
    endRun();
    if (messages.length === 0) return cb();
    let last: Promise<void> = Promise.resolve();
    for (const m of messages) last = call.write(m);
    // Once the call has ended, writes are dropped; its status tells the session why.
    last.then(() => cb());
  }

  call.onMessage = (message) => {
    const data = decodeBytesMessage(message);
    if (data.length === 0) return;
    if (!duplex.push(data)) {
      paused = true;
      call.pause();
    }
  };
  const ended = call.status.then((status) => {
    if (status.code === 0) duplex.push(null);
    else duplex.destroy(new Error(`session ended: ${status.details}`));
    return status;
  });
  return { duplex, call, ended };
}
