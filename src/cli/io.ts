/**
 * The process surface a command sees: output streams, stdin, environment
 * and terminal facts. Injected so commands run in-process in tests.
 *
 * @module
 */

/** A sink for text or bytes. */
export interface Sink {
  /** Writes text (UTF-8) completely. */
  write(text: string): void;
  /** Writes bytes completely. */
  writeBytes(bytes: Uint8Array): void;
  /** The stream form, for large binary output. */
  readonly writable: WritableStream<Uint8Array>;
  /** Whether the sink is a terminal. */
  readonly isTerminal: boolean;
}

/** Everything a command may touch of its process. */
export interface Io {
  stdout: Sink;
  stderr: Sink;
  stdin: { readable: ReadableStream<Uint8Array>; isTerminal: boolean };
  env(name: string): string | undefined;
  /** Process-wide cancellation (Ctrl-C). */
  signal: AbortSignal;
}

const encoder = new TextEncoder();

function sinkOf(file: typeof Deno.stdout | typeof Deno.stderr): Sink {
  return {
    write(text) {
      this.writeBytes(encoder.encode(text));
    },
    writeBytes(bytes) {
      let off = 0;
      while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
    },
    get writable() {
      return file.writable;
    },
    isTerminal: file.isTerminal(),
  };
}

/** The real process: Deno's stdio and environment. */
export function processIo(signal: AbortSignal): Io {
  return {
    stdout: sinkOf(Deno.stdout),
    stderr: sinkOf(Deno.stderr),
    stdin: {
      get readable() {
        return Deno.stdin.readable;
      },
      isTerminal: Deno.stdin.isTerminal(),
    },
    env: (name) => Deno.env.get(name),
    signal,
  };
}
