/**
 * Who is calling the launcher, from the kernel and sudo only.
 *
 * The launcher is never setuid: it runs as root only because root started it
 * (directly, or through sudo's audited setuid binary and the narrow sudoers
 * rule). Identity is therefore:
 *
 * 1. the process's real/effective/saved uids must all be 0 (else: not run
 *    through sudo, refused);
 * 2. if the parent process is the root-owned setuid sudo binary (compared by
 *    device and inode, through /proc, not by name), the caller is that sudo
 *    process's **real uid** as the kernel reports it, and it must equal the
 *    `SUDO_UID` sudo put in our environment (read from /proc/self/environ:
 *    the launcher has no env permission at all). sudo sets SUDO_UID itself and
 *    removes any caller-supplied value;
 * 3. otherwise the caller is root (uid 0), who gets nothing implicitly.
 *
 * Every lookup fails closed: an unreadable /proc entry is an error, never uid 0.
 *
 * @module
 */
import { AT, getppid, resIds, statx } from "../sys/mod.ts";
import { readProcText } from "./secure_fs.ts";

/** The sudo binary the launcher trusts as a parent. */
export const SUDO_PATH = "/usr/bin/sudo";

/** The identified caller. */
export interface Caller {
  /** The caller's uid (0 for root). */
  uid: number;
  /** How it was established. */
  via: "sudo" | "root";
  /** SUDO_USER, for messages only (never for decisions). */
  sudoUser?: string;
}

/** A refusal to identify the caller. */
export class IdentityError extends Error {
  override name = "IdentityError";
}

/** Parses a decimal uid exactly (no sign, no leading zeros, no spaces, ≤ 4294967294). */
export function parseUid(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 4294967294 ? n : undefined;
}

/** Splits a NUL-separated environ block into a map (first occurrence wins, as getenv does). */
export function parseEnviron(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const text = new TextDecoder().decode(bytes);
  for (const entry of text.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const k = entry.slice(0, eq);
    if (!out.has(k)) out.set(k, entry.slice(eq + 1));
  }
  return out;
}

/** Reads the real uid and the parent pid from a /proc/<pid>/status text. */
export function parseStatus(text: string): { ruid: number; ppid: number } {
  const uidLine = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/m.exec(text);
  const ppidLine = /^PPid:\s+(\d+)\s*$/m.exec(text);
  if (!uidLine || !ppidLine) throw new IdentityError("cannot read process status");
  const ruid = parseUid(uidLine[1]!);
  if (ruid === undefined) throw new IdentityError("cannot read process status");
  return { ruid, ppid: Number(ppidLine[1]) };
}

/**
 * Identifies the caller (see the module doc).
 *
 * @throws {IdentityError} when not running as root, or when sudo's
 * environment and the kernel disagree
 */
export function identifyCaller(): Caller {
  const ids = resIds();
  if (ids.uid.some((u) => u !== 0)) {
    throw new IdentityError(
      `the launcher must be run as root through sudo (uids are ${ids.uid.join(",")})`,
    );
  }
  const env = parseEnviron(new TextEncoder().encode(readProcText("/proc/self/environ")));
  const sudoUidText = env.get("SUDO_UID");
  const sudoUser = env.get("SUDO_USER");
  const ppid = getppid();
  let parentIsSudo = false;
  let parentRuid = -1;
  if (ppid > 1) {
    try {
      const sudo = statx(AT.FDCWD, SUDO_PATH, 0);
      const exe = statx(AT.FDCWD, `/proc/${ppid}/exe`, 0);
      parentIsSudo = exe.ino === sudo.ino && exe.dev === sudo.dev && sudo.uid === 0 &&
        (sudo.mode & 0o4000) !== 0;
      if (parentIsSudo) {
        parentRuid = parseStatus(readProcText(`/proc/${ppid}/status`)).ruid;
      }
    } catch {
      parentIsSudo = false; // no such parent, or not sudo: the caller is root
    }
  }
  if (!parentIsSudo) return { uid: 0, via: "root" };
  if (sudoUidText === undefined) {
    throw new IdentityError("run through sudo but SUDO_UID is not set");
  }
  const sudoUid = parseUid(sudoUidText);
  if (sudoUid === undefined || sudoUid !== parentRuid) {
    throw new IdentityError("SUDO_UID does not match the uid that ran sudo");
  }
  return sudoUser !== undefined
    ? { uid: sudoUid, via: "sudo", sudoUser }
    : { uid: sudoUid, via: "sudo" };
}

/** A user as the system's user database reports it. */
export interface UserInfo {
  /** uid. */
  uid: number;
  /** Login name. */
  name: string;
  /** Primary gid. */
  gid: number;
  /** All group ids (primary first). */
  gids: number[];
  /** Home directory. */
  home: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;

/**
 * Looks a uid up with `getent passwd` and `id -G` (absolute paths, empty
 * environment), so NSS users work too.
 *
 * @throws {IdentityError} if the uid does not resolve
 */
export function lookupUser(uid: number): UserInfo {
  const dec = new TextDecoder();
  const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" };
  const pw = new Deno.Command("/usr/bin/getent", {
    args: ["passwd", String(uid)],
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const line = dec.decode(pw.stdout).split("\n")[0] ?? "";
  const f = line.split(":");
  if (pw.code !== 0 || f.length < 7 || parseUid(f[2]!) !== uid || !NAME.test(f[0]!)) {
    throw new IdentityError(`uid ${uid} does not resolve to a user`);
  }
  const gid = parseUid(f[3]!);
  if (gid === undefined) throw new IdentityError(`uid ${uid} has no valid primary group`);
  const name = f[0]!;
  const idOut = new Deno.Command("/usr/bin/id", {
    args: ["-G", "--", name],
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const gids = [gid];
  if (idOut.code === 0) {
    for (const t of dec.decode(idOut.stdout).trim().split(/\s+/)) {
      const g = parseUid(t);
      if (g !== undefined && !gids.includes(g)) gids.push(g);
    }
  }
  return { uid, name, gid, gids, home: f[5]! };
}
