/**
 * Root-only log files of the launcher: the JSON-lines audit log and one
 * text log per daemon. They live in the root-owned 0700 log directory, are
 * created 0600, and are rotated once (to `.1`) when they grow past a limit.
 *
 * @module
 */

/** Rotate a log when it is larger than this at open time. */
export const ROTATE_BYTES = 8 * 1024 * 1024;

const enc = new TextEncoder();

/** Appends one line (a newline is added if missing). Errors are swallowed: logging never fails a request. */
export function appendLine(path: string, line: string): void {
  try {
    Deno.writeFileSync(path, enc.encode(line.endsWith("\n") ? line : line + "\n"), {
      append: true,
      create: true,
      mode: 0o600,
    });
  } catch { /* the log is best effort */ }
}

/** Renames `path` to `path.1` when it is larger than {@linkcode ROTATE_BYTES}. */
export function rotateIfLarge(path: string): void {
  try {
    const st = Deno.lstatSync(path);
    if (st.isFile && st.size > ROTATE_BYTES) Deno.renameSync(path, `${path}.1`);
  } catch { /* missing: nothing to rotate */ }
}

/** Reads at most the last `bytes` bytes of a file, starting at a line boundary. */
export function tail(path: string, bytes: number): string {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch {
    return "";
  }
  try {
    const size = file.statSync().size;
    const start = Math.max(0, size - bytes);
    file.seekSync(start, Deno.SeekMode.Start);
    const buf = new Uint8Array(size - start);
    let off = 0;
    while (off < buf.length) {
      const n = file.readSync(buf.subarray(off));
      if (n === null || n === 0) break;
      off += n;
    }
    let text = new TextDecoder().decode(buf.subarray(0, off));
    if (start > 0) {
      const nl = text.indexOf("\n");
      text = nl >= 0 ? text.slice(nl + 1) : text;
    }
    return text;
  } finally {
    file.close();
  }
}

/** A logger bound to one file, prefixing each line with time and a tag. */
export interface TextLog {
  /** Writes one line. */
  write(message: string): void;
  /** The file's path. */
  readonly path: string;
}

/** Creates a {@linkcode TextLog}. */
export function textLog(path: string, tag: string): TextLog {
  return {
    path,
    write(message: string) {
      appendLine(path, `${new Date().toISOString()} ${tag}: ${message}`);
    },
  };
}
