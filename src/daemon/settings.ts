/**
 * The daemon manager's defaults and environment variables, in a module with
 * no imports, so that the command tree (help text) and a command's fast
 * path can name them without loading the manager itself.
 *
 * @module
 */

/** Idle timeout of an automatically started daemon: long enough to keep a warm cache through a working session. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000;
/** How long a starting daemon may take to answer before we give up. */
export const DEFAULT_START_TIMEOUT_MS = 30_000;
/** Environment variable: idle timeout of automatically started daemons (Go duration; 0 = never). */
export const IDLE_TIMEOUT_ENV = "BUILDCTL_DAEMON_IDLE_TIMEOUT";
/** Environment variable: how long a starting daemon may take (Go duration). */
export const START_TIMEOUT_ENV = "BUILDCTL_DAEMON_START_TIMEOUT";
