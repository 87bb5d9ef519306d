/**
 * The daemon record (`buildctl.json` in the run dir) and the supervisor's
 * status file: JSON, written atomically (temp file + rename), every pid
 * stamped with its start time and the boot id so that a record left by a
 * killed daemon or an earlier boot is recognised as stale.
 *
 * The record outlives a stop (status `stopped`) so that the options given
 * to `buildctl daemon start` (state dir, extra flags, idle timeout) stay in
 * force when the next command starts the daemon again.
 *
 * @module
 */

import { dirname } from "../path.ts";
import { isAlive, type ProcessStamp } from "./proc.ts";
import type { DaemonMode } from "./paths.ts";

/** Options a daemon was started with; reused when it is started again. */
export interface DaemonOptions {
  /** State dir (`--root`). */
  rootDir: string;
  /** Extra buildkitd flags (after `--`). */
  extraFlags: string[];
  /** buildkitd `--debug`. */
  debug: boolean;
  /** Stop after this long without activity; 0 = never. */
  idleTimeoutMs: number;
  /** Whether the idle timeout was chosen by the user (kept across restarts). */
  idleTimeoutExplicit: boolean;
}

/** What we know about the daemon we started. */
export interface DaemonRecord {
  format: 1;
  status: "starting" | "running" | "stopped";
  mode: DaemonMode;
  /** The process we signal: buildkitd (root) or rootlesskit (rootless). */
  daemon: ProcessStamp;
  address: string;
  socketPath: string;
  logPath: string;
  /** argv of the daemon process. */
  argv: string[];
  options: DaemonOptions;
  /** `auto` (a command needed it) or `start` (`buildctl daemon start`). */
  startedBy: "auto" | "start";
  /** ms since the epoch. */
  startedAt: number;
  /** ms since the epoch, once it answered. */
  readyAt?: number;
  /** ms since the epoch, once stopped. */
  stoppedAt?: number;
  /** `Info` version of the daemon, e.g. `v0.32.2`. */
  buildkitdVersion?: string;
  /** The idle supervisor, when there is one. */
  supervisor?: ProcessStamp;
}

/** What the idle supervisor publishes. */
export interface SupervisorStatus {
  format: 1;
  supervisor: ProcessStamp;
  daemonPid: number;
  idleTimeoutMs: number;
  /** ms since the epoch of the last activity seen. */
  lastActivity: number;
  /** Client connections at the last check. */
  connections: number;
}

/** Reads a JSON file; undefined when missing or unreadable. */
export function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as T;
  } catch {
    return undefined;
  }
}

/** Writes JSON atomically: a temp file in the same directory, then rename. */
export function writeJsonAtomic(path: string, value: unknown, mode = 0o644): void {
  const tmp = `${path}.${Deno.pid}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(value, null, 2) + "\n", { mode });
  try {
    Deno.renameSync(tmp, path);
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch { /* ignore */ }
    throw err;
  }
}

/** Reads the daemon record. */
export function readRecord(path: string): DaemonRecord | undefined {
  const rec = readJson<DaemonRecord>(path);
  return rec && rec.format === 1 && rec.daemon ? rec : undefined;
}

/** Writes the daemon record. */
export function writeRecord(path: string, rec: DaemonRecord): void {
  Deno.mkdirSync(dirname(path), { recursive: true });
  writeJsonAtomic(path, rec);
}

/**
 * Whether the record describes a daemon process that is still alive.
 */
export async function recordAlive(rec: DaemonRecord | undefined): Promise<boolean> {
  return !!rec && rec.status !== "stopped" && (await isAlive(rec.daemon));
}

/** Removes a file, ignoring "not found". */
export function removeQuiet(path: string): void {
  try {
    Deno.removeSync(path);
  } catch { /* gone */ }
}
