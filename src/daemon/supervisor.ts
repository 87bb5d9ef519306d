/**
 * The idle supervisor: a small detached process (`buildctl daemon
 * _supervise`) that stops the daemon after a period without activity.
 * buildkitd has no idle timeout of its own.
 *
 * Activity is any of:
 * - a client connection to the daemon's socket: the server side of every
 *   accepted connection is listed in `/proc/net/unix` with the socket's path
 *   (this catches running builds, sessions, and clients other than ours);
 * - the mtime of `buildctl.clients`, which every buildctl command touches
 *   when it resolves the daemon (this catches commands too short for a
 *   tick to see).
 *
 * Stopping is race-free with respect to our own commands: every command
 * holds a shared lock on `buildctl.clients` for its lifetime, and the
 * supervisor takes it exclusively (plus the start lock) before it re-checks
 * activity and sends SIGTERM. A command that arrives meanwhile waits for
 * the stop to finish and then starts a fresh daemon.
 *
 * It checks every second (one `cat` of /proc per check, see proc.ts), so the
 * daemon stops within timeout + 1 s of the last activity (plus buildkitd's
 * own shutdown). It exits when the daemon exits for any other reason, and
 * never keeps a connection of its own.
 *
 * @module
 */

import { dirname } from "../path.ts";
import { acquireLock } from "./lock.ts";
import { delay } from "../timer.ts";
import { runFiles } from "./paths.ts";
import {
  bootId,
  countConnections,
  pidExists,
  type ProcessStamp,
  readProcFiles,
  signalProcess,
  socketInodes,
  stampMatches,
  stampOf,
  waitForExit,
} from "./proc.ts";
import {
  readRecord,
  removeQuiet,
  type SupervisorStatus,
  writeJsonAtomic,
  writeRecord,
} from "./record.ts";

/** Options of {@linkcode supervise}. */
export interface SuperviseOptions {
  /** The daemon record this supervisor watches. */
  recordPath: string;
  /** The daemon pid it was started for (guards against a replaced daemon). */
  daemonPid: number;
  /** Check interval (default 1 s). */
  tickMs?: number;
}

/** Why {@linkcode supervise} returned. */
export type SuperviseOutcome = "idle-stopped" | "daemon-exited" | "replaced" | "no-timeout";

function mtimeMs(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    return 0;
  }
}

function appendLog(path: string, line: string): void {
  try {
    Deno.writeTextFileSync(path, `--- ${new Date().toISOString()} buildctl: ${line}\n`, {
      append: true,
    });
  } catch { /* best effort */ }
}

/** One look at the daemon: alive? how many clients? */
async function look(
  daemon: ProcessStamp,
  socketPath: string,
): Promise<{ alive: boolean; connections: number }> {
  if (!pidExists(daemon.pid)) return { alive: false, connections: 0 };
  const stat = `/proc/${daemon.pid}/stat`;
  const [files, inodes] = await Promise.all([
    readProcFiles([stat, "/proc/net/unix"]),
    socketInodes(daemon.pid),
  ]);
  return {
    alive: stampMatches(daemon, files.get(stat), await bootId()),
    connections: countConnections(files.get("/proc/net/unix"), socketPath, inodes),
  };
}

/** Runs until the daemon is stopped for idleness or exits; see the module doc. */
export async function supervise(opts: SuperviseOptions): Promise<SuperviseOutcome> {
  const files = runFiles(dirname(opts.recordPath));
  const tickMs = opts.tickMs ?? 1000;
  const rec = readRecord(opts.recordPath);
  if (!rec || rec.daemon.pid !== opts.daemonPid) return "replaced";
  const timeout = rec.options.idleTimeoutMs;
  if (!(timeout > 0)) return "no-timeout";
  const daemon = rec.daemon;
  const me = (await stampOf(Deno.pid)) ?? { pid: Deno.pid, startTime: 0, bootId: "" };
  let lastActivity = Math.max(Date.now(), mtimeMs(files.clientsPath));
  let connections = 0;
  let written = { lastActivity: 0, connections: -1 };

  const publish = (force = false) => {
    if (
      !force && Math.abs(written.lastActivity - lastActivity) < 1000 &&
      written.connections === connections
    ) return;
    const status: SupervisorStatus = {
      format: 1,
      supervisor: me,
      daemonPid: daemon.pid,
      idleTimeoutMs: timeout,
      lastActivity,
      connections,
    };
    try {
      writeJsonAtomic(files.supervisorPath, status);
      written = { lastActivity, connections };
    } catch { /* best effort */ }
  };
  const cleanup = () => {
    try {
      const s = JSON.parse(Deno.readTextFileSync(files.supervisorPath)) as SupervisorStatus;
      if (s.supervisor.pid === me.pid) removeQuiet(files.supervisorPath);
    } catch { /* none */ }
  };
  Deno.addSignalListener("SIGTERM", () => {
    cleanup();
    Deno.exit(0);
  });
  publish(true);

  /** Updates the activity facts; returns whether the daemon lives and how long it has been idle. */
  const observe = async () => {
    const seen = await look(daemon, rec.socketPath);
    // A connection seen at the previous tick may have lasted until just
    // before this one: count activity up to now, so that the daemon is never
    // stopped less than the timeout after its last connection closed.
    const hadConnections = connections > 0;
    connections = seen.connections;
    const now = Date.now();
    if (connections > 0 || hadConnections) lastActivity = now;
    lastActivity = Math.max(lastActivity, mtimeMs(files.clientsPath));
    return { alive: seen.alive, idleFor: now - lastActivity };
  };
  const stillOurs = () => {
    const current = readRecord(opts.recordPath);
    return !!current && current.daemon.pid === daemon.pid && current.status !== "stopped";
  };

  for (;;) {
    await delay(tickMs);
    const { alive, idleFor } = await observe();
    if (!alive) {
      cleanup();
      return "daemon-exited";
    }
    if (!stillOurs()) {
      cleanup();
      return "replaced";
    }
    publish();
    if (idleFor < timeout) continue;

    // Idle: take the client lock (waits for running commands) and the start lock, then re-check.
    const clients = await acquireLock(files.clientsPath, { exclusive: true });
    const start = await acquireLock(files.lockPath, { exclusive: true, writePid: true });
    try {
      const again = await observe();
      if (!again.alive || !stillOurs()) {
        cleanup();
        return again.alive ? "replaced" : "daemon-exited";
      }
      if (again.idleFor < timeout) {
        publish();
        continue;
      }
      const current = readRecord(opts.recordPath)!;
      appendLog(
        current.logPath,
        `stopping idle buildkitd (pid ${daemon.pid}): no activity for ${
          Math.round(again.idleFor / 1000)
        }s`,
      );
      signalProcess(daemon.pid, "SIGTERM");
      if (!(await waitForExit(daemon, 20_000, 50))) {
        appendLog(
          current.logPath,
          `buildkitd (pid ${daemon.pid}) did not stop within 20s; sending SIGKILL`,
        );
        signalProcess(daemon.pid, "SIGKILL");
        await waitForExit(daemon, 5000, 50);
      }
      writeRecord(opts.recordPath, { ...current, status: "stopped", stoppedAt: Date.now() });
      cleanup();
      return "idle-stopped";
    } finally {
      start.release();
      clients.release();
    }
  }
}
