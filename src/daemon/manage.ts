/**
 * Lifecycle operations on the current user's daemon: state, stop, wipe
 * (for reset) and log following. Starting lives in `bootstrap.ts`.
 *
 * @module
 */

import { BuildctlError, ExitCode } from "../errors.ts";
import type { BuildkitClient } from "../client/mod.ts";
import { parseAddress } from "../client/address.ts";
import type { BuildHistoryEventType } from "../gen/github.com/moby/buildkit/api/services/control/control_history.ts";
import { acquireLock } from "./lock.ts";
import type { DaemonMode, DaemonPaths } from "./paths.ts";
import { logPathFor } from "./paths.ts";
import { isAlive, readProcFile, signalProcess, waitForExit } from "./proc.ts";
import { delay } from "../timer.ts";
import {
  type DaemonRecord,
  readJson,
  readRecord,
  recordAlive,
  removeQuiet,
  type SupervisorStatus,
  writeRecord,
} from "./record.ts";
import { answers } from "../client/probe.ts";
import { logTail } from "./bootstrap.ts";
import { findProgram } from "./find.ts";

/** `BuildHistoryEventType.STARTED` (a type-only import keeps gRPC out of start-up). */
const HISTORY_STARTED = 0 as BuildHistoryEventType;

/** Everything `buildctl daemon state` reports. */
export interface DaemonState {
  /** Something answers at the address. */
  running: boolean;
  /** The daemon was started by buildctl and its process is alive. */
  managed: boolean;
  pid: number | undefined;
  address: string;
  mode: DaemonMode;
  rootDir: string;
  logPath: string;
  startedBy: "auto" | "start" | undefined;
  /** ms since the epoch. */
  startedAt: number | undefined;
  uptimeMs: number | undefined;
  buildkitdVersion: string | undefined;
  workers: { id: string; platforms: string[] }[] | undefined;
  activeBuilds: number | undefined;
  /** 0 = never stops by itself. */
  idleTimeoutMs: number | undefined;
  /** Time until an idle stop if nothing happens; undefined without a supervisor. */
  idleLeftMs: number | undefined;
  supervisorPid: number | undefined;
  supervisorRunning: boolean;
  /** Client connections seen by the supervisor at its last check. */
  connections: number | undefined;
  /** Extra buildkitd flags. */
  extraFlags: string[];
  lastLogLines: string[];
  /** Why some live facts are missing (e.g. the daemon did not answer). */
  error?: string;
}

/** Collects the state of the daemon at `paths` (asks it over gRPC when it answers). */
export async function daemonState(paths: DaemonPaths, logLines = 10): Promise<DaemonState> {
  const rec = readRecord(paths.recordPath);
  const alive = await recordAlive(rec);
  const running = await answers(paths.socketPath);
  const sup = readJson<SupervisorStatus>(paths.supervisorPath);
  const supAlive = !!(alive && rec?.supervisor && (await isAlive(rec.supervisor)));
  const logPath = rec?.logPath ?? logPathFor(paths.rootDir);
  const state: DaemonState = {
    running,
    managed: alive,
    pid: alive ? rec!.daemon.pid : undefined,
    address: paths.address,
    mode: paths.mode,
    rootDir: rec?.options.rootDir ?? paths.rootDir,
    logPath,
    startedBy: alive ? rec!.startedBy : undefined,
    startedAt: alive ? rec!.startedAt : undefined,
    uptimeMs: alive ? Date.now() - rec!.startedAt : undefined,
    buildkitdVersion: alive ? rec!.buildkitdVersion : undefined,
    workers: undefined,
    activeBuilds: undefined,
    idleTimeoutMs: rec?.options.idleTimeoutMs,
    idleLeftMs: undefined,
    supervisorPid: supAlive ? rec!.supervisor!.pid : undefined,
    supervisorRunning: supAlive,
    connections: undefined,
    extraFlags: rec?.options.extraFlags ?? [],
    lastLogLines: logTail(logPath, logLines),
  };
  if (supAlive && sup && sup.daemonPid === rec!.daemon.pid) {
    state.idleLeftMs = Math.max(0, sup.idleTimeoutMs - (Date.now() - sup.lastActivity));
    state.connections = sup.connections;
  } else if (supAlive) {
    // The supervisor has not published yet (it is still starting): it counts
    // from the daemon's start or the last command, whichever is later.
    let last = rec!.readyAt ?? rec!.startedAt;
    try {
      last = Math.max(last, (await Deno.stat(paths.clientsPath)).mtime?.getTime() ?? 0);
    } catch { /* no clients yet */ }
    state.idleLeftMs = Math.max(0, rec!.options.idleTimeoutMs - (Date.now() - last));
  }
  if (running) {
    let client: BuildkitClient | undefined;
    try {
      const { connect } = await import("../client/mod.ts");
      client = await connect({ address: parseAddress(paths.address), timeoutMs: 5000 });
      const deadline = new Date(Date.now() + 5000);
      const [info, workers, active] = await Promise.all([
        client.info(deadline),
        client.listWorkers([]),
        activeBuilds(client, deadline),
      ]);
      state.buildkitdVersion = info.buildkitVersion?.version ?? state.buildkitdVersion;
      state.workers = workers.map((w) => ({
        id: w.ID,
        platforms: w.platforms.map((p) =>
          [p.OS, p.Architecture, p.Variant].filter(Boolean).join("/")
        ),
      }));
      state.activeBuilds = active;
    } catch (err) {
      state.error = err instanceof Error ? err.message : String(err);
    } finally {
      client?.close();
    }
  }
  return state;
}

/** Counts builds in progress: `ListenBuildHistory{ActiveOnly, EarlyExit}` lists them, then ends. */
async function activeBuilds(client: BuildkitClient, deadline: Date): Promise<number> {
  const refs = new Set<string>();
  await client.listenBuildHistory(
    { ActiveOnly: true, EarlyExit: true },
    (ev) => {
      const ref = ev.record?.Ref;
      if (!ref) return;
      if (ev.type === HISTORY_STARTED) refs.add(ref);
      else refs.delete(ref);
    },
    { deadline: deadline.getTime() },
  );
  return refs.size;
}

/** The outcome of {@linkcode stopDaemon}. */
export interface StopResult {
  /** `stopped`: we stopped it; `not-running`: nothing to do. */
  kind: "stopped" | "not-running";
  pid?: number;
  elapsedMs?: number;
  /** SIGKILL was needed. */
  killed?: boolean;
}

/**
 * Stops the daemon gracefully: SIGTERM, wait up to `graceMs`, then SIGKILL.
 * The record is kept (status `stopped`) so the next start reuses its options.
 *
 * @throws {BuildctlError} when a daemon answers that buildctl did not start.
 */
export async function stopDaemon(paths: DaemonPaths, graceMs = 20_000): Promise<StopResult> {
  let lock;
  try {
    lock = await acquireLock(paths.lockPath, {
      exclusive: true,
      writePid: true,
      timeoutMs: 60_000,
    });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return notRunningOrForeign(paths, undefined);
    throw err;
  }
  try {
    const rec = readRecord(paths.recordPath);
    if (!rec || !(await recordAlive(rec))) return await notRunningOrForeign(paths, rec);
    const t0 = performance.now();
    signalProcess(rec.daemon.pid, "SIGTERM");
    let killed = false;
    if (!(await waitForExit(rec.daemon, graceMs))) {
      killed = true;
      signalProcess(rec.daemon.pid, "SIGKILL");
      await waitForExit(rec.daemon, 5000);
    }
    if (rec.supervisor && (await isAlive(rec.supervisor))) {
      signalProcess(rec.supervisor.pid, "SIGTERM");
    }
    removeQuiet(paths.supervisorPath);
    writeRecord(paths.recordPath, { ...rec, status: "stopped", stoppedAt: Date.now() });
    return { kind: "stopped", pid: rec.daemon.pid, elapsedMs: performance.now() - t0, killed };
  } finally {
    lock.release();
  }
}

async function notRunningOrForeign(
  paths: DaemonPaths,
  rec: DaemonRecord | undefined,
): Promise<StopResult> {
  if (rec && rec.status !== "stopped") {
    // Stale (killed, or from an earlier boot): tidy up.
    if (rec.supervisor && (await isAlive(rec.supervisor))) {
      signalProcess(rec.supervisor.pid, "SIGTERM");
    }
    removeQuiet(paths.supervisorPath);
    try {
      writeRecord(paths.recordPath, { ...rec, status: "stopped", stoppedAt: Date.now() });
    } catch { /* read-only run dir */ }
  }
  if (await answers(paths.socketPath)) {
    throw new BuildctlError(
      `a buildkitd answers at ${paths.address} but buildctl did not start it`,
      {
        exitCode: ExitCode.Failure,
        hint:
          "stop it with whatever started it (e.g. 'sudo systemctl stop buildkit', or kill its process)",
      },
    );
  }
  return { kind: "not-running" };
}

/** Whether `dir` looks like a BuildKit state dir (or is empty), so wiping it is safe. */
export function looksLikeStateDir(dir: string): boolean {
  const markers = [
    "cache.db",
    "history.db",
    "buildkitd.lock",
    "runc-overlayfs",
    "runc-native",
    "content",
    "buildkitd.log",
  ];
  let empty = true;
  try {
    for (const e of Deno.readDirSync(dir)) {
      empty = false;
      if (markers.includes(e.name)) return true;
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return true;
    throw err;
  }
  return empty;
}

/**
 * Deletes a (stopped) daemon's state dir. Leftover mounts below it are
 * unmounted first. In rootless mode, files owned by subordinate ids (made
 * by containers) cannot be removed by the user directly; they are removed
 * inside the user namespace (`rootlesskit rm -rf`).
 *
 * @throws {BuildctlError} when the dir does not look like a BuildKit state dir or cannot be removed.
 */
export async function wipeStateDir(
  dir: string,
  mode: DaemonMode,
  env: (n: string) => string | undefined,
) {
  const normalized = dir.replace(/\/+$/, "");
  if (normalized === "" || normalized.split("/").filter(Boolean).length < 2) {
    throw new BuildctlError(`refusing to wipe "${dir}": too close to the filesystem root`);
  }
  if (!looksLikeStateDir(dir)) {
    throw new BuildctlError(
      `refusing to wipe "${dir}": it does not look like a BuildKit state directory`,
      {
        hint: "check --root; remove it by hand if you are sure",
      },
    );
  }
  await unmountBelow(normalized);
  try {
    await Deno.remove(dir, { recursive: true });
    return;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    if (mode !== "rootless") {
      throw new BuildctlError(`cannot remove "${dir}": ${(err as Error).message}`, { cause: err });
    }
  }
  const rk = findProgram("rootlesskit", env).path;
  if (!rk) {
    throw new BuildctlError(
      `cannot remove "${dir}": some files belong to container users, and rootlesskit is missing`,
    );
  }
  const out = await new Deno.Command(rk, {
    args: ["rm", "-rf", "--", dir],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new BuildctlError(
      `cannot remove "${dir}": ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

async function unmountBelow(dir: string): Promise<void> {
  // /proc/self is the reader's; a helper shares our mount namespace.
  const info = await readProcFile("/proc/self/mountinfo");
  if (!info) return;
  const points = info.split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => !!p && (p === dir || p.startsWith(`${dir}/`)))
    .map((p) => p.replace(/\\040/g, " "))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    await new Deno.Command("umount", { args: ["-l", p], stdout: "null", stderr: "null" }).output()
      .catch(() => {});
  }
}

/**
 * Prints the log and, with `follow`, keeps printing what is appended until
 * `signal` aborts (a new daemon's output included, after a rotation too).
 */
export async function followLog(
  logPath: string,
  write: (bytes: Uint8Array) => void,
  opts: { follow: boolean; tail?: number; signal?: AbortSignal },
): Promise<boolean> {
  let offset = 0;
  let size: number;
  try {
    size = (await Deno.stat(logPath)).size;
  } catch {
    if (!opts.follow) return false;
    size = 0;
  }
  if (opts.tail !== undefined && size > 0) {
    const lines = logTail(logPath, opts.tail);
    write(new TextEncoder().encode(lines.length ? lines.join("\n") + "\n" : ""));
    offset = size;
  }
  for (;;) {
    try {
      const st = await Deno.stat(logPath);
      if (st.size < offset) offset = 0; // rotated or truncated
      if (st.size > offset) {
        const f = await Deno.open(logPath, { read: true });
        try {
          await f.seek(offset, Deno.SeekMode.Start);
          const buf = new Uint8Array(Math.min(st.size - offset, 1 << 20));
          const n = (await f.read(buf)) ?? 0;
          if (n > 0) write(buf.subarray(0, n));
          offset += n;
        } finally {
          f.close();
        }
        if (offset < st.size) continue;
      }
    } catch { /* not there (yet) */ }
    if (!opts.follow || opts.signal?.aborted) return true;
    await Promise.race([
      delay(250),
      new Promise((r) => opts.signal?.addEventListener("abort", r, { once: true })),
    ]);
    if (opts.signal?.aborted) return true;
  }
}
