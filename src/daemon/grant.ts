/**
 * The admin side of unprivileged access: `sudo buildctl daemon start
 * --root=DIR --allow-user=USER[,USER…] --entitlements=E[,E…] [--timeout D]`
 * and `sudo buildctl daemon revoke USER`.
 *
 * `grantDaemonAccess`, run as root (normally through sudo):
 * 1. checks that it really is root with the capabilities buildkitd needs, in
 *    the initial user namespace, and names whatever is missing;
 * 2. checks DIR: no symlink in it or its parents, no group/world-writable
 *    parent, no unsafe ownership transition, an allow-listed file system;
 *    and that DIR is writable by the sudo caller (SUDO_UID) and by every
 *    allowed user, each checked by running `test -w` **as that user**
 *    (`setpriv --reuid --regid --init-groups`), so the daemon never takes
 *    space or files a user has no access to. (The launcher repeats the
 *    path checks race-free on fds at every start.)
 * 3. installs the launcher into a root-owned prefix where every path
 *    component is root-owned and not group/world-writable (files written to
 *    a temporary name with O_EXCL, then renamed);
 * 4. writes the root-owned 0644 config (strict schema, one entry per user);
 * 5. writes the sudoers drop-in (one `#uid ALL=(root) NOPASSWD: <launcher>
 *    start` line per user), validated with `visudo -cf` before it is renamed
 *    into place, then the whole sudoers re-checked with `visudo -c` (the old
 *    file is restored if that fails);
 * 6. starts the launcher for the grant.
 *
 * Install locations come only from the flags of this root-run command
 * (hidden `--launcher-*` flags, used by tests) or the defaults; never from
 * the environment (sudo resets it anyway).
 *
 * @module
 */
import { dirname, join } from "../path.ts";
import { BuildctlError, ExitCode } from "../errors.ts";
import {
  ConfigError,
  DEFAULT_IDLE_TIMEOUT_SECONDS,
  formatDuration,
  type Grant,
  installPathProblem,
  type LauncherConfig,
  parseConfig,
  parseDuration,
  parseEntitlementList,
  removeGrant,
  rootDirProblem,
  serializeConfig,
  upsertGrant,
} from "../launcher/config.ts";
import { currentPrivileges, privilegeProblems } from "../launcher/caps.ts";
import {
  DEFAULT_CONFIG,
  DEFAULT_LOG_DIR,
  DEFAULT_PREFIX,
  DEFAULT_RUN_DIR,
  DEFAULT_SUDOERS,
  type Layout,
  layoutPaths,
  serializeLayout,
  SYSTEM_PATH,
  wrapperScript,
} from "../launcher/layout.ts";

/** Where to install; each field overrides a default (root-run CLI flags only). */
export interface InstallOverrides {
  /** Install prefix (default /usr/local/libexec/buildctl-deno). */
  prefix?: string;
  /** Config path (default /etc/buildctl-deno/launcher.json). */
  config?: string;
  /** Run directory (default /run/buildctl-deno). */
  runDir?: string;
  /** Log directory (default /var/log/buildctl-deno). */
  logDir?: string;
  /** Sudoers drop-in (default /etc/sudoers.d/buildctl-deno). */
  sudoers?: string;
}

/** A grant request. */
export interface GrantRequest {
  /** `--root`. */
  root: string;
  /** `--allow-user` values (each may itself be comma-separated). */
  users: string[];
  /** `--entitlements` (comma-separated), default none. */
  entitlements?: string;
  /** `--timeout` (a duration), default 10m. */
  timeout?: string;
  /** Install overrides. */
  overrides?: InstallOverrides;
  /** Environment lookup (for SUDO_UID/SUDO_USER only). */
  env: (name: string) => string | undefined;
  /** Progress lines for the admin. */
  out: (line: string) => void;
}

/** What a grant did. */
export interface GrantResult {
  /** The installed launcher (what sudoers names). */
  launcher: string;
  /** The grants written. */
  grants: Grant[];
  /** The address of the first user's gate. */
  address: string | undefined;
}

/** A resolved local user. */
export interface LocalUser {
  /** uid. */
  uid: number;
  /** Login name. */
  name: string;
  /** Primary gid. */
  gid: number;
  /** Home directory. */
  home: string;
}

const dec = new TextDecoder();

function fail(message: string, hint?: string, exitCode: ExitCode = ExitCode.Failure): never {
  throw new BuildctlError(message, { exitCode, ...(hint ? { hint } : {}) });
}

/** Resolves a user name or numeric uid through the system's user database. */
export function resolveUser(spec: string): LocalUser {
  const out = new Deno.Command("/usr/bin/getent", {
    args: ["passwd", spec],
    clearEnv: true,
    env: { PATH: SYSTEM_PATH, LANG: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const f = dec.decode(out.stdout).split("\n")[0]?.split(":") ?? [];
  if (out.code !== 0 || f.length < 7) fail(`user ${JSON.stringify(spec)} does not exist`);
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid)) {
    fail(`user ${JSON.stringify(spec)} has an invalid passwd entry`);
  }
  return { uid, name: f[0]!, gid, home: f[5]! };
}

/** Builds the layout from overrides and defaults, validating every path. */
export function layoutFrom(o: InstallOverrides = {}, mode: Layout["mode"] = "source"): Layout {
  const layout: Layout = {
    version: 1,
    prefix: o.prefix ?? DEFAULT_PREFIX,
    config: o.config ?? DEFAULT_CONFIG,
    runDir: o.runDir ?? DEFAULT_RUN_DIR,
    logDir: o.logDir ?? DEFAULT_LOG_DIR,
    sudoers: o.sudoers ?? DEFAULT_SUDOERS,
    mode,
  };
  for (const k of ["prefix", "config", "runDir", "logDir", "sudoers"] as const) {
    const problem = installPathProblem(layout[k]);
    if (problem) fail(`invalid ${k} ${JSON.stringify(layout[k])}: ${problem}`);
  }
  const base = layout.sudoers.slice(layout.sudoers.lastIndexOf("/") + 1);
  if (base.includes(".") || base.endsWith("~")) {
    fail(
      `sudoers file name ${JSON.stringify(base)} contains "." or ends in "~": sudo would ignore it`,
    );
  }
  return layout;
}

function checkPrivileges(): void {
  if (Deno.uid() !== 0) {
    fail(
      "granting daemon access needs root",
      "run it as root, e.g. sudo buildctl daemon start --root=DIR --allow-user=USER",
      ExitCode.NoPermission,
    );
  }
  // Deno refuses /proc paths without --allow-all: a child running as us reads them (same creds).
  const problems = privilegeProblems(currentPrivileges((path) => {
    const out = new Deno.Command("/usr/bin/cat", {
      args: [path],
      clearEnv: true,
      env: { PATH: SYSTEM_PATH },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return dec.decode(out.stdout);
  }));
  if (problems.length > 0) {
    fail(
      `running as uid 0 but without the privileges buildkitd needs: ${problems.join("; ")}`,
      "run it as real root on the host (not in a container or with a bounded capability set)",
      ExitCode.NoPermission,
    );
  }
}

/**
 * Runs a system program as `user` (setpriv, cleared environment, cwd /).
 * Used for checks that must be decided by the kernel as that user.
 */
function runAsUser(user: LocalUser, argv: string[]): Deno.CommandOutput {
  return new Deno.Command("/usr/bin/setpriv", {
    args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", ...argv],
    clearEnv: true,
    env: { PATH: SYSTEM_PATH, LANG: "C" },
    cwd: "/",
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).outputSync();
}

/** Runs `test -w DIR -a -x DIR` as the user; returns whether it passed. */
function writableAs(user: LocalUser, dir: string): boolean {
  return runAsUser(user, ["/usr/bin/test", "-w", dir, "-a", "-x", dir]).code === 0;
}

/**
 * The path rules of security.md §3 on `root`, with lstat (setup-time; the
 * launcher repeats them on fds at each start). `owners` are the uids allowed
 * to own components (the allowed users).
 *
 * @returns the problem, or undefined if the path is acceptable
 */
export function rootDirPathProblem(root: string, owners: readonly number[]): string | undefined {
  let shown = "";
  let userOwner: number | undefined;
  const parts = root.split("/").filter((c) => c !== "");
  for (let i = 0; i < parts.length; i++) {
    shown += `/${parts[i]}`;
    const last = i === parts.length - 1;
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(shown);
    } catch {
      return `${shown} does not exist`;
    }
    if (st.isSymlink) return `${shown} is a symbolic link`;
    if (!st.isDirectory) return `${shown} is not a directory`;
    const mode = st.mode ?? 0;
    const uid = st.uid ?? -1;
    if ((mode & 0o002) !== 0) {
      return `${shown} is world-writable${(mode & 0o1000) !== 0 ? " (sticky)" : ""}`;
    }
    if (!last && (mode & 0o020) !== 0) return `${shown} is group-writable`;
    if (uid !== 0) {
      if (!owners.includes(uid)) return `${shown} is owned by uid ${uid}, who is not granted it`;
      if (userOwner !== undefined && userOwner !== uid) {
        return `${shown} is owned by uid ${uid} inside a directory owned by uid ${userOwner}`;
      }
      userOwner = uid;
    } else if (userOwner !== undefined) {
      return `${shown} is owned by root inside a directory owned by uid ${userOwner}`;
    }
  }
  return undefined;
}

function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function fsTypeProblem(dir: string): string | undefined {
  const out = new Deno.Command("/usr/bin/stat", {
    args: ["-f", "-c", "%t", "--", dir],
    clearEnv: true,
    env: { PATH: SYSTEM_PATH, LANG: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const magic = parseInt(dec.decode(out.stdout).trim(), 16);
  const allowed: Record<number, string> = {
    0xef53: "ext2/3/4",
    0x58465342: "xfs",
    0x9123683e: "btrfs",
    0x01021994: "tmpfs",
    0x2fc12fc1: "zfs",
    0xf2f52010: "f2fs",
  };
  if (out.code !== 0 || !(magic in allowed)) {
    return `${dir} is on a file system of type 0x${
      Number.isNaN(magic) ? "?" : magic.toString(16)
    }; allowed: ${Object.values(allowed).join(", ")}`;
  }
  return undefined;
}

// --- install ------------------------------------------------------------------------

/** Makes `path` and its missing parents root-owned directories; refuses unsafe existing ones. */
function ensureRootOwnedDir(path: string, mode: number): void {
  let cur = "";
  for (const c of path.split("/").filter((x) => x !== "")) {
    cur += `/${c}`;
    let st: Deno.FileInfo | undefined;
    try {
      st = Deno.lstatSync(cur);
    } catch {
      st = undefined;
    }
    if (!st) {
      Deno.mkdirSync(cur, { mode });
      Deno.chownSync(cur, 0, 0);
      Deno.chmodSync(cur, mode);
      continue;
    }
    if (st.isSymlink || !st.isDirectory) {
      fail(`${cur} is not a real directory; refusing to install under it`);
    }
    if (st.uid !== 0) {
      fail(`${cur} is owned by uid ${st.uid}; every install directory must be root-owned`);
    }
    if (((st.mode ?? 0) & 0o022) !== 0) {
      fail(`${cur} is group- or world-writable; refusing to install under it`);
    }
  }
}

async function sameContent(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = [await Deno.lstat(a), await Deno.lstat(b)];
    if (!sb.isFile || sa.size !== sb.size) return false;
    const [ha, hb] = await Promise.all(
      [a, b].map(async (p) =>
        new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(p)))
      ),
    );
    return ha!.every((x, i) => x === hb![i]);
  } catch {
    return false;
  }
}

/** Writes `data` to `dest` atomically: O_EXCL temporary in the same root-owned dir, chmod, rename. */
function writeAtomic(dest: string, data: Uint8Array, mode: number): void {
  const tmp = join(
    dirname(dest),
    `.${dest.slice(dest.lastIndexOf("/") + 1)}.tmp-${crypto.randomUUID()}`,
  );
  const f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    let off = 0;
    while (off < data.length) off += f.writeSync(data.subarray(off));
    f.syncSync();
  } finally {
    f.close();
  }
  try {
    Deno.chownSync(tmp, 0, 0);
    Deno.chmodSync(tmp, mode);
    Deno.renameSync(tmp, dest);
  } catch (err) {
    Deno.removeSync(tmp);
    throw err;
  }
}

async function installCopy(src: string, dest: string, mode: number): Promise<void> {
  const real = await Deno.realPath(src);
  if (await sameContent(real, dest)) {
    const st = await Deno.lstat(dest);
    if (st.uid === 0 && ((st.mode ?? 0) & 0o7777) === mode) return;
  }
  writeAtomic(dest, await Deno.readFile(real), mode);
}

function findTool(name: string, env: (n: string) => string | undefined): string | undefined {
  const candidates: string[] = [];
  const here = new URL(".", import.meta.url);
  if (here.protocol === "file:") {
    candidates.push(join(here.pathname, "..", "..", ".tools", "bin", name));
  }
  candidates.push(join(dirname(Deno.execPath()), name));
  for (const dir of (env("PATH") ?? SYSTEM_PATH).split(":")) {
    if (dir.startsWith("/")) candidates.push(join(dir, name));
  }
  candidates.push(`/usr/local/bin/${name}`, `/usr/bin/${name}`, `/usr/sbin/${name}`);
  for (const c of candidates) {
    try {
      const st = Deno.statSync(c);
      if (st.isFile && ((st.mode ?? 0) & 0o111) !== 0) return c;
    } catch { /* next */ }
  }
  return undefined;
}

/** The compiled launcher to prefer, if one exists. Not exercised here: `deno compile` is unavailable. */
function findCompiledLauncher(): string | undefined {
  const candidates = [join(dirname(Deno.execPath()), "buildkitd-launcher")];
  const here = new URL(".", import.meta.url);
  if (here.protocol === "file:") {
    candidates.push(join(here.pathname, "..", "..", "dist", "buildkitd-launcher"));
  }
  for (const c of candidates) {
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch { /* next */ }
  }
  return undefined;
}

/** The launcher permission set written into the installed deno.json (mirrors deno.json "launcher"). */
export const LAUNCHER_PERMISSION_SET = {
  read: true,
  write: true,
  env: false,
  net: false,
  ffi: true,
  sys: ["uid", "gid", "hostname"],
  run: true,
} as const;

const BUILDKITD_TOML = `# Generated by \`sudo buildctl daemon start\`; do not edit.
# Flags from the launcher set everything else (root, address, entitlements).
[worker.containerd]
  enabled = false
[worker.oci]
  enabled = true
  gc = true
`;

/**
 * Installs (or refreshes) the launcher under `layout.prefix`.
 *
 * @returns the layout actually installed (mode decided by what is available)
 */
export async function installLauncher(
  requested: Layout,
  env: (n: string) => string | undefined,
): Promise<Layout> {
  const compiled = findCompiledLauncher();
  const layout: Layout = { ...requested, mode: compiled ? "compiled" : "source" };
  const paths = layoutPaths(layout);
  prepareInstallDirs(layout);
  const buildkitd = findTool("buildkitd", env);
  const runc = findTool("runc", env);
  if (!buildkitd) fail("cannot find buildkitd to install", "put buildkitd on PATH");
  if (!runc) fail("cannot find runc to install", "install runc (apt-get install runc)");
  await installCopy(buildkitd, paths.buildkitd, 0o755);
  await installCopy(runc, paths.runc, 0o755);
  if (compiled) {
    await installCopy(compiled, paths.compiled, 0o755);
  } else {
    const here = new URL(".", import.meta.url);
    if (here.protocol !== "file:") {
      fail(
        "cannot install the launcher: no compiled buildkitd-launcher next to buildctl and no sources",
        "build it with scripts/compile.sh, or run buildctl from its source tree",
      );
    }
    await installCopy(Deno.execPath(), paths.deno, 0o755);
    installSources(layout, join(here.pathname, ".."));
  }
  writeInstallFiles(layout);
  return layout;
}

/** Creates the prefix and its root-owned subdirectories. */
function prepareInstallDirs(layout: Layout): void {
  const paths = layoutPaths(layout);
  ensureRootOwnedDir(layout.prefix, 0o755);
  for (const d of [paths.binDir, `${layout.prefix}/etc`]) ensureRootOwnedDir(d, 0o755);
  ensureRootOwnedDir(paths.cacheDir, 0o700);
  Deno.chmodSync(paths.cacheDir, 0o700);
}

/** Copies the launcher sources into a fresh lib/ tree, swapped in by rename (no stale module survives). */
function installSources(layout: Layout, srcRoot: string): void {
  const paths = layoutPaths(layout);
  const staging = `${layout.prefix}/.lib-${crypto.randomUUID()}`;
  Deno.mkdirSync(staging, { mode: 0o755 });
  Deno.chmodSync(staging, 0o755);
  try {
    for (const dir of ["launcher", "sys"]) {
      const to = `${staging}/src/${dir}`;
      Deno.mkdirSync(to, { recursive: true, mode: 0o755 });
      for (const e of Deno.readDirSync(join(srcRoot, dir))) {
        if (!e.isFile || !e.name.endsWith(".ts")) continue;
        if (/_test\.ts$|_bench\.ts$/.test(e.name)) continue;
        writeAtomic(`${to}/${e.name}`, Deno.readFileSync(join(srcRoot, dir, e.name)), 0o644);
      }
    }
    for (const d of [`${staging}/src`, `${staging}/src/launcher`, `${staging}/src/sys`]) {
      Deno.chownSync(d, 0, 0);
      Deno.chmodSync(d, 0o755);
    }
    const denoJson = JSON.stringify(
      { permissions: { launcher: LAUNCHER_PERMISSION_SET } },
      null,
      2,
    );
    writeAtomic(`${staging}/deno.json`, new TextEncoder().encode(denoJson + "\n"), 0o644);
    const old = `${layout.prefix}/.lib-old-${crypto.randomUUID()}`;
    let hadOld = false;
    try {
      Deno.renameSync(paths.libDir, old);
      hadOld = true;
    } catch { /* first install */ }
    Deno.renameSync(staging, paths.libDir);
    if (hadOld) Deno.removeSync(old, { recursive: true });
  } catch (err) {
    Deno.removeSync(staging, { recursive: true });
    throw err;
  }
}

/** Writes buildkitd.toml, layout.json and the wrapper (last: it is what sudoers names). */
function writeInstallFiles(layout: Layout): void {
  const paths = layoutPaths(layout);
  writeAtomic(paths.buildkitdToml, new TextEncoder().encode(BUILDKITD_TOML), 0o644);
  writeAtomic(paths.layoutFile, new TextEncoder().encode(serializeLayout(layout)), 0o644);
  writeAtomic(paths.wrapper, new TextEncoder().encode(wrapperScript(layout)), 0o755);
}

// --- config and sudoers ---------------------------------------------------------------

function readConfig(layout: Layout): LauncherConfig {
  const empty: LauncherConfig = {
    version: 1,
    launcher: layoutPaths(layout).wrapper,
    runDir: layout.runDir,
    grants: [],
  };
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(layout.config);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return empty;
    throw err;
  }
  try {
    const c = parseConfig(bytes);
    return { ...c, launcher: empty.launcher, runDir: empty.runDir };
  } catch (err) {
    fail(
      `the existing config ${layout.config} is invalid: ${
        err instanceof Error ? err.message : err
      }`,
      "fix or remove it, then run the command again",
    );
  }
}

function writeConfig(layout: Layout, config: LauncherConfig): void {
  ensureRootOwnedDir(dirname(layout.config), 0o755);
  writeAtomic(layout.config, new TextEncoder().encode(serializeConfig(config)), 0o644);
}

/** The sudoers drop-in for a config: exactly `<launcher> start` per granted uid. */
export function sudoersText(config: LauncherConfig): string {
  const lines = [
    "# Generated by `sudo buildctl daemon start`; do not edit.",
    "# Change grants with `sudo buildctl daemon start --allow-user=...` and",
    "# `sudo buildctl daemon revoke USER`. Each line lets one user (by uid) run",
    '# exactly "<launcher> start" as root without a password, and nothing else.',
  ];
  for (const g of config.grants) {
    lines.push(`# ${g.user}`);
    lines.push(`#${g.uid} ALL=(root) NOPASSWD: ${config.launcher} start`);
  }
  return lines.join("\n") + "\n";
}

function visudo(args: string[]): { ok: boolean; output: string } {
  const out = new Deno.Command("/usr/sbin/visudo", {
    args,
    clearEnv: true,
    env: { PATH: SYSTEM_PATH, LANG: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  return { ok: out.code === 0, output: (dec.decode(out.stdout) + dec.decode(out.stderr)).trim() };
}

/** Validates and installs the sudoers drop-in atomically; removes it when there are no grants. */
export function writeSudoers(layout: Layout, config: LauncherConfig): void {
  const dest = layout.sudoers;
  ensureRootOwnedDir(dirname(dest), 0o755);
  let previous: Uint8Array | undefined;
  try {
    previous = Deno.readFileSync(dest);
  } catch { /* none yet */ }
  if (config.grants.length === 0) {
    if (previous) Deno.removeSync(dest);
    return;
  }
  // A name with a "." is ignored by sudo's @includedir while it is being written and checked.
  const tmp = join(
    dirname(dest),
    `.${dest.slice(dest.lastIndexOf("/") + 1)}.tmp-${crypto.randomUUID()}`,
  );
  const f = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o440 });
  try {
    f.writeSync(new TextEncoder().encode(sudoersText(config)));
    f.syncSync();
  } finally {
    f.close();
  }
  try {
    Deno.chownSync(tmp, 0, 0);
    Deno.chmodSync(tmp, 0o440);
    const check = visudo(["-c", "-q", "-f", tmp]);
    if (!check.ok) fail(`the generated sudoers rule does not validate: ${check.output}`);
    Deno.renameSync(tmp, dest);
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch { /* renamed */ }
    throw err;
  }
  const whole = visudo(["-c", "-q"]);
  if (!whole.ok) {
    if (previous) writeAtomic(dest, previous, 0o440);
    else Deno.removeSync(dest);
    fail(`sudoers no longer validates with the new rule, so it was rolled back: ${whole.output}`);
  }
}

function runLauncher(
  layout: Layout,
  args: string[],
): { code: number; stdout: string; stderr: string } {
  const out = new Deno.Command(layoutPaths(layout).wrapper, {
    args,
    clearEnv: true,
    env: { PATH: SYSTEM_PATH },
    cwd: "/",
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

// --- the two admin actions --------------------------------------------------------------

/**
 * `sudo buildctl daemon start --root=DIR --allow-user=… [--entitlements=…] [--timeout=…]`.
 *
 * @throws {BuildctlError} with a specific message for every refusal
 */
export async function grantDaemonAccess(req: GrantRequest): Promise<GrantResult> {
  checkPrivileges();
  const layoutReq = layoutFrom(req.overrides);
  let entitlements: string[];
  let idle = DEFAULT_IDLE_TIMEOUT_SECONDS;
  try {
    entitlements = parseEntitlementList(req.entitlements ?? "");
    if (req.timeout !== undefined && req.timeout !== "") idle = parseDuration(req.timeout);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, undefined, ExitCode.Usage);
    throw err;
  }
  const root = req.root;
  const problem = rootDirProblem(root);
  if (problem) {
    fail(`invalid --root ${JSON.stringify(root)}: ${problem}`, undefined, ExitCode.Usage);
  }
  const specs = req.users.flatMap((u) => u.split(",")).map((u) => u.trim()).filter((u) => u !== "");
  if (specs.length === 0) fail("--allow-user needs at least one user", undefined, ExitCode.Usage);
  const users: LocalUser[] = [];
  for (const spec of specs) {
    const u = resolveUser(spec);
    if (u.uid === 0) {
      fail(
        "root cannot be granted: uid 0 gets nothing implicitly and needs no launcher",
        undefined,
        ExitCode.Usage,
      );
    }
    if (!users.some((x) => x.uid === u.uid)) users.push(u);
  }

  // Who must be able to write DIR: the sudo caller (unless root) and every allowed user.
  const checkers = [...users];
  const sudoUid = req.env("SUDO_UID");
  if (sudoUid !== undefined && /^[1-9][0-9]*$/.test(sudoUid)) {
    const caller = resolveUser(sudoUid);
    if (!checkers.some((x) => x.uid === caller.uid)) checkers.unshift(caller);
  }
  if (!pathExists(root)) {
    if (users.length !== 1) {
      fail(
        `${root} does not exist`,
        "create a directory all the allowed users can write, then run this again",
      );
    }
    const parentProblem = rootDirPathProblem(dirname(root), users.map((u) => u.uid));
    if (parentProblem) fail(`cannot use ${root}: ${parentProblem}`);
    const u = users[0]!;
    const mk = runAsUser(u, ["/usr/bin/mkdir", "-m", "0700", "--", root]);
    if (mk.code !== 0) fail(`cannot create ${root} as ${u.name}: ${dec.decode(mk.stderr).trim()}`);
    req.out(`created ${root} as ${u.name}`);
  }
  const pathProblem = rootDirPathProblem(root, users.map((u) => u.uid));
  if (pathProblem) {
    fail(
      `refusing --root ${root}: ${pathProblem}`,
      "choose a directory inside the user's own home, e.g. ~/.local/share/buildctl-deno",
    );
  }
  const fsProblem = fsTypeProblem(root);
  if (fsProblem) fail(`refusing --root ${root}: ${fsProblem}`);
  for (const c of checkers) {
    if (!writableAs(c, root)) {
      fail(
        `${c.name} cannot write ${root} (checked as ${c.name})`,
        "the daemon keeps its state there for the allowed users: pick a directory they can write",
        ExitCode.NoPermission,
      );
    }
  }

  const layout = await installLauncher(layoutReq, req.env);
  const paths = layoutPaths(layout);
  req.out(
    `installed launcher ${paths.wrapper} (${
      layout.mode === "compiled" ? "compiled" : "deno + sources"
    }, root-owned, not setuid)`,
  );

  let config = readConfig(layout);
  const written: Grant[] = [];
  for (const u of users) {
    const grant: Grant = { uid: u.uid, user: u.name, root, entitlements, idleTimeoutSeconds: idle };
    config = upsertGrant(config, grant);
    written.push(grant);
  }
  writeConfig(layout, config);
  for (const g of written) {
    req.out(
      `granted ${g.user} (uid ${g.uid}): root ${g.root}, entitlements ${
        g.entitlements.join(",") || "none"
      }, idle timeout ${formatDuration(g.idleTimeoutSeconds)}`,
    );
  }
  req.out(`wrote ${layout.config}`);
  writeSudoers(layout, config);
  req.out(`wrote ${layout.sudoers} (validated with visudo)`);

  // Tell a running daemon about the new grants, then start (or confirm) this one.
  runLauncher(layout, ["reload"]);
  const r = runLauncher(layout, ["start", "--uid", String(users[0]!.uid)]);
  let address: string | undefined;
  try {
    const res = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as {
      ok?: boolean;
      address?: string;
      state?: string;
      message?: string;
    };
    if (res.ok && res.address) {
      address = res.address;
      req.out(`daemon ${res.state ?? "running"}: ${res.address}`);
    } else {
      fail(
        `the grant is in place, but the daemon did not start: ${res.message ?? r.stderr.trim()}`,
      );
    }
  } catch (err) {
    if (err instanceof BuildctlError) throw err;
    fail(
      `the grant is in place, but the daemon did not start: ${r.stderr.trim() || `exit ${r.code}`}`,
    );
  }
  return { launcher: paths.wrapper, grants: written, address };
}

/** A revoke request. */
export interface RevokeRequest {
  /** The user (name or uid). */
  user: string;
  /** Install overrides (must match the grant's). */
  overrides?: InstallOverrides;
  /** Progress lines. */
  out: (line: string) => void;
}

/**
 * `sudo buildctl daemon revoke USER`: removes the user's grant and sudoers
 * line and tells a running daemon (which closes the user's gate, and stops
 * when nobody is left).
 */
export function revokeDaemonAccess(req: RevokeRequest): void {
  checkPrivileges();
  let layout = layoutFrom(req.overrides);
  try {
    const recorded = JSON.parse(Deno.readTextFileSync(layoutPaths(layout).layoutFile)) as {
      mode?: string;
    };
    if (recorded.mode === "compiled") layout = { ...layout, mode: "compiled" };
  } catch { /* not installed */ }
  const config = readConfig(layout);
  let uid: number;
  const byName = config.grants.find((g) => g.user === req.user);
  if (byName) {
    uid = byName.uid;
  } else if (/^[1-9][0-9]*$/.test(req.user)) {
    uid = Number(req.user);
  } else {
    uid = resolveUser(req.user).uid;
  }
  const { config: next, removed } = removeGrant(config, uid);
  if (!removed) fail(`${req.user} has no grant in ${layout.config}`);
  writeConfig(layout, next);
  writeSudoers(layout, next);
  req.out(`revoked ${removed.user} (uid ${removed.uid}); removed its sudoers line`);
  try {
    Deno.statSync(layoutPaths(layout).wrapper);
    runLauncher(layout, ["reload"]);
  } catch { /* not installed: nothing runs */ }
}
