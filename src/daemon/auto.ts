/**
 * The automatic start: what runs when a command needs the daemon and
 * neither `--addr` nor `BUILDKIT_HOST` was given.
 *
 * "The default address" depends on who asks: for root it is the system
 * socket (/run/buildkit/buildkitd.sock); for any other user it is the socket
 * of the daemon that serves that user — their rootless daemon if it runs,
 * else a system daemon they may use (permissions decide), else a rootless
 * daemon started now.
 *
 * Fast path (daemon running): one mkdir check, a shared lock plus a touch
 * of `buildctl.clients` (activity for the idle supervisor), one connect
 * probe — well under a millisecond of work, and no module of the start
 * machinery (bootstrap, launcher client) is loaded.
 *
 * @module
 */

import { acquireLock, type HeldLock } from "./lock.ts";
import { type DaemonPaths, daemonPaths, ensureRunDir, SYSTEM_SOCKET } from "./paths.ts";
import { currentIdentity, type Identity } from "./proc.ts";
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_START_TIMEOUT_MS,
  IDLE_TIMEOUT_ENV,
  START_TIMEOUT_ENV,
} from "./settings.ts";
import { answers } from "../client/probe.ts";
import { parseGoDuration } from "../cli/format/units.ts";
import { usageError } from "../errors.ts";

export { IDLE_TIMEOUT_ENV, START_TIMEOUT_ENV };

/** The context every daemon operation needs: who we are and where the daemon lives. */
export interface DaemonContext {
  id: Identity;
  paths: DaemonPaths;
  env: (name: string) => string | undefined;
}

/** Resolves {@linkcode DaemonContext} for the current process. */
export function daemonContext(env: (name: string) => string | undefined): DaemonContext {
  const id = currentIdentity(env);
  return { id, paths: daemonPaths(id, env), env };
}

/** Parses a Go-style duration into ms; `0` is allowed. */
export function parseDurationMs(text: string, what: string): number {
  try {
    const ns = parseGoDuration(text.trim());
    if (ns < 0n) throw new Error("negative");
    return Number(ns / 1_000_000n);
  } catch {
    throw usageError(`invalid ${what} "${text}": expected a duration such as 30s, 10m or 1h30m`);
  }
}

function envDuration(
  env: (n: string) => string | undefined,
  name: string,
  fallback: number,
): number {
  const v = env(name);
  return v ? parseDurationMs(v, `$${name}`) : fallback;
}

/** Start timeout from the environment (default 30 s). */
export function startTimeoutMs(env: (n: string) => string | undefined): number {
  return envDuration(env, START_TIMEOUT_ENV, DEFAULT_START_TIMEOUT_MS) || DEFAULT_START_TIMEOUT_MS;
}

/** Idle timeout of automatically started daemons from the environment (default 30 min). */
export function autoIdleTimeoutMs(env: (n: string) => string | undefined): number {
  return envDuration(env, IDLE_TIMEOUT_ENV, DEFAULT_IDLE_TIMEOUT_MS);
}

let clientLock: HeldLock | undefined;

/**
 * Marks this process as an active client of the daemon at `paths`: a shared
 * lock on `buildctl.clients`, held until the process exits, and a touch of
 * its mtime. The idle supervisor never stops the daemon while such a lock
 * is held. Best effort: failures (read-only run dir…) are ignored.
 */
export async function holdClientLock(paths: DaemonPaths): Promise<void> {
  if (clientLock) return;
  try {
    clientLock = await acquireLock(paths.clientsPath, { exclusive: false, timeoutMs: 60_000 });
    const now = new Date();
    await clientLock.file.utime(now, now).catch(() => {});
  } catch { /* best effort */ }
}

/** Options of {@linkcode resolveDefaultDaemon}. */
export interface AutoOptions {
  env: (name: string) => string | undefined;
  /** Writes one line to stderr. */
  report: (line: string) => void;
}

/**
 * Returns the address of the daemon that serves this user at "the default
 * address", starting one when nothing answers and the user can run one.
 *
 * @throws {BuildctlError} (exit 69) with what is missing and how to fix it.
 */
export async function resolveDefaultDaemon(opts: AutoOptions): Promise<string> {
  const ctx = daemonContext(opts.env);
  const { paths, id } = ctx;
  // First rung: a user an administrator granted a daemon uses it (through
  // `sudo -n <launcher> start` when it is not running).
  if (id.euid !== 0) {
    const { startViaLauncher } = await import("./launcher_client.ts");
    const viaLauncher = await startViaLauncher({
      env: opts.env,
      uid: id.euid,
      onStarting: () => opts.report("starting buildkitd through the launcher (sudo -n)"),
    });
    if (viaLauncher) return viaLauncher;
  }
  try {
    ensureRunDir(paths, id.euid);
    await holdClientLock(paths);
  } catch { /* reported by ensureDaemon if it matters */ }
  if (await answers(paths.socketPath)) return paths.address;
  if (paths.mode === "rootless" && (await answers(SYSTEM_SOCKET))) return `unix://${SYSTEM_SOCKET}`;
  // Only now the start machinery: a command whose daemon answers never loads it.
  const { ensureDaemon, trace } = await import("./bootstrap.ts");
  const result = await ensureDaemon({
    id,
    paths,
    env: opts.env,
    report: opts.report,
    startedBy: "auto",
    startTimeoutMs: startTimeoutMs(opts.env),
    defaultIdleTimeoutMs: autoIdleTimeoutMs(opts.env),
  });
  trace("auto-start done");
  return result.address;
}
