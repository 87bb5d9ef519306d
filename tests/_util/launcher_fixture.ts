/**
 * Fixtures for the launcher tests: real users (useradd, idempotent, names
 * prefixed `bkt-`), a real install in unique root-owned locations (never the
 * default ones, so a real install is left alone), commands run as a user
 * with `setpriv --reuid --regid --init-groups` and an empty environment, and
 * the damage sweep run after every attack.
 *
 * Needs root, sudo, setpriv and the tools in .tools/bin.
 *
 * @module
 */
import { join } from "node:path";
import { DENO, REPO, TOOLS_BIN, UPSTREAM_BUILDCTL } from "./paths.ts";
import { busyboxRootfs } from "./busybox.ts";
import { buildctlCommand, collect } from "./run.ts";

/** Why the launcher tests cannot run here, or undefined. */
export function launcherSkipReason(): string | undefined {
  if (Deno.uid() !== 0) return "needs root (useradd, sudo, a root buildkitd)";
  for (const p of ["/usr/bin/sudo", "/usr/bin/setpriv", "/usr/sbin/visudo", "/usr/bin/unshare"]) {
    try {
      Deno.statSync(p);
    } catch {
      return `missing ${p}`;
    }
  }
  for (const t of ["buildkitd", "runc", "buildctl-upstream"]) {
    try {
      Deno.statSync(join(TOOLS_BIN, t));
    } catch {
      return `missing ${join(TOOLS_BIN, t)} (run scripts/deps.sh)`;
    }
  }
  return undefined;
}

/** The outcome of a command. */
export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  /** Milliseconds it took. */
  ms: number;
}

/** Options of {@linkcode sh}. */
export interface ShOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
  timeoutMs?: number;
  /** Keep the inherited (test) environment instead of a minimal one. */
  inheritEnv?: boolean;
}

/** Runs a command (as the test's own user: root) and collects its output. */
export function sh(cmd: string, args: string[], opts: ShOptions = {}): Promise<Result> {
  return collect(cmd, args, {
    env: opts.env ?? {},
    clearEnv: !opts.inheritEnv,
    cwd: opts.cwd ?? "/",
    ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
}

// --- users -------------------------------------------------------------------------

/** A test user. */
export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

async function retry(fn: () => Promise<Result>, what: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const r = await fn();
    if (r.code === 0) return;
    if (i === 19) throw new Error(`${what} failed: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200)); // /etc/passwd is locked by a parallel useradd
  }
}

/** Looks up a user with getent. */
export async function lookup(name: string): Promise<TestUser | undefined> {
  const r = await sh("/usr/bin/getent", ["passwd", name]);
  if (r.code !== 0) return undefined;
  const f = r.stdout.trim().split(":");
  return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

/** Creates a group if it does not exist. */
export async function ensureGroup(name: string): Promise<void> {
  if ((await sh("/usr/bin/getent", ["group", name])).code === 0) return;
  await retry(() => sh("/usr/sbin/groupadd", [name]), `groupadd ${name}`);
}

/**
 * Creates a user (with home) if it does not exist; idempotent.
 *
 * @param primaryGroup existing group to use as the primary group
 */
export async function ensureUser(name: string, primaryGroup?: string): Promise<TestUser> {
  let u = await lookup(name);
  if (!u) {
    const args = ["-m", "-s", "/bin/sh", ...(primaryGroup ? ["-g", primaryGroup] : []), name];
    await retry(async () => {
      const r = await sh("/usr/sbin/useradd", args);
      return (await lookup(name)) ? { ...r, code: 0 } : r;
    }, `useradd ${name}`);
    u = await lookup(name);
  }
  if (!u) throw new Error(`cannot create user ${name}`);
  await Deno.chmod(u.home, 0o755);
  return u;
}

/** Adds a user to a supplementary group. */
export async function addToGroup(user: string, group: string): Promise<void> {
  await retry(() => sh("/usr/sbin/usermod", ["-aG", group, user]), `usermod ${user}`);
}

/** The usual cast: alice (granted network.host), bob, dave (alice's primary group), eve (granted, none). */
export interface Cast {
  alice: TestUser;
  bob: TestUser;
  dave: TestUser;
  eve: TestUser;
}

/** Creates (or finds) the cast. */
export async function cast(): Promise<Cast> {
  const alice = await ensureUser("bkt-alice");
  const bob = await ensureUser("bkt-bob");
  const dave = await ensureUser("bkt-dave", "bkt-alice");
  const eve = await ensureUser("bkt-eve");
  if (dave.gid !== alice.gid) throw new Error("bkt-dave must share bkt-alice's primary group");
  return { alice, bob, dave, eve };
}

// --- running things as a user --------------------------------------------------------

/** Runs `cmd args` as `user` with an empty environment plus HOME, USER, PATH and `env`. */
export function asUser(
  user: TestUser,
  cmd: string,
  args: string[],
  opts: ShOptions & { shell?: string } = {},
): Promise<Result> {
  const env = {
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    PATH: "/usr/local/bin:/usr/bin:/bin",
    NO_COLOR: "1",
    ...(opts.env ?? {}),
  };
  const pre = [
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    "--init-groups",
    "--",
    "/usr/bin/env",
    "-i",
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
  ];
  return sh("/usr/bin/setpriv", [...pre, cmd, ...args], {
    cwd: opts.cwd ?? user.home,
    ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
}

/** Runs a /bin/sh script as `user` (arguments as $1…). */
export function shAs(
  user: TestUser,
  script: string,
  args: string[] = [],
  opts: ShOptions = {},
): Promise<Result> {
  return asUser(user, "/bin/sh", ["-c", script, "sh", ...args], opts);
}

/** Our buildctl, run as `user` with -P=buildctl. */
export function buildctlAs(
  user: TestUser,
  args: string[],
  opts: ShOptions = {},
): Promise<Result> {
  const [deno, ...pre] = buildctlCommand();
  return asUser(user, deno!, [...pre, ...args], opts);
}

/** Upstream Go buildctl, run as `user`. */
export function upstreamAs(user: TestUser, args: string[], opts: ShOptions = {}): Promise<Result> {
  return asUser(user, UPSTREAM_BUILDCTL, args, opts);
}

// --- an install ------------------------------------------------------------------------

/** One test install of the launcher, in unique root-owned locations. */
export interface Install {
  tag: string;
  prefix: string;
  config: string;
  configDir: string;
  runDir: string;
  logDir: string;
  sudoers: string;
  wrapper: string;
  /** The hidden flags that put an install there. */
  flags: string[];
}

/** Allocates a fresh install location (nothing is created yet). */
export function newInstall(): Install {
  const tag = `bkt${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  const prefix = `/opt/${tag}`;
  const configDir = `/etc/${tag}`;
  const i: Install = {
    tag,
    prefix,
    config: `${configDir}/launcher.json`,
    configDir,
    runDir: `/run/${tag}`,
    logDir: `/var/log/${tag}`,
    sudoers: `/etc/sudoers.d/${tag}`,
    wrapper: `${prefix}/buildkitd-launcher`,
    flags: [],
  };
  i.flags = [
    `--launcher-prefix=${i.prefix}`,
    `--launcher-config=${i.config}`,
    `--launcher-run-dir=${i.runDir}`,
    `--launcher-log-dir=${i.logDir}`,
    `--launcher-sudoers=${i.sudoers}`,
  ];
  return i;
}

/** The admin command line: `buildctl daemon <verb> …` exactly as a user types it, from source. */
function adminCommand(verb: "start" | "revoke", args: string[]): string[] {
  return [...buildctlCommand(), "daemon", verb, ...args];
}

/**
 * Runs the real `sudo buildctl daemon start <args> <install flags>` (root
 * calls sudo, so SUDO_USER is root and the write check runs as each allowed
 * user), or, with `asSudoer`, as that user through their own sudo rights.
 */
export function grant(i: Install, args: string[], asSudoer?: TestUser): Promise<Result> {
  const cmd = adminCommand("start", [...args, ...i.flags]);
  if (asSudoer) return asUser(asSudoer, "/usr/bin/sudo", ["-n", ...cmd]);
  return sh("/usr/bin/sudo", ["-n", ...cmd], { env: { PATH: "/usr/bin:/bin", HOME: "/root" } });
}

/** Runs the real `sudo buildctl daemon revoke USER <install flags>`. */
export function revoke(i: Install, user: string): Promise<Result> {
  const cmd = adminCommand("revoke", [user, ...i.flags]);
  return sh("/usr/bin/sudo", ["-n", ...cmd], { env: { PATH: "/usr/bin:/bin", HOME: "/root" } });
}

/** Runs a launcher-client call (tests/_util/launcher_client_cli.ts) as `user`. */
export async function clientAs(
  user: TestUser,
  i: Install,
  op: string,
  env: Record<string, string> = {},
): Promise<Result & { json: { ok: boolean; result?: unknown; message?: string; hint?: string } }> {
  const r = await asUser(user, DENO, [
    "run",
    "--quiet",
    "--no-prompt",
    `--config=${join(REPO, "deno.json")}`,
    "-P=buildctl",
    join(REPO, "tests", "_util", "launcher_client_cli.ts"),
    op,
  ], { env: { BUILDCTL_LAUNCHER_CONFIG: i.config, ...env } });
  let json = { ok: false } as { ok: boolean; result?: unknown; message?: string; hint?: string };
  try {
    json = JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
  } catch { /* leave ok: false */ }
  return { ...r, json };
}

/** Runs `sudo -n <wrapper> start` as `user` (what the client's first rung does). */
export function sudoStartAs(user: TestUser, i: Install, opts: ShOptions = {}): Promise<Result> {
  return asUser(user, "/usr/bin/sudo", ["-n", i.wrapper, "start"], opts);
}

/** The gate socket of a user. */
export function gateOf(i: Install, user: TestUser): string {
  return `${i.runDir}/users/${user.uid}/buildkitd.sock`;
}

/** Processes whose command line mentions the install (supervisors and their buildkitd). */
export async function installProcesses(i: Install): Promise<{ pid: number; args: string }[]> {
  // Deno guards /proc behind --allow-all; ps reads it for us.
  const r = await sh("/usr/bin/ps", ["-eo", "pid=,args=", "-ww"], {
    env: { PATH: "/usr/bin:/bin" },
  });
  const out: { pid: number; args: string }[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const args = m[2]!.trim();
    if (args.includes(`${i.prefix}/`) || args.includes(`${i.runDir}/`)) {
      out.push({ pid: Number(m[1]), args });
    }
  }
  return out;
}

/** buildkitd processes of the install. */
export async function daemonsOf(i: Install): Promise<{ pid: number; args: string }[]> {
  return (await installProcesses(i)).filter((p) => p.args.startsWith(`${i.prefix}/bin/buildkitd`));
}

/** Supervisor processes of the install. */
export async function supervisorsOf(i: Install): Promise<{ pid: number; args: string }[]> {
  return (await installProcesses(i)).filter((p) => / supervise [0-9a-f]{16}$/.test(p.args));
}

/** Waits until `fn` is true (polling), or throws after `ms`. */
export async function waitFor(
  fn: () => Promise<boolean> | boolean,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Kills every supervisor of the install (their daemons die with them: PDEATHSIG). */
export async function killAll(i: Install): Promise<void> {
  for (const p of await supervisorsOf(i)) {
    try {
      Deno.kill(p.pid, "SIGKILL");
    } catch { /* gone */ }
  }
  await waitFor(
    async () => (await installProcesses(i)).length === 0,
    20_000,
    "install processes to exit",
  )
    .catch(async () => {
      for (const p of await installProcesses(i)) {
        try {
          Deno.kill(p.pid, "SIGKILL");
        } catch { /* gone */ }
      }
    });
}

/** Removes everything an install created (processes, files, state dirs under `roots`). */
export async function removeInstall(i: Install, roots: string[] = []): Promise<void> {
  await killAll(i);
  for (const p of [i.sudoers, i.configDir, i.prefix, i.runDir, i.logDir, ...roots]) {
    await Deno.remove(p, { recursive: true }).catch(() => {});
  }
}

/** The audit log lines of an install. */
export function auditLines(i: Install): Record<string, unknown>[] {
  try {
    return Deno.readTextFileSync(`${i.logDir}/audit.log`).trim().split("\n").filter((l) => l)
      .map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}

// --- damage sweep -----------------------------------------------------------------------

/** A marker file; files newer than it are what a step created. */
export async function marker(): Promise<string> {
  const m = await Deno.makeTempFile({ prefix: "lnch-marker-" });
  await new Promise((r) => setTimeout(r, 20)); // mtime granularity
  return m;
}

const SYSTEM_FILES =
  /^\/etc\/(passwd|shadow|group|gshadow|subuid|subgid)[-+]?$|^\/etc\/\.pwd\.lock$/;

/**
 * Root-owned files created or changed since `markerPath` outside the places
 * the launcher may write (its install, run, log and config dirs, the
 * sudoers drop-in, and `.buildkit-root` state dirs).
 */
export async function sweep(markerPath: string, installs: Install[]): Promise<string[]> {
  const r = await sh("/usr/bin/find", [
    "/etc",
    "/home",
    "/var/tmp",
    "/tmp",
    "/root",
    "-xdev",
    "-newer",
    markerPath,
    "-uid",
    "0",
  ], { env: { PATH: "/usr/bin:/bin" } });
  const allowed = installs.flatMap((i) => [i.prefix, i.configDir, i.runDir, i.logDir, i.sudoers]);
  return r.stdout.split("\n").filter((p) => p !== "").filter((p) => {
    if (allowed.some((a) => p === a || p.startsWith(`${a}/`))) return false;
    // Other test installs running in parallel (same naming scheme) are not this step's damage.
    if (/^\/(etc|opt|run|var\/log)\/bkt[0-9a-f]{10}(\/|$)/.test(p)) return false;
    if (/^\/etc\/sudoers\.d\/\.?bkt[0-9a-f]{10}/.test(p)) return false;
    if (p.includes("/.buildkit-root")) return false;
    if (/^\/etc\/sudoers\.d\/\.bkt[0-9a-f]+\.tmp-/.test(p)) return false;
    if (SYSTEM_FILES.test(p)) return false;
    if (
      p === "/etc" || p === "/etc/sudoers.d" || p === "/home" || p === "/tmp" || p === "/var/tmp"
    ) {
      return false; // a directory whose entry list changed
    }
    if (p.startsWith("/root/")) return p.includes("lnch") || p.includes("bk-");
    if (p.startsWith("/tmp/")) {
      return p.startsWith("/tmp/lnch-") &&
        !/^\/tmp\/lnch-(marker|ctx|scratch|bench-ctx)-/.test(p);
    }
    return true;
  });
}

// --- build fixtures -----------------------------------------------------------------------

/** A Dockerfile context readable by every test user, and the busybox base, as build args. */
export async function buildContext(dockerfile: string): Promise<{ dir: string; args: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "lnch-ctx-" });
  await Deno.writeTextFile(join(dir, "Dockerfile"), dockerfile);
  await Deno.chmod(dir, 0o755);
  await Deno.chmod(join(dir, "Dockerfile"), 0o644);
  const bb = await busyboxRootfs();
  await sh("/bin/chmod", ["-R", "a+rX", bb]);
  return {
    dir,
    args: [
      "build",
      "--progress=plain",
      "--frontend",
      "dockerfile.v0",
      "--local",
      `context=${dir}`,
      "--local",
      `dockerfile=${dir}`,
      "--opt",
      "context:busybox=local:bb",
      "--local",
      `bb=${bb}`,
    ],
  };
}
