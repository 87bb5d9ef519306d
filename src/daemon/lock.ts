/**
 * File locks (flock via `Deno.FsFile.lock`). The kernel drops a flock when
 * its holder dies, so a lock can never go stale after `kill -9`; the lock
 * file itself may stay and is harmless. The holder writes its pid into the
 * start lock so that waiters can say whom they wait for.
 *
 * Deno has no non-blocking try-lock, so a timeout races the pending lock
 * call; on timeout the process is about to report an error and exit, which
 * releases everything.
 *
 * @module
 */

import { BuildctlError, ExitCode } from "../errors.ts";
import { after } from "../timer.ts";

/** A held lock; release it (or exit) to let others in. */
export interface HeldLock {
  readonly path: string;
  readonly file: Deno.FsFile;
  /** Unlocks and closes (idempotent). */
  release(): void;
}

/** Options of {@linkcode acquireLock}. */
export interface LockOptions {
  /** Exclusive (writers) or shared (readers). */
  exclusive: boolean;
  /** Give up after this long (0 or undefined = wait forever). */
  timeoutMs?: number;
  /** Called once if the lock is not ours after `waitNoticeMs` (default 2 s). */
  onWaiting?: (holderPid: number | undefined) => void;
  waitNoticeMs?: number;
  /** Write our pid into the file once held (exclusive locks only). */
  writePid?: boolean;
  /** Mode for a new lock file. */
  mode?: number;
}

/** Opens (creating it if needed) and locks `path`. */
export async function acquireLock(path: string, opts: LockOptions): Promise<HeldLock> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, {
      read: true,
      write: true,
      create: true,
      mode: opts.mode ?? 0o644,
    });
  } catch (err) {
    if (!(err instanceof Deno.errors.PermissionDenied) || opts.exclusive) throw err;
    // A shared lock needs only a readable file (another user's daemon).
    file = await Deno.open(path, { read: true });
  }
  let cancelNotice: (() => void) | undefined;
  let cancelTimeout: (() => void) | undefined;
  try {
    if (opts.onWaiting) {
      cancelNotice = after(opts.waitNoticeMs ?? 2000, () => opts.onWaiting!(readHolder(path)));
    }
    const locked = file.lock(opts.exclusive);
    if (opts.timeoutMs && opts.timeoutMs > 0) {
      const timeout = new Promise<"timeout">((resolve) => {
        cancelTimeout = after(opts.timeoutMs!, () => resolve("timeout"));
      });
      if ((await Promise.race([locked, timeout])) === "timeout") {
        const holder = readHolder(path);
        throw new BuildctlError(
          `timed out after ${
            Math.round(opts.timeoutMs / 1000)
          }s waiting for the daemon lock ${path}` +
            (holder ? ` (held by pid ${holder})` : ""),
          {
            exitCode: ExitCode.Unavailable,
            hint:
              "another buildctl is starting or stopping the daemon; retry, or check it with 'buildctl daemon state'",
          },
        );
      }
    } else {
      await locked;
    }
  } catch (err) {
    // On timeout the pending lock call still holds the file; the process exits soon.
    if (!(err instanceof BuildctlError)) file.close();
    throw err;
  } finally {
    cancelNotice?.();
    cancelTimeout?.();
  }
  if (opts.writePid && opts.exclusive) {
    try {
      await file.truncate(0);
      await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
    } catch { /* informational only */ }
  }
  let released = false;
  return {
    path,
    file,
    release() {
      if (released) return;
      released = true;
      try {
        file.unlockSync();
      } catch { /* closing unlocks too */ }
      try {
        file.close();
      } catch { /* already closed */ }
    },
  };
}

function readHolder(path: string): number | undefined {
  try {
    const n = Number(Deno.readTextFileSync(path).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
