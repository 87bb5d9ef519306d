/**
 * Starting the daemon exactly once: find buildkitd, decide the mode, take
 * the start lock, probe again (another command may have won the race),
 * recover from stale state, start buildkitd in its own session with its
 * output appended to a log in the state dir, wait until it answers, and
 * leave it running for every later command.
 *
 * Design notes (why it looks like this):
 * - buildkitd is spawned directly by the command that needs it (through
 *   `/bin/sh -c 'exec … >>log 2>&1'`, because Deno cannot hand a file to a
 *   child as its stdout). No extra Deno start-up sits on the critical path:
 *   the idle supervisor (another Deno process) is spawned after the daemon
 *   answers and attaches to it by pid.
 * - Readiness: buildkitd binds its socket before it loads workers and only
 *   serves after `READY=1`; so we poll until the socket accepts (5→50 ms
 *   backoff) and then wait for a `Control/Info` answer, which arrives once it
 *   serves — the same point sd_notify would report. Receiving sd_notify
 *   needs a unix datagram socket, which Deno only offers behind
 *   `--unstable-net`, so the permission set of the binary would have to
 *   grow for no gain in latency. We remove `NOTIFY_SOCKET` from the daemon's
 *   environment so that it never notifies a service manager that started
 *   us. Early exit is watched the whole time (the child's status).
 * - Once ready the child is unref'd: it outlives this command, reparented
 *   to init, in its own session (`detached`), so Ctrl-C on the command does
 *   not reach it.
 *
 * @module
 */

import { parseAddress } from "../client/address.ts";
import { answers } from "../client/probe.ts";
import { BuildctlError, ExitCode } from "../errors.ts";
import { acquireLock } from "./lock.ts";
import { delay } from "../timer.ts";
import { type DaemonPaths, ensureRunDir, logPathFor } from "./paths.ts";
import {
  type Identity,
  isAlive,
  type ProcessStamp,
  signalProcess,
  stampOf,
  waitForExit,
} from "./proc.ts";
import { daemonPath, findProgram, type FoundProgram } from "./find.ts";
import { type Problem, rootlessProblems, rootlessPrograms, rootProblems } from "./prereq.ts";
import {
  type DaemonOptions,
  type DaemonRecord,
  readRecord,
  recordAlive,
  removeQuiet,
  writeRecord,
} from "./record.ts";
import { selfArgv } from "./self.ts";
import { BUILDKIT_VERSION } from "../version.ts";
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_START_TIMEOUT_MS } from "./settings.ts";

export { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_START_TIMEOUT_MS };
/** Log lines shown when the daemon fails to start. */
export const LOG_TAIL_LINES = 20;
/** The log is moved to `buildkitd.log.1` at start when it grew beyond this. */
const LOG_ROTATE_BYTES = 16 << 20;

/** What {@linkcode ensureDaemon} needs. */
export interface EnsureContext {
  id: Identity;
  paths: DaemonPaths;
  env: (name: string) => string | undefined;
  /** One line to stderr (progress, "started …"). */
  report: (line: string) => void;
  /** `auto` when a command needs the daemon, `start` for `buildctl daemon start`. */
  startedBy: "auto" | "start";
  /** Options the user asked for (daemon start); missing ones come from the last record, then defaults. */
  requested?: Partial<DaemonOptions>;
  startTimeoutMs?: number;
  /** Idle timeout of an automatically started daemon, unless a previous `daemon start --timeout` set one. */
  defaultIdleTimeoutMs?: number;
}

/** A daemon this call started. */
export interface StartedDaemon {
  pid: number;
  mode: DaemonPaths["mode"];
  elapsedMs: number;
  logPath: string;
  record: DaemonRecord;
}

/** The outcome of {@linkcode ensureDaemon}. */
export interface EnsureResult {
  address: string;
  /** Set when this call started the daemon. */
  started?: StartedDaemon;
  /** The record of the running daemon, when it is ours. */
  record?: DaemonRecord;
}

/**
 * Makes sure the daemon of `ctx.paths` answers, starting it if needed.
 *
 * @throws {BuildctlError} (exit 69) when buildkitd is missing, neither mode is
 *   possible, or the daemon fails to start (with the log tail).
 */
export async function ensureDaemon(ctx: EnsureContext): Promise<EnsureResult> {
  const { paths } = ctx;
  trace("ensureDaemon");
  if (await answers(paths.socketPath)) {
    return { address: paths.address, record: readRecord(paths.recordPath) };
  }

  ensureRunDir(paths, ctx.id.euid);
  const startTimeoutMs = ctx.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const lock = await acquireLock(paths.lockPath, {
    exclusive: true,
    writePid: true,
    timeoutMs: startTimeoutMs + 15_000,
    onWaiting: (pid) =>
      ctx.report(
        `waiting for another buildctl${pid ? ` (pid ${pid})` : ""} to start or stop buildkitd…`,
      ),
  });
  try {
    // Double-checked: whoever held the lock before us may have started it.
    // Only then are the prerequisites checked, so that the commands that
    // lose a start race do no work but wait.
    if (await answers(paths.socketPath)) {
      return { address: paths.address, record: readRecord(paths.recordPath) };
    }
    const buildkitd = findProgram("buildkitd", ctx.env);
    if (!buildkitd.path) throw buildkitdNotFound(buildkitd);
    let rootlesskit: FoundProgram | undefined;
    let problems: Problem[];
    if (paths.mode === "root") {
      problems = await rootProblems(ctx.id);
    } else {
      const programs = rootlessPrograms(ctx.env);
      rootlesskit = programs.rootlesskit;
      problems = await rootlessProblems(ctx.id, programs);
    }
    if (problems.length) throw await cannotStart(ctx.id, paths, problems);
    trace("prerequisites checked");
    const previous = readRecord(paths.recordPath);
    if (previous && (await recordAlive(previous))) {
      // Ours, alive, not answering: still starting (its starter died?) or stopping.
      const outcome = await waitAnswerOrExit(paths.socketPath, previous.daemon, startTimeoutMs);
      if (outcome === "answers") return { address: paths.address, record: previous };
      if (outcome === "alive") {
        throw new BuildctlError(
          `buildkitd (pid ${previous.daemon.pid}) is running but does not answer at ${paths.address}`,
          {
            exitCode: ExitCode.Unavailable,
            hint:
              `see 'buildctl daemon logs' (${previous.logPath}); 'buildctl daemon stop' stops it`,
          },
        );
      }
    }
    // A supervisor left by a daemon that died (kill -9) must go. A record
    // marked stopped needs no look (a /proc read costs a process spawn):
    // every path that marks it stopped has already ended its supervisor.
    if (
      previous?.supervisor && previous.status !== "stopped" &&
      (await isAlive(previous.supervisor))
    ) {
      signalProcess(previous.supervisor.pid, "SIGTERM");
    }
    const options = resolveOptions(ctx, previous);
    const started = await spawnDaemon(
      ctx,
      buildkitd.path,
      rootlesskit?.path,
      options,
      startTimeoutMs,
      previous,
    );
    ctx.report(
      `started buildkitd (pid ${started.pid}, ${started.mode}) in ${
        (started.elapsedMs / 1000).toFixed(1)
      }s; logs: ${started.logPath}`,
    );
    return { address: paths.address, started, record: started.record };
  } finally {
    lock.release();
  }
}

async function waitAnswerOrExit(
  socketPath: string,
  daemon: ProcessStamp,
  timeoutMs: number,
): Promise<"answers" | "exited" | "alive"> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await answers(socketPath)) return "answers";
    if (!(await isAlive(daemon))) return "exited";
    if (Date.now() >= deadline) return "alive";
    await delay(50);
  }
}

function resolveOptions(ctx: EnsureContext, previous: DaemonRecord | undefined): DaemonOptions {
  const req = ctx.requested ?? {};
  const prev = previous?.options;
  const defaultIdle = ctx.startedBy === "auto"
    ? (ctx.defaultIdleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS)
    : 0;
  let idleTimeoutMs: number;
  let idleTimeoutExplicit: boolean;
  if (req.idleTimeoutMs !== undefined) {
    idleTimeoutMs = req.idleTimeoutMs;
    idleTimeoutExplicit = true;
  } else if (ctx.startedBy === "auto" && prev?.idleTimeoutExplicit) {
    idleTimeoutMs = prev.idleTimeoutMs;
    idleTimeoutExplicit = true;
  } else {
    idleTimeoutMs = defaultIdle;
    idleTimeoutExplicit = false;
  }
  // An explicit start gets exactly what it asked for; an automatic start
  // keeps the state dir and flags of the last explicit one.
  const keep = ctx.startedBy === "auto" ? prev : undefined;
  return {
    rootDir: req.rootDir ?? keep?.rootDir ?? ctx.paths.rootDir,
    extraFlags: req.extraFlags ?? keep?.extraFlags ?? [],
    debug: req.debug ?? keep?.debug ?? false,
    idleTimeoutMs,
    idleTimeoutExplicit,
  };
}

/** Where Debian's containernetworking-plugins puts the CNI plugins. */
export const CNI_BIN_DIR = "/usr/lib/cni";

/**
 * Flags that give every RUN step its own network namespace (buildkitd's
 * built-in bridge over the CNI plugins), as Docker does; without them a root
 * buildkitd falls back to the host's network for every step, and the
 * `network.host` entitlement then isolates nothing. Only when the plugins
 * are installed and the caller did not choose a network mode.
 */
export function bridgeNetworkFlags(extraFlags: readonly string[], cniDir = CNI_BIN_DIR): string[] {
  if (extraFlags.some((f) => f.startsWith("--oci-worker-net"))) return [];
  try {
    if (!Deno.statSync(`${cniDir}/bridge`).isFile) return [];
  } catch {
    return [];
  }
  return ["--oci-worker-net=bridge", `--oci-cni-binary-dir=${cniDir}`];
}

/** argv of the daemon for `options` (rootless: under rootlesskit). */
export function daemonArgv(
  paths: DaemonPaths,
  buildkitd: string,
  rootlesskit: string | undefined,
  options: DaemonOptions,
): string[] {
  const bk = [
    buildkitd,
    "--addr",
    paths.address,
    "--root",
    options.rootDir,
    ...(options.debug ? ["--debug"] : []),
    ...(paths.mode === "root" ? bridgeNetworkFlags(options.extraFlags) : []),
    ...options.extraFlags,
  ];
  // rootlesskit's defaults (--net=host, no port driver) keep the socket in
  // the host's network namespace (visible in /proc/net/unix for the idle
  // supervisor) and its path in the host's mount namespace.
  return paths.mode === "rootless" ? [rootlesskit!, ...bk] : bk;
}

/** The environment of the daemon: ours, minus service-manager and client variables. */
function daemonEnv(
  ctx: EnsureContext,
  programs: (string | undefined)[],
  logPath: string,
): Record<string, string> {
  const env = Deno.env.toObject();
  for (
    const k of ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "BUILDKIT_HOST"]
  ) delete env[k];
  env.PATH = daemonPath(ctx.env, programs);
  env.BUILDCTL_DAEMON_LOG = logPath;
  if (ctx.paths.mode === "rootless") {
    env.USER = ctx.id.user;
    env.HOME = ctx.id.home;
    if (ctx.paths.xdgRuntimeDir) env.XDG_RUNTIME_DIR = ctx.paths.xdgRuntimeDir;
  }
  return env;
}

async function spawnDaemon(
  ctx: EnsureContext,
  buildkitd: string,
  rootlesskit: string | undefined,
  options: DaemonOptions,
  startTimeoutMs: number,
  previous: DaemonRecord | undefined,
): Promise<StartedDaemon> {
  const { paths } = ctx;
  const t0 = performance.now();
  trace("lock held, spawning");
  const logPath = logPathFor(options.rootDir);
  try {
    await Deno.mkdir(options.rootDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new BuildctlError(
      `cannot create the state directory "${options.rootDir}": ${(err as Error).message}`,
      {
        exitCode: ExitCode.Unavailable,
        cause: err,
      },
    );
  }
  const argv = daemonArgv(paths, buildkitd, rootlesskit, options);
  const logStart = prepareLog(logPath, argv, ctx.startedBy);
  const env = daemonEnv(ctx, [buildkitd, rootlesskit], logPath);
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'exec "$@" >>"$BUILDCTL_DAEMON_LOG" 2>&1', "buildkitd", ...argv],
    env,
    clearEnv: true,
    detached: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exitStatus: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => {
    exitStatus = s;
    return s;
  });
  const daemon: ProcessStamp = (await stampOf(child.pid)) ??
    { pid: child.pid, startTime: 0, bootId: "" };
  const record: DaemonRecord = {
    format: 1,
    status: "starting",
    mode: paths.mode,
    daemon,
    address: paths.address,
    socketPath: paths.socketPath,
    logPath,
    argv,
    options,
    startedBy: ctx.startedBy,
    startedAt: Date.now(),
  };
  writeRecord(paths.recordPath, record);
  trace("spawned");

  const deadline = Date.now() + startTimeoutMs;
  const failed = async (why: string): Promise<never> => {
    if (!exitStatus) {
      signalProcess(child.pid, "SIGTERM");
      if (!(await waitForExit(daemon, 3000))) signalProcess(child.pid, "SIGKILL");
      await Promise.race([status, delay(2000)]);
    }
    // A failed start must not leave its options behind for the next automatic start.
    if (previous) {
      writeRecord(paths.recordPath, {
        ...previous,
        status: "stopped",
        stoppedAt: previous.stoppedAt ?? Date.now(),
      });
    } else removeQuiet(paths.recordPath);
    throw startFailure(why, logPath, logStart);
  };

  // 1. The socket accepts (bound early, before the workers load).
  let pollMs = 5;
  for (;;) {
    if (exitStatus) return await failed(exitText(exitStatus, t0));
    if (await answers(paths.socketPath)) {
      trace("socket accepts");
      break;
    }
    if (Date.now() >= deadline) {
      return await failed(`buildkitd did not answer within ${seconds(startTimeoutMs)}`);
    }
    await Promise.race([delay(pollMs), status]);
    pollMs = Math.min(pollMs * 1.5, 50);
  }
  // 2. It serves gRPC (after READY=1): Info answers.
  let version: string | undefined;
  try {
    // gRPC is loaded only when a daemon is actually being started.
    const { connect } = await import("../client/mod.ts");
    const client = await connect({
      address: parseAddress(paths.address),
      timeoutMs: Math.max(1, deadline - Date.now()),
    });
    try {
      const info = await Promise.race([
        client.info(new Date(deadline)),
        status.then(() => undefined),
      ]);
      if (!info) return await failed(exitText(exitStatus!, t0));
      version = info.buildkitVersion?.version;
    } finally {
      client.close();
    }
  } catch (err) {
    if (err instanceof StartError) throw err;
    if (exitStatus) return await failed(exitText(exitStatus, t0));
    return await failed(
      `buildkitd did not answer within ${seconds(startTimeoutMs)}: ${(err as Error).message}`,
    );
  }
  trace("Info answered");
  const elapsedMs = performance.now() - t0;
  child.unref();

  const supervisor = options.idleTimeoutMs > 0 ? await spawnSupervisor(paths, daemon) : undefined;
  trace("supervisor spawned");
  const running: DaemonRecord = {
    ...record,
    status: "running",
    readyAt: Date.now(),
    ...(version ? { buildkitdVersion: version } : {}),
    ...(supervisor ? { supervisor } : {}),
  };
  writeRecord(paths.recordPath, running);
  return { pid: daemon.pid, mode: paths.mode, elapsedMs, logPath, record: running };
}

/**
 * How long the idle supervisor's shell waits before it execs the runtime.
 * A start usually comes from a burst of commands (a build script, `make
 * -j`), and a Deno start-up costs each of them CPU; the supervisor is not
 * needed in its first second (idle timeouts are minutes, and it judges
 * activity by timestamps, not by what it saw itself), so it starts after
 * the burst instead of competing with it.
 */
const SUPERVISOR_DELAY_S = 1;

/** Starts the detached idle supervisor for `daemon`; returns its stamp. */
export async function spawnSupervisor(
  paths: DaemonPaths,
  daemon: ProcessStamp,
): Promise<ProcessStamp | undefined> {
  const [cmd, ...pre] = selfArgv();
  try {
    // `exec` keeps the pid and start time: the stamp taken now stays valid.
    const child = new Deno.Command("/bin/sh", {
      args: [
        "-c",
        `sleep ${SUPERVISOR_DELAY_S}; exec "$@"`,
        "buildctl-supervisor",
        cmd!,
        ...pre,
        "daemon",
        "_supervise",
        "--record",
        paths.recordPath,
        "--pid",
        String(daemon.pid),
      ],
      detached: true,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child.unref();
    return (await stampOf(child.pid)) ?? { pid: child.pid, startTime: 0, bootId: "" };
  } catch {
    return undefined;
  }
}

function exitText(s: Deno.CommandStatus, t0: number): string {
  const how = s.signal ? `killed by ${s.signal}` : `exit status ${s.code}`;
  return `buildkitd exited during start-up (${how}) after ${
    ((performance.now() - t0) / 1000).toFixed(1)
  }s`;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

/** Rotates a big log, writes a header line, and returns the offset where this start's output begins. */
function prepareLog(logPath: string, argv: string[], startedBy: string): number {
  try {
    const st = Deno.statSync(logPath);
    if (st.size > LOG_ROTATE_BYTES) Deno.renameSync(logPath, `${logPath}.1`);
  } catch { /* no log yet */ }
  const header = `--- ${new Date().toISOString()} buildctl: starting buildkitd (${startedBy}): ${
    argv.join(" ")
  }\n`;
  try {
    const f = Deno.openSync(logPath, { append: true, create: true, mode: 0o600 });
    const size = f.statSync().size;
    f.writeSync(new TextEncoder().encode(header));
    f.close();
    return size + new TextEncoder().encode(header).length;
  } catch {
    return 0;
  }
}

/** The last `n` lines of a log file from byte `from` on (default: the whole file). */
export function logTail(logPath: string, n: number, from = 0): string[] {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(logPath);
  } catch {
    return [];
  }
  const text = new TextDecoder().decode(bytes.subarray(Math.min(from, bytes.length)));
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines.slice(-n);
}

/** A failed start (already cleaned up): the cause, the log tail and the log path. */
class StartError extends BuildctlError {}

function startFailure(why: string, logPath: string, logStart: number): BuildctlError {
  const tail = logTail(logPath, LOG_TAIL_LINES, logStart);
  const body = tail.length
    ? `\nlast ${tail.length} log lines:\n${tail.map((l) => `  ${l}`).join("\n")}`
    : "\n(the log is empty)";
  return new StartError(`${why}${body}\nlog: ${logPath}`, {
    exitCode: ExitCode.Unavailable,
    hint: "fix the cause above and retry; 'buildctl daemon doctor' checks every prerequisite",
  });
}

function buildkitdNotFound(found: FoundProgram): BuildctlError {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "amd64";
  return new BuildctlError(
    `cannot start the daemon: buildkitd not found\nlooked in: ${
      found.searched.join(", ") || "(empty PATH)"
    }`,
    {
      exitCode: ExitCode.Unavailable,
      hint:
        `install BuildKit ${BUILDKIT_VERSION}: download buildkit-${BUILDKIT_VERSION}.linux-${arch}.tar.gz from ` +
        `https://github.com/moby/buildkit/releases and put bin/buildkitd (and runc) on PATH or beside buildctl`,
    },
  );
}

async function cannotStart(
  id: Identity,
  paths: DaemonPaths,
  problems: Problem[],
): Promise<BuildctlError> {
  const head = paths.mode === "rootless"
    ? `cannot start the daemon: running as user "${id.user}" (not root) and rootless mode is not available`
    : `cannot start the daemon as root`;
  const lines = problems.map((p) =>
    `  - ${p.what}\n    fix: ${p.fix.split("\n").join("\n         ")}`
  );
  // Without rootless support, the other way in is a one-time grant by an
  // administrator (the sudo launcher): show the exact command.
  // (The launcher client is loaded for this message only.)
  const grant = paths.mode === "rootless"
    ? `\nor an administrator can grant you a daemon once with:\n  ${
      (await import("./launcher_client.ts")).grantAdvice(id.user, id.euid, id.home)
    }`
    : "";
  return new BuildctlError(`${head}:\n${lines.join("\n")}${grant}`, {
    exitCode: ExitCode.Unavailable,
    hint: "run 'buildctl daemon doctor' for every check",
  });
}

/** Removes our record and supervisor status (after a wipe). */
export function forgetDaemon(paths: DaemonPaths): void {
  removeQuiet(paths.recordPath);
  removeQuiet(paths.supervisorPath);
}

const TRACE = (() => {
  try {
    return Deno.env.get("BUILDCTL_DAEMON_TRACE") === "1";
  } catch {
    return false;
  }
})();

/** With `BUILDCTL_DAEMON_TRACE=1`, prints a timestamp (ms since process start) for a start-up phase. */
export function trace(label: string): void {
  if (TRACE) console.error(`[daemon ${performance.now().toFixed(1)}ms] ${label}`);
}
