/**
 * What the daemon manager reads from `/proc`: our capabilities, the boot
 * id, process liveness (pid + start time + boot id, so a reused pid or a pid
 * file from before a reboot never looks alive), and the number of client
 * connections on a unix socket (`/proc/net/unix`).
 *
 * Deno refuses every read below /proc and /sys unless the program runs
 * with --allow-all, which the buildctl permission set deliberately does not
 * grant. So /proc files are read directly when that is allowed (tests) and
 * otherwise by a `/bin/sh` + `cat` child, batched into one spawn per call
 * (~1 ms). None of this is on the fast path of a command (a running
 * daemon); plain existence checks use `kill(pid, 0)`.
 *
 * @module
 */

import { delay } from "../timer.ts";

/** Who we are, as the kernel sees it. */
export interface Identity {
  /** Our uid (what decides root vs rootless; buildctl is never setuid, so real = effective). */
  euid: number;
  /** Our gid. */
  egid: number;
  /** Login name from /etc/passwd (falls back to `$USER`, then `uid<N>`). */
  user: string;
  /** Home directory: `$HOME`, else the passwd entry. */
  home: string;
}

/** `CAP_SYS_ADMIN`: what buildkitd needs for mounts and namespaces as root. */
export const CAP_SYS_ADMIN = 21;

/** Who we are: uid/gid (from Deno) and the passwd entry. No /proc access. */
export function currentIdentity(env: (name: string) => string | undefined): Identity {
  let euid = -1;
  let egid = -1;
  try {
    euid = Deno.uid() ?? -1;
    egid = Deno.gid() ?? -1;
  } catch { /* no sys permission: treated as unprivileged */ }
  const pw = passwdEntry(euid);
  const user = pw?.name ?? env("USER") ?? `uid${euid}`;
  const home = env("HOME") || pw?.home || (euid === 0 ? "/root" : `/home/${user}`);
  return { euid, egid, user, home };
}

/** The passwd entry of a uid, if /etc/passwd has one. */
export function passwdEntry(uid: number): { name: string; home: string } | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync("/etc/passwd");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length >= 6 && Number(f[2]) === uid) return { name: f[0]!, home: f[5]! };
  }
  return undefined;
}

let directProcRead = true;

/**
 * Reads several files below /proc or /sys; a missing or unreadable file
 * maps to undefined. One child process at most.
 */
export async function readProcFiles(paths: string[]): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  if (directProcRead) {
    try {
      for (const p of paths) {
        try {
          out.set(p, await Deno.readTextFile(p));
        } catch (err) {
          if (err instanceof Deno.errors.NotCapable) throw err;
          out.set(p, undefined);
        }
      }
      return out;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotCapable)) throw err;
      directProcRead = false;
      out.clear();
    }
  }
  // Each file is preceded by NUL + "1" (readable) or "0" (not) + NUL.
  const script = 'for f in "$@"; do if [ -r "$f" ] && c=$(cat -- "$f" 2>/dev/null; echo x); then ' +
    "printf '\\0001\\000%s' \"${c%x}\"; else printf '\\0000\\000'; fi; done";
  let text = "";
  try {
    const o = await new Deno.Command("/bin/sh", {
      args: ["-c", script, "sh", ...paths],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    text = new TextDecoder().decode(o.stdout);
  } catch { /* no /bin/sh: everything unreadable */ }
  const parts = text.split("\0");
  // parts: ["", flag, content, flag, content, ...]
  for (let i = 0; i < paths.length; i++) {
    const flag = parts[1 + 2 * i];
    out.set(paths[i]!, flag === "1" ? parts[2 + 2 * i] ?? "" : undefined);
  }
  return out;
}

/** Reads one /proc or /sys file; undefined when unreadable. */
export async function readProcFile(path: string): Promise<string | undefined> {
  return (await readProcFiles([path])).get(path);
}

/** Our effective capability set (`CapEff` of /proc/<pid>/status). */
export async function effectiveCaps(): Promise<bigint> {
  const status = (await readProcFile(`/proc/${Deno.pid}/status`)) ?? "";
  const hex = /^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? "0";
  return BigInt(`0x${hex}`);
}

/** Whether a capability bit is in the set. */
export function hasCap(caps: bigint, cap: number): boolean {
  return ((caps >> BigInt(cap)) & 1n) === 1n;
}

const BOOT_ID = "/proc/sys/kernel/random/boot_id";
let bootIdCache: string | undefined;

/** This boot's id (`/proc/sys/kernel/random/boot_id`); "" when unreadable. */
export async function bootId(): Promise<string> {
  bootIdCache ??= ((await readProcFile(BOOT_ID)) ?? "").trim();
  return bootIdCache;
}

/** The fields of `/proc/<pid>/stat` the manager uses. */
export interface ProcStat {
  /** One-letter state (R, S, D, Z, T, …). */
  state: string;
  ppid: number;
  /** Session id. */
  sid: number;
  /** Start time in clock ticks after boot: with the pid, identifies a process. */
  startTime: number;
  /** Executable name (truncated to 15 bytes by the kernel). */
  comm: string;
}

/** Parses the text of `/proc/<pid>/stat`. */
export function parseProcStat(text: string | undefined): ProcStat | undefined {
  if (!text) return undefined;
  // comm is in parentheses and may contain spaces or ')'; split at the last ')'.
  const close = text.lastIndexOf(")");
  if (close < 0) return undefined;
  const comm = text.slice(text.indexOf("(") + 1, close);
  const rest = text.slice(close + 2).split(" ");
  // rest[0] is field 3 (state); start time is field 22.
  return {
    state: rest[0] ?? "",
    ppid: Number(rest[1]),
    sid: Number(rest[3]),
    startTime: Number(rest[19]),
    comm,
  };
}

/** A process identity that survives pid reuse and reboots. */
export interface ProcessStamp {
  pid: number;
  startTime: number;
  bootId: string;
}

/** Stamps a live process; undefined when it is gone. */
export async function stampOf(pid: number): Promise<ProcessStamp | undefined> {
  const files = await readProcFiles([BOOT_ID, `/proc/${pid}/stat`]);
  bootIdCache ??= (files.get(BOOT_ID) ?? "").trim();
  const st = parseProcStat(files.get(`/proc/${pid}/stat`));
  if (!st || st.state === "Z") return undefined;
  return { pid, startTime: st.startTime, bootId: bootIdCache };
}

/** Whether a process with this pid exists (zombies included): `kill(pid, 0)`. */
export function pidExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    // Signal 0 checks existence and permission without sending anything.
    Deno.kill(pid, 0 as unknown as Deno.Signal);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return err instanceof Deno.errors.PermissionDenied;
  }
}

/** Checks a stamp against already-read `/proc` texts. */
export function stampMatches(
  stamp: ProcessStamp,
  statText: string | undefined,
  currentBootId: string,
): boolean {
  if (stamp.bootId && currentBootId && stamp.bootId !== currentBootId) return false;
  const st = parseProcStat(statText);
  if (!st || st.state === "Z" || st.state === "X") return false;
  return st.startTime === stamp.startTime;
}

/**
 * Whether the stamped process still runs: same boot, same pid, same start
 * time, not a zombie. A pid file from an earlier boot is never alive.
 */
export async function isAlive(stamp: ProcessStamp | undefined): Promise<boolean> {
  if (!stamp || !pidExists(stamp.pid)) return false;
  const files = await readProcFiles([BOOT_ID, `/proc/${stamp.pid}/stat`]);
  bootIdCache ??= (files.get(BOOT_ID) ?? "").trim();
  return stampMatches(stamp, files.get(`/proc/${stamp.pid}/stat`), bootIdCache);
}

/**
 * Counts connected sockets bound to `socketPath` in the text of
 * `/proc/net/unix`: the server side of every accepted connection carries the
 * listening socket's path and state 03 (SS_CONNECTED), so this is the
 * daemon's client count. The listening socket itself has state 01.
 *
 * Only sockets of our network namespace are visible; rootlesskit runs
 * buildkitd with `--net=host` (its default), so they are.
 */
export function countConnections(
  procNetUnix: string | undefined,
  socketPath: string,
  ownInodes?: ReadonlySet<string>,
): number {
  if (!procNetUnix) return 0;
  // With the daemon's own socket inodes known, count only those: a socket of
  // the same path in another mount namespace (same network namespace) is
  // listed here too and must not count as this daemon's activity.
  const only = ownInodes && ownInodes.size > 0 ? ownInodes : undefined;
  let n = 0;
  for (const line of procNetUnix.split("\n")) {
    // Num RefCount Protocol Flags Type St Inode Path
    if (!line.endsWith(socketPath)) continue;
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[7] === socketPath && f[5] === "03" && (!only || only.has(f[6]!))) n++;
  }
  return n;
}

/**
 * The inodes of the sockets held by `pid` and its descendants (rootlesskit
 * runs buildkitd as a child). Empty when they cannot be read; callers then
 * fall back to counting by path.
 */
export async function socketInodes(pid: number): Promise<Set<string>> {
  const script = 'walk() { echo "$1"; for t in /proc/"$1"/task/*/children; do ' +
    'for c in $(cat "$t" 2>/dev/null); do walk "$c"; done; done; }; ' +
    'for p in $(walk "$1"); do for f in /proc/"$p"/fd/*; do readlink "$f" 2>/dev/null; done; done';
  const inodes = new Set<string>();
  try {
    const o = await new Deno.Command("/bin/sh", {
      args: ["-c", script, "sh", String(pid)],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    for (const m of new TextDecoder().decode(o.stdout).matchAll(/^socket:\[(\d+)\]$/gm)) {
      inodes.add(m[1]!);
    }
  } catch { /* no /bin/sh: unknown */ }
  return inodes;
}

/** Sends a signal, ignoring "no such process". Returns whether it was sent. */
export function signalProcess(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until the stamped process is gone or `timeoutMs` passes; true if
 * gone. Polls `kill(pid, 0)` and confirms with /proc every 500 ms (zombies,
 * reused pids).
 */
export async function waitForExit(
  stamp: ProcessStamp,
  timeoutMs: number,
  pollMs = 25,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let nextFull = 0;
  for (;;) {
    if (!pidExists(stamp.pid)) return true;
    if (Date.now() >= nextFull) {
      if (!(await isAlive(stamp))) return true;
      nextFull = Date.now() + 500;
    }
    if (Date.now() >= deadline) return false;
    await delay(pollMs);
  }
}
