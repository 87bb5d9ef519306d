/**
 * The buildctl side of the launcher, for unprivileged users: the first rung
 * of the auto-start ladder (a user with a grant gets the launcher's gate
 * address, starting the daemon with `sudo -n <launcher> start` when needed),
 * the advice shown to a user without a grant, and `daemon
 * state|stop|reset|logs` through the launcher's authenticated control socket
 * (no sudo needed).
 *
 * Where the grant config is: `/etc/buildctl-deno/launcher.json`, or
 * `BUILDCTL_LAUNCHER_CONFIG`. That variable only tells this unprivileged
 * client where to look; the file must still be root-owned and not writable
 * by anyone else, and everything privileged goes through sudo's own rules,
 * so it cannot widen anything.
 *
 * @module
 */
import { after, delay } from "../timer.ts";
import { answers } from "../client/probe.ts";
import { BuildctlError, ExitCode } from "../errors.ts";
import {
  findGrant,
  grantCommand,
  type LauncherConfig,
  MAX_CONFIG_BYTES,
  parseConfig,
} from "../launcher/config.ts";
import { DEFAULT_CONFIG } from "../launcher/layout.ts";
import {
  type ControlResponse,
  type DaemonState,
  decodeResponse,
  MAX_RESPONSE_BYTES,
} from "../launcher/protocol.ts";

/** Environment variable naming another config path (client-side lookup only). */
export const CONFIG_ENV = "BUILDCTL_LAUNCHER_CONFIG";

/** Options shared by the client functions. */
export interface LauncherClientOptions {
  /** Config path; default from {@linkcode launcherConfigPath}. */
  configPath?: string;
  /** Environment lookup (default `Deno.env.get`). */
  env?: (name: string) => string | undefined;
}

/** The config path this client reads. */
export function launcherConfigPath(env: (name: string) => string | undefined = envGet): string {
  const v = env(CONFIG_ENV);
  return v && v.startsWith("/") ? v : DEFAULT_CONFIG;
}

function currentUid(): number {
  const uid = Deno.uid();
  if (uid === null) throw new BuildctlError("cannot determine the current uid");
  return uid;
}

function envGet(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Reads the launcher config if it exists and is trustworthy (root-owned,
 * not group/world-writable, in root-owned directories). Returns undefined
 * when there is no (usable) config: the caller falls through to the next rung.
 */
export function readLauncherConfig(opts: LauncherClientOptions = {}): LauncherConfig | undefined {
  const path = opts.configPath ?? launcherConfigPath(opts.env);
  try {
    let cur = "";
    for (const c of path.split("/").filter((x) => x !== "")) {
      cur += `/${c}`;
      const st = Deno.lstatSync(cur);
      if (st.isSymlink || st.uid !== 0 || ((st.mode ?? 0) & 0o022) !== 0) return undefined;
    }
    const st = Deno.lstatSync(path);
    if (!st.isFile || st.size > MAX_CONFIG_BYTES) return undefined;
    return parseConfig(Deno.readFileSync(path));
  } catch {
    return undefined;
  }
}

/**
 * The gate address (`unix://…`) for `uid` if the launcher config grants it,
 * else undefined. Does not check whether the daemon runs.
 */
export function launcherAddress(uid: number, opts: LauncherClientOptions = {}): string | undefined {
  const config = readLauncherConfig(opts);
  if (!config) return undefined;
  const grant = findGrant(config, uid);
  if (!grant) return undefined;
  return `unix://${config.runDir}/users/${uid}/buildkitd.sock`;
}

function controlPath(config: LauncherConfig, uid: number): string {
  return `${config.runDir}/users/${uid}/control.sock`;
}

/** Options of {@linkcode startViaLauncher}. */
export interface StartViaLauncherOptions extends LauncherClientOptions {
  /** The caller's uid (default `Deno.uid()`). */
  uid?: number;
  /** How long to wait for the launcher (default 120 s). */
  timeoutMs?: number;
  /** Cancels the wait. */
  signal?: AbortSignal;
  /** Called once before sudo runs (e.g. to print "starting buildkitd…"). */
  onStarting?: () => void;
}

/**
 * The first auto-start rung: returns the gate address for a granted user,
 * starting the daemon through `sudo -n <launcher> start` if the gate does
 * not answer. Returns undefined when the user has no grant.
 *
 * @throws {BuildctlError} exit 69 when the launcher cannot start the daemon,
 * 77 when sudo or the launcher refuses
 */
export async function startViaLauncher(
  opts: StartViaLauncherOptions = {},
): Promise<string | undefined> {
  const uid = opts.uid ?? currentUid();
  const config = readLauncherConfig(opts);
  if (!config) return undefined;
  const grant = findGrant(config, uid);
  if (!grant) return undefined;
  const gate = `${config.runDir}/users/${uid}/buildkitd.sock`;
  if (await answers(gate)) return `unix://${gate}`;
  opts.onStarting?.();
  const child = new Deno.Command("/usr/bin/sudo", {
    args: ["-n", config.launcher, "start"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.signal ? { signal: opts.signal } : {}),
  }).spawn();
  const cancelTimer = after(opts.timeoutMs ?? 120_000, () => {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
  });
  const out = await child.output();
  cancelTimer();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout).trim();
  const stderr = dec.decode(out.stderr).trim();
  let res: { ok?: boolean; address?: string; code?: string; message?: string } = {};
  try {
    res = JSON.parse(stdout.split("\n").pop() ?? "{}");
  } catch { /* not the launcher talking */ }
  if (out.code === 0 && res.ok && res.address) {
    if (!(await answers(gate))) {
      throw new BuildctlError(`the launcher reported ${res.address} but nothing answers there`, {
        exitCode: ExitCode.Unavailable,
      });
    }
    return res.address;
  }
  const fix = grantCommand(grant.user, grant.root, grant.entitlements, grant.idleTimeoutSeconds);
  if (
    /password is required|not allowed to execute|may not run sudo|is not in the sudoers/.test(
      stderr,
    )
  ) {
    throw new BuildctlError(
      `sudo refused to run the buildkitd launcher without a password (${stderr.split("\n")[0]})`,
      {
        exitCode: ExitCode.NoPermission,
        hint: `the sudoers rule is missing; an administrator can restore it with: ${fix}`,
      },
    );
  }
  const exit = out.code === 77 ? ExitCode.NoPermission : ExitCode.Unavailable;
  throw new BuildctlError(
    `the buildkitd launcher could not start the daemon: ${
      res.message ?? (stderr || `exit ${out.code}`)
    }`,
    {
      exitCode: exit,
      hint: exit === ExitCode.NoPermission
        ? `an administrator can grant access with: ${fix}`
        : "see `buildctl daemon logs`",
    },
  );
}

/** The root dir suggested to a user without a grant. */
export function suggestedRootDir(home: string): string {
  return `${home.replace(/\/+$/, "")}/.local/share/buildctl-deno`;
}

/**
 * The exact admin command that grants `user` a daemon, for the error shown
 * when neither a grant nor rootless mode is available.
 */
export function grantAdvice(user: string, _uid: number, home: string): string {
  return grantCommand(user, suggestedRootDir(home), []);
}

// --- control endpoint ----------------------------------------------------------------

async function controlRequest(
  path: string,
  body: object,
  timeoutMs: number,
): Promise<ControlResponse> {
  const conn = await Deno.connect({ transport: "unix", path });
  const cancelTimer = after(timeoutMs, () => {
    try {
      conn.close();
    } catch { /* closed */ }
  });
  try {
    await conn.write(new TextEncoder().encode(JSON.stringify(body) + "\n"));
    const chunks: Uint8Array[] = [];
    let size = 0;
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      size += n;
      if (size > MAX_RESPONSE_BYTES) throw new Error("launcher response too large");
      if (buf.subarray(0, n).includes(10)) break;
    }
    const all = new Uint8Array(size);
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    const text = new TextDecoder().decode(all);
    const nl = text.indexOf("\n");
    if (nl < 0) throw new Error("the launcher closed the connection (not allowed?)");
    return decodeResponse(text.slice(0, nl));
  } finally {
    cancelTimer();
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

function needGrant(
  opts: LauncherClientOptions & { uid?: number },
): { config: LauncherConfig; uid: number } {
  const uid = opts.uid ?? currentUid();
  const config = readLauncherConfig(opts);
  if (!config || !findGrant(config, uid)) {
    throw new BuildctlError(`uid ${uid} has no buildkitd launcher grant`, {
      exitCode: ExitCode.NoPermission,
    });
  }
  return { config, uid };
}

function unwrap(res: ControlResponse): Extract<ControlResponse, { ok: true }> {
  if (!res.ok) {
    throw new BuildctlError(`the buildkitd launcher refused: ${res.message}`, {
      exitCode: res.code === "PEER_NOT_ALLOWED" ? ExitCode.NoPermission : ExitCode.Failure,
    });
  }
  return res;
}

/** The daemon's state, or `{state: "stopped"}` when its supervisor is not running. */
export async function launcherState(
  opts: LauncherClientOptions & { uid?: number } = {},
): Promise<DaemonState | { state: "stopped"; address: string }> {
  const { config, uid } = needGrant(opts);
  const path = controlPath(config, uid);
  const address = `unix://${config.runDir}/users/${uid}/buildkitd.sock`;
  if (!(await answers(path))) return { state: "stopped", address };
  const res = unwrap(await controlRequest(path, { op: "state" }, 10_000));
  return res.state ?? { state: "stopped", address };
}

/** Stops the daemon (all users sharing it); true if it was running. */
export async function launcherStop(
  opts: LauncherClientOptions & { uid?: number } = {},
): Promise<boolean> {
  const { config, uid } = needGrant(opts);
  const path = controlPath(config, uid);
  if (!(await answers(path))) return false;
  unwrap(await controlRequest(path, { op: "stop" }, 30_000));
  // Wait until the supervisor is gone, so a following start does not race it.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && (await answers(path))) {
    await delay(50);
  }
  return true;
}

/**
 * Wipes the daemon's root-owned state (as root, by the launcher) and stops
 * it. When it is not running, it is started first (`sudo -n <launcher>
 * start`), since only the running supervisor holds the pinned state dir.
 */
export async function launcherReset(opts: StartViaLauncherOptions = {}): Promise<void> {
  const { config, uid } = needGrant(opts);
  const path = controlPath(config, uid);
  if (!(await answers(path))) await startViaLauncher({ ...opts, uid });
  unwrap(await controlRequest(path, { op: "reset" }, 120_000));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && (await answers(path))) {
    await delay(50);
  }
}

/** The tail of the daemon's log, or undefined when it is not running. */
export async function launcherLogs(
  opts: LauncherClientOptions & { uid?: number; bytes?: number } = {},
): Promise<string | undefined> {
  const { config, uid } = needGrant(opts);
  const path = controlPath(config, uid);
  if (!(await answers(path))) return undefined;
  const res = unwrap(
    await controlRequest(
      path,
      opts.bytes ? { op: "logs", bytes: opts.bytes } : { op: "logs" },
      30_000,
    ),
  );
  return res.log ?? "";
}
