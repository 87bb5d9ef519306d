/**
 * Byte streams over connected, non-blocking socket fds, for the data path of
 * a proxy, at a fraction of the CPU a plain `node:net` Socket costs per byte.
 *
 * Readiness and reads stay with Deno's own event loop (a `node:net` Socket
 * adopts the fd), but through its leanest path: the socket reads into one
 * large buffer that is reused (`onread`), so a read makes no buffer,
 * `Buffer`, readable-stream push or `"data"` event, and takes up to
 * {@linkcode READ_BUFFER_BYTES} at once. Writes go straight to the kernel
 * (send(2) with MSG_NOSIGNAL, synchronously on the JS thread); only what the
 * kernel does not take at once is copied into the socket's own write queue,
 * which writes it when the socket is writable and keeps later writes behind
 * it. A larger kernel send buffer ({@linkcode FdStreamOptions.sendBufferBytes})
 * makes that rare.
 *
 * The contract that makes the shared read buffer safe: a chunk handed to
 * {@linkcode FdStream.ondata} is valid only during that call (copy what you
 * keep). Each socket read fills the buffer and hands it to that socket's
 * callback at once, before any other read. {@linkcode FdStream.write} never
 * keeps a reference to the caller's bytes.
 *
 * @module
 */
import net from "node:net";
import { libc } from "./_libc.ts";
import { Errno, lastErrno, SysError } from "./_errno.ts";
import { SOCK } from "./_structs.ts";

/** Size of the shared read buffer (one read takes at most this much). */
export const READ_BUFFER_BYTES = 1 << 20;
/** Default for {@linkcode FdStreamOptions.highWaterMark}. */
const DEFAULT_HIGH_WATER_MARK = 64 << 10;

let sharedReadBuffer: Uint8Array<ArrayBuffer> | undefined;

/** Options for {@linkcode FdStream}. */
export interface FdStreamOptions {
  /** Bytes waiting to be written at which `write` starts returning false; default 64 KiB. */
  highWaterMark?: number;
  /**
   * Asks for this SO_SNDBUF (the kernel doubles it and caps the request at
   * `net.core.wmem_max`); best effort. Default: the system's.
   */
  sendBufferBytes?: number;
}

/**
 * A connected socket fd as a byte stream (see the module doc). The stream
 * owns the fd: {@linkcode FdStream.destroy} closes it. Nothing is read until
 * {@linkcode FdStream.resume}; a read or write error destroys the stream (see
 * {@linkcode FdStream.error}).
 *
 * @example
 * ```ts ignore
 * const s = new FdStream(fd);
 * s.ondata = (chunk) => other.write(chunk); // chunk is valid only during the call
 * s.onend = () => s.destroy();
 * s.resume();
 * ```
 */
export class FdStream {
  /** Each chunk read; valid only during the call (the buffer is shared and reused). */
  ondata: ((chunk: Uint8Array) => void) | undefined;
  /** The peer will send nothing more (EOF). */
  onend: (() => void) | undefined;
  /** Everything queued was written, after a `write` that returned false. */
  ondrain: (() => void) | undefined;
  /** Resolves once the stream is destroyed and its fd closed. */
  readonly closed: Promise<void>;
  /** The error that destroyed the stream, if one did. */
  error: Error | undefined;

  #fd: number;
  #sock: net.Socket;
  #reading = false;
  /** Chunks read while not reading (kept as copies; see the read callback). */
  #early: Uint8Array[] = [];
  /** Writes handed to the socket's queue and not completed yet: direct sends wait for them. */
  #queued = 0;
  #ending = false;
  #written = () => {
    this.#queued--;
  };

  /**
   * Takes ownership of `fd` (a connected, O_NONBLOCK socket).
   *
   * @throws {Error} if the fd cannot be adopted (it is closed then)
   */
  constructor(fd: number, options: FdStreamOptions = {}) {
    this.#fd = fd;
    if (options.sendBufferBytes !== undefined) {
      const value = new Uint8Array(4);
      new DataView(value.buffer).setInt32(0, options.sendBufferBytes, true);
      libc().setsockopt(fd, SOCK.SOL_SOCKET, SOCK.SO_SNDBUF, value, 4); // best effort
    }
    const buffer = sharedReadBuffer ??= new Uint8Array(READ_BUFFER_BYTES);
    let sock: net.Socket;
    try {
      sock = new net.Socket({
        fd,
        readable: true,
        writable: true,
        allowHalfOpen: true,
        writableHighWaterMark: options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK,
        // Reading starts with resume(): nothing may be read before `ondata` is set.
        pauseOnCreate: true,
        onread: { buffer, callback: (n: number, buf: Uint8Array) => this.#onRead(n, buf) },
      } as net.SocketConstructorOpts);
    } catch (err) {
      libc().close(fd);
      throw err;
    }
    this.#sock = sock;
    this.closed = new Promise((resolve) => sock.once("close", () => resolve()));
    sock.on("error", (err: Error) => {
      this.error ??= err;
      sock.destroy();
    });
    sock.on("end", () => this.onend?.());
    sock.on("drain", () => this.ondrain?.());
  }

  /** The fd (owned by the stream). */
  get fd(): number {
    return this.#fd;
  }

  /** True once the stream is destroyed (by {@linkcode FdStream.destroy} or an error). */
  get destroyed(): boolean {
    return this.#sock.destroyed;
  }

  /** Bytes accepted by `write` that the kernel has not taken yet. */
  get writableLength(): number {
    return this.#sock.writableLength;
  }

  /**
   * Starts or resumes reading: `ondata` is called as bytes arrive (never
   * from inside this call).
   */
  resume(): void {
    if (this.#reading || this.#sock.destroyed) return;
    this.#reading = true;
    if (this.#early.length === 0) {
      this.#sock.resume();
      return;
    }
    queueMicrotask(() => {
      while (this.#reading && this.#early.length > 0 && !this.#sock.destroyed) {
        this.ondata?.(this.#early.shift()!);
      }
      if (this.#reading && !this.#sock.destroyed) this.#sock.resume();
    });
  }

  /** Stops reading until {@linkcode FdStream.resume} (no `ondata` call follows this one). */
  pause(): void {
    if (!this.#reading) return;
    this.#reading = false;
    this.#sock.pause();
  }

  /**
   * Writes `bytes`: as much as the kernel takes now, at once; the rest is
   * copied and written when the socket is writable. Returns false when the
   * bytes waiting reach the high-water mark: `ondrain` follows once they are
   * written. Writes after `end` or `destroy` are dropped.
   */
  write(bytes: Uint8Array): boolean {
    const sock = this.#sock;
    if (sock.destroyed || this.#ending) return false;
    let rest = bytes;
    if (this.#queued === 0) {
      const n = this.#send(bytes);
      if (n < 0) return false;
      if (n === bytes.length) return true;
      rest = bytes.subarray(n);
    }
    this.#queued++;
    return sock.write(rest.slice(), this.#written);
  }

  /** Half-closes (shutdown SHUT_WR) once everything written has gone out; then `onFinish`. */
  end(onFinish?: () => void): void {
    const sock = this.#sock;
    if (sock.destroyed || this.#ending) return;
    this.#ending = true;
    if (onFinish) sock.once("finish", onFinish);
    sock.end();
  }

  /** Closes the fd; bytes not yet written are dropped. Idempotent. */
  destroy(): void {
    this.#reading = false;
    this.#early = [];
    this.#sock.destroy();
  }

  #onRead(n: number, buf: Uint8Array): boolean {
    if (!this.#reading) {
      // Not expected (the socket is created paused and pause() stops it at once), but if a
      // read arrives anyway it must neither be lost nor handed out unasked: keep a copy.
      this.#early.push(buf.slice(0, n));
      return false;
    }
    this.ondata?.(buf.subarray(0, n));
    return this.#reading;
  }

  /** send(2) with MSG_NOSIGNAL: bytes taken (0 if none could be), or -1 after a fatal error. */
  #send(bytes: Uint8Array): number {
    const lib = libc();
    for (;;) {
      const n = Number(lib.send(this.#fd, bytes, BigInt(bytes.length), SOCK.MSG_NOSIGNAL));
      if (n >= 0) return n;
      const errno = lastErrno();
      if (errno === Errno.EINTR) continue;
      if (errno === Errno.EAGAIN) return 0;
      this.error ??= new SysError("send", errno);
      this.#sock.destroy();
      return -1;
    }
  }
}
