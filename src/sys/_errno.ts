/**
 * errno handling: read it right after a synchronous libc call, on the same
 * thread, and turn it into a {@linkcode SysError}.
 *
 * @module
 */
import { libc } from "./_libc.ts";

/** Linux errno numbers (identical on x86_64 and aarch64). */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  6: "ENXIO",
  7: "E2BIG",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  18: "EXDEV",
  19: "ENODEV",
  20: "ENOTDIR",
  21: "EISDIR",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  26: "ETXTBSY",
  27: "EFBIG",
  28: "ENOSPC",
  30: "EROFS",
  31: "EMLINK",
  32: "EPIPE",
  36: "ENAMETOOLONG",
  38: "ENOSYS",
  39: "ENOTEMPTY",
  40: "ELOOP",
  71: "EPROTO",
  88: "ENOTSOCK",
  95: "EOPNOTSUPP",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  107: "ENOTCONN",
  110: "ETIMEDOUT",
  111: "ECONNREFUSED",
};

/** errno values the code branches on. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EEXIST: 17,
  ENOTDIR: 20,
  EINVAL: 22,
  ELOOP: 40,
  ECONNABORTED: 103,
} as const;

/** A failed system call: `syscall`, the numeric `errno` and its name in `code`. */
export class SysError extends Error {
  /** Always `"SysError"`. */
  override name = "SysError";
  /** The libc function that failed, e.g. `"bind"`. */
  readonly syscall: string;
  /** The raw errno value. */
  readonly errno: number;
  /** The errno name, e.g. `"EACCES"` (`"E<number>"` when unknown). */
  readonly code: string;

  /**
   * Builds the error from errno.
   *
   * @param syscall the libc function that failed
   * @param errno the errno it left
   * @param subject optional path or other detail, shown quoted in the message
   */
  constructor(syscall: string, errno: number, subject?: string) {
    const code = ERRNO_NAMES[errno] ?? `E${errno}`;
    const where = subject === undefined ? "" : ` ${JSON.stringify(subject)}`;
    super(`${syscall}${where} failed: ${code} (errno ${errno})`);
    this.syscall = syscall;
    this.errno = errno;
    this.code = code;
  }
}

/**
 * Reads the calling thread's errno. Call it immediately after a synchronous
 * libc call returned its failure value, before anything else can run.
 */
export function lastErrno(): number {
  const p = libc().__errno_location();
  if (p === null) return 0;
  return new Deno.UnsafePointerView(p).getInt32(0);
}

/** Throws a SysError built from errno if `result` is negative, else returns it. */
export function check(syscall: string, result: number, subject?: string): number {
  if (result < 0) throw new SysError(syscall, lastErrno(), subject);
  return result;
}
