/**
 * Linux constants and struct layouts (x86_64 and aarch64, little endian).
 *
 * @module
 */

const ARM64 = Deno.build.arch === "aarch64";

/** open(2)/openat(2) flags. O_DIRECTORY and O_NOFOLLOW differ between architectures. */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DIRECTORY: ARM64 ? 0o40000 : 0o200000,
  NOFOLLOW: ARM64 ? 0o100000 : 0o400000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

/** `*at()` flags and the special directory fd. */
export const AT = {
  FDCWD: -100,
  SYMLINK_NOFOLLOW: 0x100,
  REMOVEDIR: 0x200,
  EMPTY_PATH: 0x1000,
} as const;

/** File type bits of `st_mode`. */
export const S = {
  IFMT: 0o170000,
  IFSOCK: 0o140000,
  IFLNK: 0o120000,
  IFREG: 0o100000,
  IFBLK: 0o060000,
  IFDIR: 0o040000,
  IFCHR: 0o020000,
  IFIFO: 0o010000,
} as const;

/** mount(2) flags. */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
} as const;

/** umount2(2) flags. */
export const MNT = { FORCE: 1, DETACH: 2, EXPIRE: 4 } as const;

/** unshare(2) flags. */
export const CLONE = { NEWNS: 0x20000 } as const;

/** prctl(2) options. */
export const PR = {
  SET_PDEATHSIG: 1,
  GET_DUMPABLE: 3,
  SET_DUMPABLE: 4,
  SET_NO_NEW_PRIVS: 38,
  GET_NO_NEW_PRIVS: 39,
} as const;

/** setrlimit(2) resources. */
export const RLIMIT = {
  CPU: 0,
  FSIZE: 1,
  DATA: 2,
  STACK: 3,
  CORE: 4,
  NPROC: 6,
  NOFILE: 7,
  MEMLOCK: 8,
  AS: 9,
} as const;

/** `RLIM_INFINITY`. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** Signal numbers. */
export const SIG = { HUP: 1, INT: 2, KILL: 9, USR1: 10, TERM: 15, CONT: 18, STOP: 19 } as const;

/** Socket constants. */
export const SOCK = {
  AF_UNIX: 1,
  STREAM: 1,
  NONBLOCK: O.NONBLOCK,
  CLOEXEC: O.CLOEXEC,
  SOL_SOCKET: 1,
  SO_SNDBUF: 7,
  SO_PEERCRED: 17,
  SHUT_RD: 0,
  SHUT_WR: 1,
  SHUT_RDWR: 2,
  /** send(2) flag: a write to a closed peer fails with EPIPE instead of raising SIGPIPE. */
  MSG_NOSIGNAL: 0x4000,
} as const;

/** poll(2) event bits. */
export const POLL = { IN: 1, PRI: 2, OUT: 4, ERR: 8, HUP: 0x10, NVAL: 0x20 } as const;

/** Longest unix socket path (sun_path is 108 bytes including the NUL). */
export const UNIX_PATH_MAX = 107;

const encoder = new TextEncoder();

/**
 * Encodes a NUL-terminated C string.
 *
 * @throws {TypeError} if the string contains a NUL byte (it would silently truncate the path).
 */
export function cstring(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) throw new TypeError(`String contains a NUL byte: ${JSON.stringify(s)}`);
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/**
 * Builds a `struct sockaddr_un` for a filesystem path.
 *
 * @throws {TypeError} if the path is empty, abstract, too long or contains NUL.
 */
export function sockaddrUn(path: string): Uint8Array<ArrayBuffer> {
  const bytes = cstring(path);
  if (bytes.length <= 1) throw new TypeError("Unix socket path is empty");
  if (bytes.length - 1 > UNIX_PATH_MAX) {
    throw new TypeError(
      `Unix socket path is longer than ${UNIX_PATH_MAX} bytes: ${JSON.stringify(path)}`,
    );
  }
  const addr = new Uint8Array(2 + bytes.length);
  new DataView(addr.buffer).setUint16(0, SOCK.AF_UNIX, true);
  addr.set(bytes, 2);
  return addr;
}

/** `struct ucred` as SO_PEERCRED returns it. */
export interface PeerCred {
  /** Process id of the peer at connect() time (0 if it is in another pid namespace). */
  pid: number;
  /** Effective uid of the peer at connect() time. */
  uid: number;
  /** Effective gid of the peer at connect() time. */
  gid: number;
}

/** Decodes a 12-byte `struct ucred { pid_t pid; uid_t uid; gid_t gid; }`. */
export function decodeUcred(buf: Uint8Array): PeerCred {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}

/** `STATX_BASIC_STATS | STATX_MNT_ID`. */
export const STATX_MASK = 0x7ff | 0x1000;
/** `stx_attributes` bit: the path is the root of a mount. */
export const STATX_ATTR_MOUNT_ROOT = 0x2000;
/** Size of `struct statx`. */
export const STATX_SIZE = 256;

/** The fields of `struct statx` the launcher needs. */
export interface StatxInfo {
  /** Full `st_mode`, type bits included. */
  mode: number;
  /** File type, from the mode bits. */
  type: "file" | "dir" | "symlink" | "socket" | "fifo" | "block" | "char" | "unknown";
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Hard link count. */
  nlink: number;
  /** Inode number. */
  ino: bigint;
  /** Size in bytes. */
  size: bigint;
  /** `makedev(stx_dev_major, stx_dev_minor)` as "major:minor". */
  dev: string;
  /** Mount id (0 if the kernel did not report it). */
  mntId: bigint;
  /** True when the kernel says this path is a mount root. */
  mountRoot: boolean;
}

/** Decodes the interesting part of a `struct statx` buffer. */
export function decodeStatx(buf: Uint8Array): StatxInfo {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const mask = v.getUint32(0, true);
  const attributes = v.getBigUint64(8, true);
  const attributesMask = v.getBigUint64(56, true);
  const mode = v.getUint16(28, true);
  const mountRootKnown = (attributesMask & BigInt(STATX_ATTR_MOUNT_ROOT)) !== 0n;
  return {
    mode,
    type: fileType(mode),
    nlink: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    ino: v.getBigUint64(32, true),
    size: v.getBigUint64(40, true),
    dev: `${v.getUint32(136, true)}:${v.getUint32(140, true)}`,
    mntId: (mask & 0x1000) !== 0 ? v.getBigUint64(144, true) : 0n,
    mountRoot: mountRootKnown && (attributes & BigInt(STATX_ATTR_MOUNT_ROOT)) !== 0n,
  };
}

/** Maps mode bits to a file type name. */
export function fileType(mode: number): StatxInfo["type"] {
  switch (mode & S.IFMT) {
    case S.IFREG:
      return "file";
    case S.IFDIR:
      return "dir";
    case S.IFLNK:
      return "symlink";
    case S.IFSOCK:
      return "socket";
    case S.IFIFO:
      return "fifo";
    case S.IFBLK:
      return "block";
    case S.IFCHR:
      return "char";
    default:
      return "unknown";
  }
}

/** Filesystem magic numbers (`f_type` of statfs) the launcher may check. */
export const FS_MAGIC = {
  EXT4: 0xef53,
  XFS: 0x58465342,
  BTRFS: 0x9123683e,
  TMPFS: 0x01021994,
  OVERLAYFS: 0x794c7630,
  FUSE: 0x65735546,
  NFS: 0x6969,
  PROC: 0x9fa0,
} as const;
