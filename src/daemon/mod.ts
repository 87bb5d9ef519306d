/**
 * The daemon manager: finds, starts (exactly once), supervises, inspects,
 * stops and diagnoses the buildkitd that serves "the default address", so
 * that users never have to think about it.
 *
 * - `auto.ts`: the automatic start used by every command ({@linkcode resolveDefaultDaemon}).
 * - `bootstrap.ts`: start under a lock, readiness, stale-state recovery.
 * - `supervisor.ts`: the idle supervisor (`buildctl daemon _supervise`).
 * - `manage.ts`: state, stop, wipe, logs. `doctor.ts`: prerequisite checks.
 * - `paths.ts`, `proc.ts`, `lock.ts`, `record.ts`, `find.ts`, `prereq.ts`, `self.ts`: building blocks.
 *
 * @module
 */

export {
  autoIdleTimeoutMs,
  type DaemonContext,
  daemonContext,
  holdClientLock,
  IDLE_TIMEOUT_ENV,
  parseDurationMs,
  resolveDefaultDaemon,
  START_TIMEOUT_ENV,
  startTimeoutMs,
} from "./auto.ts";
export {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_START_TIMEOUT_MS,
  ensureDaemon,
  type EnsureResult,
  logTail,
  type StartedDaemon,
} from "./bootstrap.ts";
export {
  type DaemonState,
  daemonState,
  followLog,
  stopDaemon,
  type StopResult,
  wipeStateDir,
} from "./manage.ts";
export { doctor, type DoctorReport, renderDoctor } from "./doctor.ts";
export { supervise } from "./supervisor.ts";
export {
  type DaemonMode,
  type DaemonPaths,
  logPathFor,
  SYSTEM_ROOT,
  SYSTEM_SOCKET,
} from "./paths.ts";
export { type DaemonOptions, type DaemonRecord, readRecord, recordAlive } from "./record.ts";
