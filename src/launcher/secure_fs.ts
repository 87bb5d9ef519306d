/**
 * File-system checks for the launcher, done on fds (openat walks with
 * O_NOFOLLOW, statx on the fd), never by re-resolving a path:
 *
 * - {@linkcode readRootOwnedFile}: sudo's `secure_open` rules for the config
 *   and the layout (regular file, uid 0, not group/world-writable, every
 *   ancestor a root-owned directory that is not group/world-writable; opened
 *   O_NONBLOCK so a FIFO cannot hang us).
 * - {@linkcode ensureRootDir}: create or verify root-owned run/log dirs.
 * - {@linkcode pinStateDir}: the user's root dir and its root-owned
 *   `.buildkit-root` subdirectory, pinned by fd, with systemd-style unsafe
 *   transition rules and a permission check computed for each granted user.
 *
 * @module
 */
import {
  AT,
  closeFd,
  Errno,
  fchmod,
  fchown,
  FS_MAGIC,
  fstat,
  fstatfsType,
  mkdirat,
  O,
  openat,
  readAllFd,
  statx,
  type StatxInfo,
  SysError,
} from "../sys/mod.ts";

/**
 * Reads a /proc file through FFI (Deno's own file APIs refuse every /proc
 * path without --allow-all). At most 1 MiB.
 */
export function readProcText(path: string): string {
  const fd = openat(AT.FDCWD, path, O.RDONLY | O.CLOEXEC | O.NOFOLLOW);
  try {
    return new TextDecoder().decode(readAllFd(fd, 1 << 20));
  } finally {
    closeFd(fd);
  }
}

/** A refusal with a message meant for the user or admin. */
export class UnsafePathError extends Error {
  override name = "UnsafePathError";
}

const DIR_PATH = O.PATH | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC;

function components(path: string): string[] {
  if (!path.startsWith("/")) throw new UnsafePathError(`${path}: not an absolute path`);
  return path.split("/").filter((c) => c !== "");
}

function describeOpenFailure(dirFd: number, name: string, shown: string, err: unknown): never {
  if (err instanceof SysError) {
    if (err.errno === Errno.ENOENT) throw new UnsafePathError(`${shown} does not exist`);
    if (err.errno === Errno.ELOOP || err.errno === Errno.ENOTDIR) {
      let what = "is not a directory";
      try {
        const st = statx(dirFd, name, AT.SYMLINK_NOFOLLOW);
        if (st.type === "symlink") what = "is a symbolic link";
        else if (st.type !== "dir") what = `is a ${st.type}, not a directory`;
      } catch { /* keep the generic wording */ }
      throw new UnsafePathError(`${shown} ${what}`);
    }
    if (err.errno === Errno.EACCES) throw new UnsafePathError(`${shown}: permission denied`);
  }
  throw err;
}

function checkRootOwnedDir(st: StatxInfo, shown: string): void {
  if (st.type !== "dir") throw new UnsafePathError(`${shown} is not a directory`);
  if (st.uid !== 0) throw new UnsafePathError(`${shown} is owned by uid ${st.uid}, should be 0`);
  if ((st.mode & 0o002) !== 0) throw new UnsafePathError(`${shown} is world-writable`);
  if ((st.mode & 0o020) !== 0) throw new UnsafePathError(`${shown} is group-writable`);
}

/**
 * Opens every directory of `path` from `/` without following symlinks and
 * checks that each is root-owned and not group/world-writable.
 *
 * @returns an O_PATH fd of the last directory (caller closes it)
 */
export function openRootOwnedDir(path: string): number {
  let fd = openat(AT.FDCWD, "/", DIR_PATH);
  let shown = "";
  try {
    checkRootOwnedDir(fstat(fd), "/");
    for (const c of components(path)) {
      shown += `/${c}`;
      let next: number;
      try {
        next = openat(fd, c, DIR_PATH);
      } catch (err) {
        describeOpenFailure(fd, c, shown, err);
      }
      closeFd(fd);
      fd = next;
      checkRootOwnedDir(fstat(fd), shown);
    }
    return fd;
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

/** Result of {@linkcode readRootOwnedFile}. */
export interface SecureFile {
  /** The file's bytes. */
  bytes: Uint8Array;
  /** Its statx. */
  stat: StatxInfo;
}

/**
 * Reads a root-owned file the way sudo reads sudoers: every ancestor a
 * root-owned, not group/world-writable directory reached without following
 * symlinks; the file itself opened O_NOFOLLOW|O_NONBLOCK, then checked on
 * the fd: regular file, uid 0, not group/world-writable, at most `maxBytes`.
 *
 * @throws {UnsafePathError} with a specific message (e.g. "… is world-writable")
 */
export function readRootOwnedFile(path: string, maxBytes: number): SecureFile {
  const parts = components(path);
  const name = parts.pop();
  if (name === undefined) throw new UnsafePathError(`${path}: not a file path`);
  const dirFd = openRootOwnedDir("/" + parts.join("/"));
  let fd: number;
  try {
    fd = openat(dirFd, name, O.RDONLY | O.NONBLOCK | O.NOFOLLOW | O.CLOEXEC | O.NOCTTY);
  } catch (err) {
    if (err instanceof SysError && err.errno === Errno.ELOOP) {
      closeFd(dirFd);
      throw new UnsafePathError(`${path} is a symbolic link`);
    }
    if (err instanceof SysError && err.errno === Errno.ENOENT) {
      closeFd(dirFd);
      throw new UnsafePathError(`${path} does not exist`);
    }
    closeFd(dirFd);
    throw err;
  }
  closeFd(dirFd);
  try {
    const st = fstat(fd);
    if (st.type !== "file") {
      throw new UnsafePathError(`${path} is a ${st.type}, not a regular file`);
    }
    if (st.uid !== 0) throw new UnsafePathError(`${path} is owned by uid ${st.uid}, should be 0`);
    if ((st.mode & 0o002) !== 0) throw new UnsafePathError(`${path} is world-writable`);
    if ((st.mode & 0o020) !== 0) throw new UnsafePathError(`${path} is group-writable`);
    if (st.size > BigInt(maxBytes)) {
      throw new UnsafePathError(`${path} is larger than ${maxBytes} bytes`);
    }
    let bytes: Uint8Array;
    try {
      bytes = readAllFd(fd, maxBytes);
    } catch (err) {
      if (err instanceof SysError && err.code === "EFBIG") {
        throw new UnsafePathError(`${path} is larger than ${maxBytes} bytes`);
      }
      throw err;
    }
    return { bytes, stat: st };
  } finally {
    closeFd(fd);
  }
}

/**
 * Checks that a file or directory and all its ancestors are root-owned and
 * not group/world-writable (an installed program, for instance).
 *
 * @returns its statx
 * @throws {UnsafePathError}
 */
export function checkRootOwnedPath(path: string): StatxInfo {
  const parts = components(path);
  const name = parts.pop();
  if (name === undefined) throw new UnsafePathError(`${path}: empty path`);
  const dirFd = openRootOwnedDir("/" + parts.join("/"));
  try {
    let st: StatxInfo;
    try {
      st = statx(dirFd, name, AT.SYMLINK_NOFOLLOW);
    } catch (err) {
      if (err instanceof SysError && err.errno === Errno.ENOENT) {
        throw new UnsafePathError(`${path} does not exist`);
      }
      throw err;
    }
    if (st.type === "symlink") throw new UnsafePathError(`${path} is a symbolic link`);
    if (st.uid !== 0) throw new UnsafePathError(`${path} is owned by uid ${st.uid}, should be 0`);
    if ((st.mode & 0o022) !== 0) {
      throw new UnsafePathError(`${path} is group- or world-writable`);
    }
    if ((st.mode & 0o6000) !== 0) throw new UnsafePathError(`${path} is setuid or setgid`);
    return st;
  } finally {
    closeFd(dirFd);
  }
}

/**
 * Creates (or verifies) a root-owned directory with exactly `mode`, whose
 * parent is a root-owned, not group/world-writable directory. An existing
 * entry that is not a root-owned directory is refused, never repaired.
 */
export function ensureRootDir(path: string, mode: number): void {
  const parts = components(path);
  const name = parts.pop();
  if (name === undefined) throw new UnsafePathError(`${path}: empty path`);
  const parentPath = "/" + parts.join("/");
  const parent = openRootOwnedDir(parentPath);
  try {
    try {
      mkdirat(parent, name, mode);
    } catch (err) {
      if (!(err instanceof SysError && err.errno === Errno.EEXIST)) throw err;
    }
    let fd: number;
    try {
      fd = openat(parent, name, O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.CLOEXEC | O.NONBLOCK);
    } catch (err) {
      describeOpenFailure(parent, name, path, err);
    }
    try {
      const st = fstat(fd);
      if (st.type !== "dir" || st.uid !== 0) {
        throw new UnsafePathError(`${path} exists and is not a root-owned directory`);
      }
      if (st.gid !== 0) fchown(fd, 0, 0);
      if ((st.mode & 0o7777) !== mode) fchmod(fd, mode);
    } finally {
      closeFd(fd);
    }
  } finally {
    closeFd(parent);
  }
}

/**
 * Creates every missing directory of `path` (root-owned, `mode`) below the
 * first existing ancestor, checking each existing one with the root-owned
 * rules.
 */
export function ensureRootDirs(path: string, mode: number): void {
  const parts = components(path);
  let cur = "";
  for (const c of parts) {
    cur += `/${c}`;
    try {
      const st = statx(AT.FDCWD, cur, AT.SYMLINK_NOFOLLOW);
      if (st.type === "dir") {
        checkRootOwnedDir(st, cur);
        continue;
      }
    } catch (err) {
      if (!(err instanceof SysError && err.errno === Errno.ENOENT)) throw err;
    }
    ensureRootDir(cur, mode);
  }
}

// --- the user's root dir -------------------------------------------------------

/** Who must be able to use a root dir: a uid and all its group ids. */
export interface Accessor {
  /** The user's uid. */
  uid: number;
  /** Primary and supplementary gids. */
  gids: readonly number[];
  /** Name for messages. */
  name: string;
}

/**
 * Computes whether `who` gets `want` (bits of r=4, w=2, x=1) on a file with
 * this statx, by the classic owner/group/other rule (ACLs are not consulted:
 * the grant-time check runs as the user and does consult them).
 */
export function permits(st: StatxInfo, who: Accessor, want: number): boolean {
  let bits: number;
  if (st.uid === who.uid) bits = (st.mode >> 6) & 7;
  else if (who.gids.includes(st.gid)) bits = (st.mode >> 3) & 7;
  else bits = st.mode & 7;
  return (bits & want) === want;
}

/** File systems a state directory may live on. */
export const STATE_FS_TYPES: ReadonlyMap<number, string> = new Map([
  [FS_MAGIC.EXT4, "ext2/3/4"],
  [FS_MAGIC.XFS, "xfs"],
  [FS_MAGIC.BTRFS, "btrfs"],
  [FS_MAGIC.TMPFS, "tmpfs"],
  [0x2fc12fc1, "zfs"],
  [0xf2f52010, "f2fs"],
]);

/** The name of the root-owned state subdirectory inside a root dir. */
export const STATE_SUBDIR = ".buildkit-root";

/** A pinned root dir and its state subdirectory. */
export interface PinnedState {
  /** O_PATH fd of the root dir. */
  rootFd: number;
  /** O_RDONLY|O_DIRECTORY fd of `<root>/.buildkit-root` (root-owned, 0700). */
  stateFd: number;
  /** statx of the state dir. */
  state: StatxInfo;
  /** Whether this call created the state dir. */
  created: boolean;
  /** Users that failed the access check (excluded), with the reason. */
  excluded: { uid: number; reason: string }[];
}

/**
 * Walks `root` from `/` by fd without following symlinks and applies the
 * state-directory rules (security.md §3):
 *
 * - every component is a real directory (a symlink anywhere is refused);
 * - no ancestor is world-writable (not even sticky /tmp) or group-writable;
 * - ownership may pass from root to one non-root user, never from one user to
 *   another or from a user back to root (systemd's unsafe transitions);
 * - the root dir is owned by root or by one of the users, not world-writable,
 *   on an allow-listed file system, and each user can traverse every
 *   ancestor and write the root dir (users who cannot are excluded and
 *   reported; if none is left, the walk fails);
 * - `.buildkit-root` is created with mkdirat on the pinned fd, or must
 *   already be a root-owned 0700 directory on the same device. Anything else
 *   (a user's directory, a symlink, a FIFO, a file) is refused and left
 *   untouched.
 *
 * @throws {UnsafePathError}
 */
export function pinStateDir(root: string, users: readonly Accessor[]): PinnedState {
  const parts = components(root);
  if (parts.length === 0) throw new UnsafePathError("the root dir cannot be /");
  const userUids = new Set(users.map((u) => u.uid));
  let remaining = [...users];
  const excluded: { uid: number; reason: string }[] = [];
  const exclude = (pred: (u: Accessor) => boolean, reason: (u: Accessor) => string) => {
    for (const u of remaining.filter(pred)) excluded.push({ uid: u.uid, reason: reason(u) });
    remaining = remaining.filter((u) => !pred(u));
    if (remaining.length === 0) {
      throw new UnsafePathError(excluded.map((e) => e.reason).join("; "));
    }
  };

  let fd = openat(AT.FDCWD, "/", DIR_PATH);
  let shown = "";
  let userOwner: number | undefined;
  try {
    let st = fstat(fd);
    for (let i = 0; i < parts.length; i++) {
      const c = parts[i]!;
      const isLast = i === parts.length - 1;
      // Traverse permission on the directory we are leaving.
      exclude(
        (u) => !permits(st, u, 1),
        (u) => `${u.name} cannot enter ${shown || "/"}`,
      );
      shown += `/${c}`;
      let next: number;
      try {
        next = openat(fd, c, DIR_PATH);
      } catch (err) {
        describeOpenFailure(fd, c, shown, err);
      }
      closeFd(fd);
      fd = next;
      st = fstat(fd);
      if (st.type !== "dir") throw new UnsafePathError(`${shown} is not a directory`);
      if ((st.mode & 0o002) !== 0) {
        throw new UnsafePathError(
          `${shown} is world-writable${(st.mode & 0o1000) !== 0 ? " (sticky)" : ""}`,
        );
      }
      if (!isLast && (st.mode & 0o020) !== 0) {
        throw new UnsafePathError(`${shown} is group-writable (only the root dir itself may be)`);
      }
      if (st.uid !== 0) {
        if (!userUids.has(st.uid)) {
          throw new UnsafePathError(
            `${shown} is owned by uid ${st.uid}, who is not a user of this root dir`,
          );
        }
        if (userOwner !== undefined && userOwner !== st.uid) {
          throw new UnsafePathError(
            `${shown} is owned by uid ${st.uid} inside a directory owned by uid ${userOwner}`,
          );
        }
        userOwner = st.uid;
      } else if (userOwner !== undefined) {
        throw new UnsafePathError(
          `${shown} is owned by root inside a directory owned by uid ${userOwner}`,
        );
      }
    }
    const rootStat = st;
    exclude(
      (u) => !permits(rootStat, u, 3),
      (u) => `${u.name} cannot write ${root}`,
    );
    const fsType = fstatfsType(fd);
    if (!STATE_FS_TYPES.has(fsType)) {
      throw new UnsafePathError(
        `${root} is on a file system of type 0x${fsType.toString(16)}; allowed: ${
          [...STATE_FS_TYPES.values()].join(", ")
        }`,
      );
    }

    let created = false;
    try {
      mkdirat(fd, STATE_SUBDIR, 0o700);
      created = true;
    } catch (err) {
      if (!(err instanceof SysError && err.errno === Errno.EEXIST)) throw err;
    }
    const statePath = `${root}/${STATE_SUBDIR}`;
    let stateFd: number;
    try {
      stateFd = openat(
        fd,
        STATE_SUBDIR,
        O.RDONLY | O.DIRECTORY | O.NOFOLLOW | O.NONBLOCK | O.CLOEXEC,
      );
    } catch (err) {
      describeOpenFailure(fd, STATE_SUBDIR, statePath, err);
    }
    try {
      let state = fstat(stateFd);
      if (state.type !== "dir") throw new UnsafePathError(`${statePath} is not a directory`);
      if (state.uid !== 0) {
        throw new UnsafePathError(
          `${statePath} is owned by uid ${state.uid}, not root: it was not created by the launcher; ` +
            "refusing to use or change it (remove it to continue)",
        );
      }
      if (state.dev !== rootStat.dev) {
        throw new UnsafePathError(`${statePath} is on another file system (a mount point?)`);
      }
      if (created) {
        // Ours, just made: a setgid root dir may have given it its group and the setgid bit.
        if (state.gid !== 0) fchown(stateFd, 0, 0);
        if ((state.mode & 0o7777) !== 0o700) fchmod(stateFd, 0o700);
        state = fstat(stateFd);
      }
      if ((state.mode & 0o7777) !== 0o700 || state.gid !== 0) {
        throw new UnsafePathError(
          `${statePath} has mode ${(state.mode & 0o7777).toString(8)} and group ${state.gid}; ` +
            "expected root:root 0700; refusing to change it",
        );
      }
      return { rootFd: fd, stateFd, state, created, excluded };
    } catch (err) {
      closeFd(stateFd);
      throw err;
    }
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}
