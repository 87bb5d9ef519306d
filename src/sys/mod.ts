/**
 * Raw fds, sockets and process state through libc FFI: the only place in the
 * project that calls `Deno.dlopen` (see `_libc.ts`).
 *
 * Owns: unix listeners with kernel-checked peer credentials (SO_PEERCRED),
 * fd-level file operations for state-directory protection (openat with
 * O_NOFOLLOW, statx, mkdirat, …) and per-process settings (umask, rlimits,
 * mount namespace, …). Must not import anything outside `src/sys/` except
 * `node:` built-ins. All functions need `--allow-ffi`; Linux only.
 *
 * errno is read right after each synchronous call; the one call that runs on
 * another thread (`poll`, to wait for readiness) is used for its return value
 * only. Byte streams over accepted fds are handed to Deno's own I/O through
 * `node:net`, which adopts the fd: as a plain Socket (`socketFromFd`), or, on
 * a proxy's data path, as an {@linkcode FdStream} (reads into one reused
 * buffer, writes by send(2) at once; see `fd_stream.ts`).
 *
 * @module
 */
import net from "node:net";
import { libc } from "./_libc.ts";
import { check, Errno, lastErrno, SysError } from "./_errno.ts";
import {
  AT,
  cstring,
  decodeStatx,
  decodeUcred,
  O,
  type PeerCred,
  POLL,
  SOCK,
  sockaddrUn,
  STATX_MASK,
  STATX_SIZE,
  type StatxInfo,
} from "./_structs.ts";

export { Errno, ERRNO_NAMES, SysError } from "./_errno.ts";
export { FdStream, type FdStreamOptions, READ_BUFFER_BYTES } from "./fd_stream.ts";
export {
  AT,
  CLONE,
  FS_MAGIC,
  MNT,
  MS,
  O,
  type PeerCred,
  POLL,
  PR,
  RLIM_INFINITY,
  RLIMIT,
  S,
  SIG,
  SOCK,
  type StatxInfo,
  UNIX_PATH_MAX,
} from "./_structs.ts";

// --- sockets -------------------------------------------------------------------

/** An accepted connection: the caller owns `fd` and must close it (or adopt it). */
export interface AcceptedConn {
  /** The connected socket, O_NONBLOCK and O_CLOEXEC. */
  fd: number;
  /** Credentials the kernel recorded when the peer called connect(). */
  peer: PeerCred;
}

/** A listening unix socket created through FFI. */
export interface UnixListener extends AsyncIterable<AcceptedConn>, Disposable {
  /** The listening socket fd (owned by the listener). */
  readonly fd: number;
  /** The filesystem path it is bound to. */
  readonly path: string;
  /**
   * Waits for the next connection.
   *
   * @throws {Deno.errors.BadResource} once the listener is closed.
   * @throws {SysError} on any other accept4() failure.
   */
  accept(): Promise<AcceptedConn>;
  /**
   * Stops listening: pending and later `accept()` calls reject, the fd is
   * released once no wait is in flight, and the socket path is unlinked if it
   * is still the inode this listener bound.
   */
  close(): void;
}

/** Options for {@linkcode listenUnix}. */
export interface ListenUnixOptions {
  /** listen() backlog; default 128. */
  backlog?: number;
  /** chown the socket path (lchown semantics) after binding. */
  owner?: { uid: number; gid: number };
  /**
   * If something already exists at `path`: unlink it when it is a socket nobody
   * accepts on (a stale one), refuse otherwise. Default false: bind fails with
   * EADDRINUSE.
   */
  replaceStaleSocket?: boolean;
}

/**
 * Creates a unix stream socket bound to `path` with permissions `mode`.
 *
 * @param path filesystem path (at most 107 bytes); its directory must exist
 * @param mode permission bits applied to the socket path after bind, e.g. 0o666
 * @returns a listener whose accepted connections carry the peer's credentials
 * @throws {SysError} if a libc call fails (e.g. `code: "EADDRINUSE"`)
 * @example Accept one connection
 * ```ts ignore
 * using l = listenUnix("/run/x/gate.sock", 0o666);
 * const { fd, peer } = await l.accept();
 * console.log(peer.uid);
 * closeFd(fd);
 * ```
 */
export function listenUnix(
  path: string,
  mode: number,
  options: ListenUnixOptions = {},
): UnixListener {
  const lib = libc();
  const addr = sockaddrUn(path);
  const cpath = cstring(path);
  if (options.replaceStaleSocket) removeStaleSocket(path);
  const fd = check(
    "socket",
    lib.socket(SOCK.AF_UNIX, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0),
  );
  let wake = -1;
  try {
    // bind() creates the path with (socket inode mode & ~umask): set the socket inode's mode
    // first so the path is never more permissive than `mode`, then set it exactly.
    check("fchmod", lib.fchmod(fd, mode & 0o777));
    check("bind", lib.bind(fd, addr, addr.length), path);
    check("fchmodat", lib.fchmodat(AT.FDCWD, cpath, mode, 0), path);
    if (options.owner) {
      const { uid, gid } = options.owner;
      check("fchownat", lib.fchownat(AT.FDCWD, cpath, uid, gid, AT.SYMLINK_NOFOLLOW), path);
    }
    const bound = statx(AT.FDCWD, path, AT.SYMLINK_NOFOLLOW);
    check("listen", lib.listen(fd, options.backlog ?? 128), path);
    wake = check("eventfd", lib.eventfd(0, O.CLOEXEC | O.NONBLOCK));
    return new Listener(fd, wake, path, bound);
  } catch (err) {
    lib.close(fd);
    if (wake >= 0) lib.close(wake);
    throw err;
  }
}

function removeStaleSocket(path: string): void {
  let info: StatxInfo;
  try {
    info = statx(AT.FDCWD, path, AT.SYMLINK_NOFOLLOW);
  } catch (err) {
    if (err instanceof SysError && err.errno === Errno.ENOENT) return;
    throw err;
  }
  if (info.type !== "socket") throw new SysError("bind", Errno.EEXIST, path);
  // A socket somebody still accepts on is not stale.
  const lib = libc();
  const probe = check(
    "socket",
    lib.socket(SOCK.AF_UNIX, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0),
  );
  const addr = sockaddrUn(path);
  const rc = lib.connect(probe, addr, addr.length);
  const errno = rc < 0 ? lastErrno() : 0;
  lib.close(probe);
  if (rc === 0 || errno === Errno.EAGAIN) throw new SysError("bind", 98, /* EADDRINUSE */ path);
  unlinkat(AT.FDCWD, path, 0);
}

class Listener implements UnixListener {
  readonly fd: number;
  readonly path: string;
  #wake: number;
  #bound: StatxInfo;
  #closed = false;
  #released = false;
  #waits = 0;

  constructor(fd: number, wake: number, path: string, bound: StatxInfo) {
    this.fd = fd;
    this.#wake = wake;
    this.path = path;
    this.#bound = bound;
  }

  async accept(): Promise<AcceptedConn> {
    const lib = libc();
    for (;;) {
      if (this.#closed) throw new Deno.errors.BadResource("Listener has been closed");
      const fd = lib.accept4(this.fd, null, null, SOCK.CLOEXEC | SOCK.NONBLOCK);
      if (fd >= 0) {
        try {
          return { fd, peer: peerCred(fd) };
        } catch (err) {
          lib.close(fd);
          throw err;
        }
      }
      const errno = lastErrno();
      if (errno === Errno.EAGAIN) {
        await this.#waitReadable();
      } else if (errno !== Errno.EINTR && errno !== Errno.ECONNABORTED) {
        throw new SysError("accept4", errno, this.path);
      }
    }
  }

  async #waitReadable(): Promise<void> {
    // struct pollfd { int fd; short events; short revents; } x 2
    const fds = new Uint8Array(16);
    const v = new DataView(fds.buffer);
    v.setInt32(0, this.fd, true);
    v.setInt16(4, POLL.IN, true);
    v.setInt32(8, this.#wake, true);
    v.setInt16(12, POLL.IN, true);
    this.#waits++;
    try {
      await libc().poll_wait(fds, 2n, -1);
    } finally {
      this.#waits--;
      if (this.#closed && this.#waits === 0) this.#release();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#waits > 0) {
      // Wake the poll() running on another thread; the fds are released after it returns.
      const one = new Uint8Array(8);
      one[0] = 1;
      libc().write(this.#wake, one, 8n);
    } else {
      this.#release();
    }
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    const lib = libc();
    lib.close(this.fd);
    lib.close(this.#wake);
    try {
      const now = statx(AT.FDCWD, this.path, AT.SYMLINK_NOFOLLOW);
      if (now.ino === this.#bound.ino && now.dev === this.#bound.dev) {
        unlinkat(AT.FDCWD, this.path, 0);
      }
    } catch {
      // Already gone or replaced: leave whatever is there alone.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<AcceptedConn> {
    for (;;) {
      try {
        yield await this.accept();
      } catch (err) {
        if (err instanceof Deno.errors.BadResource) return;
        throw err;
      }
    }
  }
}

/**
 * Connects a unix stream socket to `path`.
 *
 * @returns the connected fd, O_NONBLOCK and O_CLOEXEC; the caller owns it
 * @throws {SysError} e.g. `code: "ENOENT"` or `"ECONNREFUSED"`
 */
export async function connectUnix(
  path: string,
  options: { timeoutMs?: number } = {},
): Promise<number> {
  const lib = libc();
  const addr = sockaddrUn(path);
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  for (;;) {
    const fd = check(
      "socket",
      lib.socket(SOCK.AF_UNIX, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0),
    );
    const rc = lib.connect(fd, addr, addr.length);
    if (rc === 0) return fd;
    const errno = lastErrno();
    lib.close(fd);
    // EAGAIN on a unix socket: the listener's backlog is full; try again shortly.
    if ((errno !== Errno.EAGAIN && errno !== Errno.EINTR) || Date.now() > deadline) {
      throw new SysError("connect", errno, path);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Returns the credentials the kernel recorded for the peer of a connected
 * unix socket (SO_PEERCRED): effective ids at connect() time, not now.
 *
 * @throws {SysError} if `fd` is not a connected unix socket
 */
export function peerCred(fd: number): PeerCred {
  const buf = new Uint8Array(12);
  const len = new Uint32Array([12]);
  check("getsockopt", libc().getsockopt(fd, SOCK.SOL_SOCKET, SOCK.SO_PEERCRED, buf, len));
  if (len[0] !== 12) throw new SysError("getsockopt", Errno.EINVAL, "SO_PEERCRED length");
  return decodeUcred(buf);
}

/** Creates a connected pair of unix stream sockets (O_NONBLOCK, O_CLOEXEC). */
export function socketPair(): [number, number] {
  const fds = new Int32Array(2);
  check(
    "socketpair",
    libc().socketpair(SOCK.AF_UNIX, SOCK.STREAM | SOCK.NONBLOCK | SOCK.CLOEXEC, 0, fds),
  );
  return [fds[0]!, fds[1]!];
}

/**
 * Wraps a connected socket fd as a `node:net` Socket (a Duplex) driven by
 * Deno's own event loop. The socket takes ownership of the fd: `destroy()`
 * closes it, `end()` half-closes (shutdown SHUT_WR) and `"end"` reports the
 * peer's half-close.
 */
export function socketFromFd(fd: number): net.Socket {
  return new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
}

/** shutdown(2): `how` is SOCK.SHUT_RD, SHUT_WR or SHUT_RDWR. */
export function shutdownFd(fd: number, how: number): void {
  check("shutdown", libc().shutdown(fd, how));
}

/** close(2). Not retried on EINTR (on Linux the fd is gone either way). */
export function closeFd(fd: number): void {
  const rc = libc().close(fd);
  if (rc < 0) {
    const errno = lastErrno();
    if (errno !== Errno.EINTR) throw new SysError("close", errno);
  }
}

/** read(2) on an O_NONBLOCK fd: bytes read, 0 at EOF, or null when nothing is available. */
export function readNonblock(fd: number, buf: Uint8Array<ArrayBuffer>): number | null {
  const n = Number(libc().read(fd, buf, BigInt(buf.length)));
  if (n >= 0) return n;
  const errno = lastErrno();
  if (errno === Errno.EAGAIN || errno === Errno.EINTR) return null;
  throw new SysError("read", errno);
}

/** write(2) on an O_NONBLOCK fd: bytes written, or null when it would block. */
export function writeNonblock(fd: number, buf: Uint8Array<ArrayBuffer>): number | null {
  const n = Number(libc().write(fd, buf, BigInt(buf.length)));
  if (n >= 0) return n;
  const errno = lastErrno();
  if (errno === Errno.EAGAIN || errno === Errno.EINTR) return null;
  throw new SysError("write", errno);
}

/**
 * Waits (on a worker thread) until `fd` has one of `events` (POLL.IN/OUT) or
 * the timeout passes. Returns the revents bits (0 on timeout or interruption).
 */
export async function waitFd(fd: number, events: number, timeoutMs: number): Promise<number> {
  const pfd = new Uint8Array(8);
  const v = new DataView(pfd.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  const n = await libc().poll_wait(pfd, 1n, timeoutMs);
  return n > 0 ? v.getInt16(6, true) : 0;
}

// --- files -------------------------------------------------------------------

/**
 * openat(2). Pass AT.FDCWD as `dirFd` for paths relative to the cwd.
 * For state directories use `O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC`.
 *
 * @throws {SysError} e.g. `code: "ELOOP"` when the last component is a symlink and O_NOFOLLOW is set
 * (`"ENOTDIR"` when O_DIRECTORY is set too)
 */
export function openat(dirFd: number, path: string, flags: number, mode = 0): number {
  return check("openat", libc().openat(dirFd, cstring(path), flags, mode), path);
}

/** Opens a directory without following a symlink in its last component. */
export function openDirNoFollow(dirFd: number, path: string): number {
  return openat(dirFd, path, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC);
}

/** statx(2): type, mode, owner, inode, device and mount facts of `path` relative to `dirFd`. */
export function statx(dirFd: number, path: string, flags: number): StatxInfo {
  const buf = new Uint8Array(STATX_SIZE);
  check("statx", libc().statx(dirFd, cstring(path), flags, STATX_MASK, buf), path);
  return decodeStatx(buf);
}

/** fstat through statx(fd, "", AT_EMPTY_PATH). */
export function fstat(fd: number): StatxInfo {
  return statx(fd, "", AT.EMPTY_PATH);
}

/** fstatfs(2): the filesystem magic number (`f_type`, compare with FS_MAGIC). */
export function fstatfsType(fd: number): number {
  const buf = new Uint8Array(128);
  check("fstatfs", libc().fstatfs(fd, buf));
  return Number(new DataView(buf.buffer).getBigInt64(0, true));
}

/** mkdirat(2) (the umask applies). */
export function mkdirat(dirFd: number, path: string, mode: number): void {
  check("mkdirat", libc().mkdirat(dirFd, cstring(path), mode), path);
}

/** unlinkat(2); pass AT.REMOVEDIR to remove an empty directory. */
export function unlinkat(dirFd: number, path: string, flags: number): void {
  check("unlinkat", libc().unlinkat(dirFd, cstring(path), flags), path);
}

/** fchmod(2). */
export function fchmod(fd: number, mode: number): void {
  check("fchmod", libc().fchmod(fd, mode));
}

/** fchown(2). */
export function fchown(fd: number, uid: number, gid: number): void {
  check("fchown", libc().fchown(fd, uid, gid));
}

/** fchownat(2); pass AT.SYMLINK_NOFOLLOW to change a symlink itself. */
export function fchownat(
  dirFd: number,
  path: string,
  uid: number,
  gid: number,
  flags: number,
): void {
  check("fchownat", libc().fchownat(dirFd, cstring(path), uid, gid, flags), path);
}

/** flock(2) operations. */
export const LOCK = { SH: 1, EX: 2, NB: 4, UN: 8 } as const;

/**
 * Tries to take (or release) a flock(2) lock without blocking: LOCK_NB is
 * always added, so the JS thread never waits.
 *
 * @returns true if the lock was taken (or released), false if another open
 * file description holds a conflicting lock (EWOULDBLOCK)
 * @throws {SysError} on any other failure
 */
export function tryFlock(fd: number, operation: number): boolean {
  const rc = libc().flock(fd, operation | LOCK.NB);
  if (rc === 0) return true;
  const errno = lastErrno();
  if (errno === Errno.EAGAIN) return false;
  throw new SysError("flock", errno);
}

/** fsync(2). */
export function fsync(fd: number): void {
  check("fsync", libc().fsync(fd));
}

/**
 * Reads a whole regular file through an fd (pread-free loop of read(2)),
 * refusing to read more than `maxBytes`.
 *
 * @throws {SysError} with code "EFBIG" when the file is larger than `maxBytes`
 */
export function readAllFd(fd: number, maxBytes: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = readNonblock(fd, buf);
    if (n === null) throw new SysError("read", Errno.EAGAIN);
    if (n === 0) break;
    total += n;
    if (total > maxBytes) throw new SysError("read", 27, /* EFBIG */ `more than ${maxBytes} bytes`);
    chunks.push(buf.slice(0, n));
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

// --- identity ------------------------------------------------------------------

/** Real and effective user and group ids of the process. */
export interface Ids {
  /** Real uid. */
  uid: number;
  /** Effective uid. */
  euid: number;
  /** Real gid. */
  gid: number;
  /** Effective gid. */
  egid: number;
}

/** getuid/geteuid/getgid/getegid. */
export function ids(): Ids {
  const lib = libc();
  return { uid: lib.getuid(), euid: lib.geteuid(), gid: lib.getgid(), egid: lib.getegid() };
}

/** Real, effective and saved ids (getresuid/getresgid). */
export function resIds(): { uid: [number, number, number]; gid: [number, number, number] } {
  const lib = libc();
  const u = [new Uint32Array(1), new Uint32Array(1), new Uint32Array(1)] as const;
  const g = [new Uint32Array(1), new Uint32Array(1), new Uint32Array(1)] as const;
  check("getresuid", lib.getresuid(u[0], u[1], u[2]));
  check("getresgid", lib.getresgid(g[0], g[1], g[2]));
  return { uid: [u[0][0]!, u[1][0]!, u[2][0]!], gid: [g[0][0]!, g[1][0]!, g[2][0]!] };
}

/** getpid(2). */
export function getpid(): number {
  return libc().getpid();
}

/** getppid(2). */
export function getppid(): number {
  return libc().getppid();
}

// --- process state and namespaces ----------------------------------------------

/**
 * unshare(2). Note: it affects the calling thread only (the JS thread), not
 * Deno's other threads; spawn children from a helper that did it itself.
 */
export function unshare(flags: number): void {
  check("unshare", libc().unshare(flags));
}

/** mount(2); null means NULL for source, fstype and data. */
export function mount(
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null = null,
): void {
  const rc = libc().mount(
    source === null ? null : cstring(source),
    cstring(target),
    fstype === null ? null : cstring(fstype),
    BigInt(flags),
    data === null ? null : cstring(data),
  );
  check("mount", rc, target);
}

/** umount2(2). */
export function umount2(target: string, flags: number): void {
  check("umount2", libc().umount2(cstring(target), flags), target);
}

/** prctl(2) with integer arguments; returns its result. Per-thread for most options. */
export function prctl(option: number, arg2 = 0, arg3 = 0, arg4 = 0, arg5 = 0): number {
  return check(
    "prctl",
    libc().prctl(option, BigInt(arg2), BigInt(arg3), BigInt(arg4), BigInt(arg5)),
  );
}

/** A resource limit; RLIM_INFINITY for unlimited. */
export interface Rlimit {
  /** Soft (current) limit. */
  soft: bigint;
  /** Hard (ceiling) limit. */
  hard: bigint;
}

/** getrlimit(2). */
export function getrlimit(resource: number): Rlimit {
  const buf = new BigUint64Array(2);
  check("getrlimit", libc().getrlimit(resource, buf));
  return { soft: buf[0]!, hard: buf[1]! };
}

/** setrlimit(2) (process-wide). */
export function setrlimit(resource: number, limit: Rlimit): void {
  check("setrlimit", libc().setrlimit(resource, new BigUint64Array([limit.soft, limit.hard])));
}

/** umask(2): sets the mask and returns the previous one (process-wide). */
export function umask(mask: number): number {
  return libc().umask(mask);
}

/** setsid(2): returns the new session id. */
export function setsid(): number {
  return check("setsid", libc().setsid());
}

/** kill(2). */
export function kill(pid: number, signal: number): void {
  check("kill", libc().kill(pid, signal));
}
