/**
 * Where the daemon of the current user lives: its mode (root or rootless),
 * socket, run dir (lock, record), state dir and log.
 *
 * | mode     | socket                                      | state dir                    |
 * |----------|---------------------------------------------|------------------------------|
 * | root     | /run/buildkit/buildkitd.sock                | /var/lib/buildkit            |
 * | rootless | $XDG_RUNTIME_DIR/buildkit/buildkitd.sock    | $XDG_DATA_HOME/buildkit or ~/.local/share/buildkit |
 *
 * These are buildkitd's own defaults (buildkit-protocol.md §7), so a daemon
 * we start answers where upstream tools look. When `XDG_RUNTIME_DIR` is
 * unset (e.g. `su user`, cron), the rootless run dir falls back to
 * `/run/user/<uid>` when that exists and is ours, else to a private
 * `/tmp/buildctl-runtime-<uid>` (0700, ownership checked), which is then
 * also handed to the daemon as its `XDG_RUNTIME_DIR`.
 *
 * Our own files sit beside the socket, in the run dir (a tmpfs on most
 * systems, so they vanish at reboot; they are boot-id stamped anyway):
 * `buildctl.lock` (start/stop lock), `buildctl.clients` (shared lock held
 * by every running command; its mtime is the last client activity),
 * `buildctl.json` (the daemon record) and `buildctl.supervisor.json`.
 *
 * @module
 */

import { join } from "../path.ts";
import type { Identity } from "./proc.ts";
import { BuildctlError, ExitCode } from "../errors.ts";

/** How the daemon runs. */
export type DaemonMode = "root" | "rootless";

/** The system-wide (root daemon) socket: upstream buildctl's default address. */
export const SYSTEM_SOCKET = "/run/buildkit/buildkitd.sock";
/** The root daemon's state dir. */
export const SYSTEM_ROOT = "/var/lib/buildkit";

/** Every path of the current user's daemon. */
export interface DaemonPaths {
  mode: DaemonMode;
  /** Directory of the socket and of our lock/record files. */
  runDir: string;
  socketPath: string;
  /** `unix://` + socketPath. */
  address: string;
  /** Default state dir (`--root`); a record may name another one. */
  rootDir: string;
  /** Start/stop lock (exclusive). */
  lockPath: string;
  /** Client lock (shared while a command runs; mtime = last activity). */
  clientsPath: string;
  /** The daemon record (JSON). */
  recordPath: string;
  /** The idle supervisor's status (JSON). */
  supervisorPath: string;
  /** `XDG_RUNTIME_DIR` to give a rootless daemon (set when we had to pick a fallback). */
  xdgRuntimeDir: string | undefined;
}

/** The log file of a daemon with state dir `rootDir`. */
export function logPathFor(rootDir: string): string {
  return join(rootDir, "buildkitd.log");
}

/**
 * Resolves the paths for `id`: root mode when the effective uid is 0,
 * rootless otherwise. Pure apart from the `/run/user/<uid>` existence check.
 */
export function daemonPaths(id: Identity, env: (name: string) => string | undefined): DaemonPaths {
  if (id.euid === 0) {
    return withRunDir("root", "/run/buildkit", SYSTEM_ROOT, undefined);
  }
  let xdg = env("XDG_RUNTIME_DIR") || undefined;
  let fallback: string | undefined;
  if (!xdg) {
    const runUser = `/run/user/${id.euid}`;
    xdg = ownedDir(runUser, id.euid) ? runUser : `/tmp/buildctl-runtime-${id.euid}`;
    fallback = xdg;
  }
  const dataHome = env("XDG_DATA_HOME") || join(id.home, ".local", "share");
  return withRunDir("rootless", join(xdg, "buildkit"), join(dataHome, "buildkit"), fallback);
}

/** Our files in a run dir. */
export interface RunFiles {
  lockPath: string;
  clientsPath: string;
  recordPath: string;
  supervisorPath: string;
}

/** The names of our files in `runDir`. */
export function runFiles(runDir: string): RunFiles {
  return {
    lockPath: join(runDir, "buildctl.lock"),
    clientsPath: join(runDir, "buildctl.clients"),
    recordPath: join(runDir, "buildctl.json"),
    supervisorPath: join(runDir, "buildctl.supervisor.json"),
  };
}

function withRunDir(
  mode: DaemonMode,
  runDir: string,
  rootDir: string,
  xdg: string | undefined,
): DaemonPaths {
  const socketPath = join(runDir, "buildkitd.sock");
  return {
    mode,
    runDir,
    socketPath,
    address: `unix://${socketPath}`,
    rootDir,
    ...runFiles(runDir),
    xdgRuntimeDir: xdg,
  };
}

function ownedDir(path: string, uid: number): boolean {
  try {
    const st = Deno.lstatSync(path);
    return st.isDirectory && st.uid === uid;
  } catch {
    return false;
  }
}

/**
 * Creates the run dir (and a fallback `XDG_RUNTIME_DIR`) if needed. A
 * fallback dir in /tmp must be a real directory owned by us with no group or
 * other access; anything else is refused (someone could have planted it).
 *
 * @throws {BuildctlError} when a directory cannot be created or is unsafe.
 */
export function ensureRunDir(paths: DaemonPaths, euid: number): void {
  try {
    if (paths.xdgRuntimeDir) ensurePrivateDir(paths.xdgRuntimeDir, euid);
    if (paths.mode === "rootless") ensurePrivateDir(paths.runDir, euid);
    else Deno.mkdirSync(paths.runDir, { recursive: true, mode: 0o711 });
  } catch (err) {
    if (err instanceof BuildctlError) throw err;
    throw new BuildctlError(
      `cannot create the daemon's run directory "${paths.runDir}": ${(err as Error).message}`,
      {
        exitCode: ExitCode.Unavailable,
        hint: paths.mode === "rootless"
          ? "set XDG_RUNTIME_DIR to a directory you own (mode 0700)"
          : "check that /run is writable",
        cause: err,
      },
    );
  }
}

function ensurePrivateDir(path: string, euid: number): void {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    Deno.mkdirSync(path, { recursive: true, mode: 0o700 });
    st = Deno.lstatSync(path);
  }
  if (!st.isDirectory || st.uid !== euid || ((st.mode ?? 0) & 0o077) !== 0) {
    // buildkitd sets the sticky bit on its run dir; only group/other bits matter.
    throw new BuildctlError(
      `refusing to use "${path}": it must be a directory owned by uid ${euid} with mode 0700`,
      {
        exitCode: ExitCode.Unavailable,
        hint: `remove it, or set XDG_RUNTIME_DIR to a private directory`,
      },
    );
  }
}
