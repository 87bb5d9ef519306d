/**
 * Output plumbing for the displays: a byte buffer that collects one
 * refresh worth of output, and a serial writer that copes with partial,
 * synchronous or asynchronous writes.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Where the printers put their text and raw bytes. */
export interface TextSink {
  /** Appends UTF-8 text. */
  text(s: string): void;
  /** Appends raw bytes (log output is written as received). */
  bytes(b: Uint8Array): void;
}

/** A {@linkcode TextSink} that accumulates into one byte array. */
export class ByteBuffer implements TextSink {
  #chunks: Uint8Array[] = [];
  #size = 0;

  text(s: string): void {
    if (s !== "") this.bytes(encoder.encode(s));
  }

  bytes(b: Uint8Array): void {
    if (b.length === 0) return;
    this.#chunks.push(b);
    this.#size += b.length;
  }

  /** Bytes collected so far. */
  get size(): number {
    return this.#size;
  }

  /** Returns everything collected and empties the buffer. */
  take(): Uint8Array {
    const out = new Uint8Array(this.#size);
    let off = 0;
    for (const c of this.#chunks) {
      out.set(c, off);
      off += c.length;
    }
    this.#chunks = [];
    this.#size = 0;
    return out;
  }
}

/** Anything with a `write` like `Deno.stderr` (sync or async, maybe partial). */
export interface ByteWriter {
  write(bytes: Uint8Array): Promise<number> | number;
}

/**
 * Writes chunks in order. Synchronous writers are written to at once;
 * asynchronous ones are queued and drained in the background. Write errors
 * (a closed pipe) stop further output silently, as upstream ignores them.
 */
export class SerialWriter {
  #out: ByteWriter;
  #queue: Uint8Array[] = [];
  #pending: Promise<void> | undefined = undefined;
  #failed = false;

  constructor(out: ByteWriter) {
    this.#out = out;
  }

  /** Queues `bytes` for writing. */
  push(bytes: Uint8Array): void {
    if (this.#failed || bytes.length === 0) return;
    if (this.#pending !== undefined) {
      this.#queue.push(bytes);
      return;
    }
    this.#writeNow(bytes);
  }

  /** Resolves once everything queued has been written (or writing failed). */
  async flush(): Promise<void> {
    while (this.#pending !== undefined) await this.#pending;
  }

  #writeNow(bytes: Uint8Array): void {
    let rest = bytes;
    while (rest.length > 0) {
      let r: Promise<number> | number;
      try {
        r = this.#out.write(rest);
      } catch {
        this.#fail();
        return;
      }
      if (typeof r === "number") {
        if (!(r > 0)) {
          this.#fail();
          return;
        }
        rest = rest.subarray(r);
        continue;
      }
      this.#pending = this.#drain(r, rest).finally(() => {
        this.#pending = undefined;
      });
      return;
    }
  }

  async #drain(first: Promise<number>, rest: Uint8Array): Promise<void> {
    try {
      let n = await first;
      for (;;) {
        if (!(n > 0)) throw new Error("short write");
        rest = rest.subarray(n);
        if (rest.length === 0) {
          const next = this.#queue.shift();
          if (next === undefined) return;
          rest = next;
        }
        n = await this.#out.write(rest);
      }
    } catch {
      this.#fail();
    }
  }

  #fail(): void {
    this.#failed = true;
    this.#queue = [];
  }
}
