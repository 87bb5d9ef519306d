/**
 * buildkitd-launcher: the root-owned (never setuid) program that allowed
 * users run through sudo as exactly `<launcher> start`.
 *
 * Verbs:
 * - `start` (through sudo, by a granted user): make sure the daemon of the
 *   user's root dir runs, with a gate for the user; prints one JSON line
 *   `{"ok":true,"address":"unix://…","state":"started"|"running"}`.
 * - `start --uid N` (root only): the same on behalf of granted user N.
 * - `reload` (root only): tell every running supervisor to re-read the config.
 * - `supervise ID` (root only; spawned by `start`): the detached supervisor.
 *
 * Imports only `src/launcher/*`, `src/sys/*` and `node:` built-ins. Runs with
 * the "launcher" permission set (no env, no net). Trusts nothing from its
 * environment: identity comes from the kernel and sudo (see identity.ts),
 * paths from the root-owned install (runtime.ts), policy from the root-owned
 * config.
 *
 * @module
 */
import { LOCK, PR, prctl, RLIMIT, setrlimit, tryFlock, umask } from "../sys/mod.ts";
import { findGrant, rootId } from "./config.ts";
import { currentPrivileges, privilegeProblems } from "./caps.ts";
import { identifyCaller, IdentityError, parseUid } from "./identity.ts";
import {
  daemonPaths,
  launcherCommand,
  launcherEnv,
  type Layout,
  layoutPaths,
  userSockets,
} from "./layout.ts";
import { decodeResponse } from "./protocol.ts";
import { LauncherError, LauncherExit, loadConfig, resolveLayout } from "./runtime.ts";
import { readProcText } from "./secure_fs.ts";
import { appendLine } from "./logfile.ts";
import {
  auditEvent,
  openLockFile,
  prepareDirs,
  type ReadyReport,
  runSupervisor,
} from "./supervisor.ts";
import { closeFd, connectUnix, socketFromFd } from "../sys/mod.ts";

/** How long `start` waits for the supervisor to report. */
const START_TIMEOUT_MS = 120_000;
/** How long `start` waits for another `start` of the same root dir. */
const LOCK_TIMEOUT_MS = 150_000;

const MAX_ARGS = 4;
const MAX_ARG_BYTES = 256;

/** A parsed command line. */
export type LauncherArgs =
  | { verb: "start"; uid?: number }
  | { verb: "reload" }
  | { verb: "supervise"; id: string };

/**
 * Parses argv strictly: a fixed set of shapes, bounded count and length.
 *
 * @throws {LauncherError} `USAGE` (exit 64)
 */
export function parseLauncherArgs(argv: readonly string[]): LauncherArgs {
  const usage = (why: string) =>
    new LauncherError(
      "USAGE",
      `${why}; usage: buildkitd-launcher start | start --uid N | reload | supervise ID`,
      LauncherExit.Usage,
    );
  if (argv.length === 0) throw usage("missing verb");
  if (argv.length > MAX_ARGS) throw usage("too many arguments");
  for (const a of argv) {
    if (new TextEncoder().encode(a).length > MAX_ARG_BYTES) throw usage("argument too long");
  }
  const [verb, ...rest] = argv;
  if (verb === "start" && rest.length === 0) return { verb: "start" };
  if (verb === "start" && rest.length === 2 && rest[0] === "--uid") {
    const uid = parseUid(rest[1]!);
    if (uid === undefined || uid === 0) throw usage(`invalid uid ${JSON.stringify(rest[1])}`);
    return { verb: "start", uid };
  }
  if (verb === "reload" && rest.length === 0) return { verb: "reload" };
  if (verb === "supervise" && rest.length === 1 && /^[0-9a-f]{16}$/.test(rest[0]!)) {
    return { verb: "supervise", id: rest[0]! };
  }
  throw usage(`unknown command ${JSON.stringify(argv.join(" "))}`);
}

/** Process-wide hardening that does not depend on who the caller is. */
function harden(): void {
  umask(0o077);
  // No core dumps of a root process; a caller's tiny limits must not truncate our writes.
  setrlimit(RLIMIT.CORE, { soft: 0n, hard: 0n });
  prctl(PR.SET_DUMPABLE, 0);
}

function selfCheckPermissions(): void {
  for (const name of ["net", "env"] as const) {
    if (Deno.permissions.querySync({ name }).state === "granted") {
      throw new LauncherError(
        "BAD_PERMISSIONS",
        `the launcher must run without ${name} permission (-P=launcher)`,
        LauncherExit.Config,
      );
    }
  }
}

/** Runs the launcher; returns the exit code. Writes results to stdout, errors to stderr. */
export async function launcherMain(argv: readonly string[]): Promise<number> {
  const out = (obj: unknown) =>
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(obj) + "\n"));
  let layout: Layout | undefined;
  let callerUid = -1;
  try {
    selfCheckPermissions();
    const args = parseLauncherArgs(argv);
    let caller;
    try {
      caller = identifyCaller();
    } catch (err) {
      if (err instanceof IdentityError) {
        throw new LauncherError(
          "NOT_AUTHORISED",
          `not authorised: ${err.message}`,
          LauncherExit.NoPermission,
        );
      }
      throw err;
    }
    callerUid = caller.uid;
    harden();
    const problems = privilegeProblems(currentPrivileges(readProcText));
    if (problems.length > 0) {
      throw new LauncherError(
        "NOT_PRIVILEGED",
        `cannot gain the privileges buildkitd needs: ${problems.join("; ")}`,
        LauncherExit.NoPermission,
      );
    }
    layout = resolveLayout(import.meta.url);
    if (caller.uid !== 0 && args.verb !== "start") {
      throw new LauncherError(
        "NOT_AUTHORISED",
        "not authorised: only root may do that",
        LauncherExit.NoPermission,
      );
    }
    if (args.verb === "start" && args.uid !== undefined && caller.uid !== 0) {
      throw new LauncherError(
        "NOT_AUTHORISED",
        "not authorised: only root may name a uid",
        LauncherExit.NoPermission,
      );
    }
    switch (args.verb) {
      case "supervise":
        return await supervise(layout, args.id);
      case "reload":
        out(await reloadAll(layout));
        return LauncherExit.Ok;
      case "start": {
        const uid = args.uid ?? caller.uid;
        if (uid === 0) {
          throw new LauncherError(
            "NOT_AUTHORISED",
            "not authorised: root gets no daemon implicitly; use start --uid N for a granted user",
            LauncherExit.NoPermission,
          );
        }
        out(await start(layout, uid, caller.uid));
        return LauncherExit.Ok;
      }
    }
  } catch (err) {
    const e = err instanceof LauncherError ? err : new LauncherError(
      "INTERNAL",
      err instanceof Error ? err.message : String(err),
      LauncherExit.Software,
    );
    if (layout && e.code !== "USAGE") {
      auditEvent(layout, {
        event: "launcher",
        uid: callerUid,
        decision: "deny",
        code: e.code,
        reason: e.message,
      });
    }
    try {
      Deno.stderr.writeSync(new TextEncoder().encode(`buildkitd-launcher: ${e.message}\n`));
      out({ ok: false, code: e.code, message: e.message });
    } catch { /* stdio closed */ }
    return e.exitCode;
  }
}

async function start(
  layout: Layout,
  uid: number,
  callerUid: number,
): Promise<{ ok: true; address: string; control: string; state: "started" | "running" }> {
  const config = loadConfig(layout);
  const grant = findGrant(config, uid);
  if (!grant) {
    throw new LauncherError(
      "NOT_AUTHORISED",
      `not authorised: uid ${uid} has no grant in ${layout.config}`,
      LauncherExit.NoPermission,
    );
  }
  const id = await rootId(grant.root);
  prepareDirs(layout, id);
  const paths = daemonPaths(layout, id);
  const sockets = userSockets(layout, uid);
  const result = (state: "started" | "running") => ({
    ok: true as const,
    address: `unix://${sockets.gate}`,
    control: sockets.control,
    state,
  });
  const startLock = openLockFile(paths.startLock);
  try {
    const deadline = Date.now() + LOCK_TIMEOUT_MS;
    while (!tryFlock(startLock, LOCK.EX)) {
      if (Date.now() > deadline) {
        throw new LauncherError(
          "BUSY",
          "another start of this daemon did not finish",
          LauncherExit.Unavailable,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // A supervisor holds the run lock for its whole life. If one runs (perhaps still starting,
    // spawned by a start that was killed), ask it to reload; if none runs, spawn one.
    const startDeadline = Date.now() + START_TIMEOUT_MS;
    const excluded = (why?: string) =>
      new LauncherError(
        "USER_EXCLUDED",
        why ?? `uid ${uid} cannot use ${grant.root} (see the daemon log)`,
        LauncherExit.Unavailable,
      );
    for (;;) {
      const runLock = openLockFile(paths.runLock);
      const free = tryFlock(runLock, LOCK.EX);
      closeFd(runLock); // closing releases it: the supervisor takes it itself
      let state: "started" | "running";
      if (free) {
        const report = await spawnSupervisor(layout, id);
        if (!report.ok && report.code === "ALREADY_RUNNING") continue; // lost a race: use that one
        if (!report.ok) {
          throw new LauncherError(
            report.code,
            `cannot start buildkitd: ${report.message}`,
            LauncherExit.Unavailable,
          );
        }
        if (!report.uids.includes(uid)) throw excluded();
        state = "started";
      } else {
        let res;
        try {
          res = await adminRequest(paths.admin, "reload");
        } catch (err) {
          if (Date.now() > startDeadline) throw err;
          await new Promise((r) => setTimeout(r, 100)); // still starting: not listening yet
          continue;
        }
        if (!res.ok) throw excluded(`the running daemon refused to reload: ${res.message}`);
        if (!(res.uids ?? []).includes(uid)) throw excluded();
        state = "running";
      }
      auditEvent(layout, {
        event: "start",
        uid,
        caller: callerUid,
        root: grant.root,
        decision: "allow",
        state,
      });
      return result(state);
    }
  } finally {
    closeFd(startLock);
  }
}

/** Spawns the detached supervisor and waits for its one-line report. */
async function spawnSupervisor(layout: Layout, id: string): Promise<ReadyReport> {
  const [program, args] = launcherCommand(layout, ["supervise", id]);
  const child = new Deno.Command(program, {
    args,
    clearEnv: true,
    env: launcherEnv(layout),
    cwd: "/",
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    detached: true,
  }).spawn();
  const reader = child.stdout.getReader();
  const timer = setTimeout(() => reader.cancel().catch(() => {}), START_TIMEOUT_MS);
  let text = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
      const nl = text.indexOf("\n");
      if (nl >= 0) {
        const line = text.slice(0, nl);
        const parsed = JSON.parse(line) as ReadyReport;
        return parsed;
      }
      if (text.length > 65536) break;
    }
  } catch {
    /* fall through */
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
    child.stdout.cancel().catch(() => {});
    child.unref();
  }
  return { ok: false, code: "START_FAILED", message: "the supervisor exited without reporting" };
}

async function supervise(layout: Layout, id: string): Promise<number> {
  // A detached root process with no stderr: whatever escapes goes to its log, never silently kills it.
  const log = daemonPaths(layout, id).log;
  const note = (what: string, err: unknown) =>
    appendLine(
      log,
      `${new Date().toISOString()} launcher: ${what}: ${
        err instanceof Error ? err.stack ?? err.message : String(err)
      }`,
    );
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    note("unhandled rejection", e.reason);
  });
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    note("uncaught error", e.error);
  });
  let reported = false;
  const report = (r: ReadyReport) => {
    if (reported) return;
    reported = true;
    try {
      Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(r) + "\n"));
    } catch { /* the start process is gone */ }
    try {
      Deno.stdout.close();
    } catch { /* already closed */ }
  };
  return await runSupervisor(layout, id, report);
}

async function reloadAll(layout: Layout): Promise<{ ok: true; reloaded: number }> {
  let n = 0;
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(layoutPaths(layout).daemonsDir));
  } catch { /* nothing runs */ }
  for (const e of entries) {
    if (!/^[0-9a-f]{16}$/.test(e.name)) continue;
    const paths = daemonPaths(layout, e.name);
    const runLock = openLockFile(paths.runLock);
    const free = tryFlock(runLock, LOCK.EX);
    closeFd(runLock);
    if (free) continue;
    const res = await adminRequest(paths.admin, "reload").catch(() => undefined);
    if (res?.ok) n++;
  }
  return { ok: true, reloaded: n };
}

async function adminRequest(path: string, op: string) {
  const fd = await connectUnix(path, { timeoutMs: 5000 });
  const sock = socketFromFd(fd);
  try {
    return await new Promise<ReturnType<typeof decodeResponse>>((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error("admin request timed out")), 120_000);
      sock.on("data", (d: Uint8Array) => {
        buf += new TextDecoder().decode(d);
        const nl = buf.indexOf("\n");
        if (nl >= 0) {
          clearTimeout(timer);
          try {
            resolve(decodeResponse(buf.slice(0, nl)));
          } catch (err) {
            reject(err);
          }
        }
      });
      sock.on("error", (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
      sock.on("end", () => {
        clearTimeout(timer);
        if (!buf.includes("\n")) reject(new Error("admin socket closed"));
      });
      sock.write(JSON.stringify({ op }) + "\n");
    });
  } finally {
    sock.destroy();
  }
}

if (import.meta.main) {
  const code = await launcherMain(Deno.args);
  Deno.exit(code);
}
