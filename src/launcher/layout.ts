/**
 * Where an installed launcher keeps everything. All of it is decided by the
 * admin at install time and recorded in `<prefix>/layout.json` (root-owned,
 * in a root-owned tree); nothing is taken from a caller's environment.
 *
 * ```
 * <prefix>/                       root 0755 (default /usr/local/libexec/buildctl-deno)
 *   buildkitd-launcher            root 0755 wrapper: ulimit, env -i, exec; sudoers names it
 *   layout.json                   root 0644 this layout
 *   bin/deno                      root 0755 pinned Deno (source install)
 *   bin/buildkitd-launcher        root 0755 compiled launcher (when one was available)
 *   bin/buildkitd, bin/runc       root 0755 the daemon and its runtime
 *   lib/deno.json                 root 0644 the "launcher" permission set only
 *   lib/src/{launcher,sys}/*.ts   root 0644 launcher sources (source install)
 *   etc/buildkitd.toml            root 0644 daemon config (constants)
 *   cache/                        root 0700 DENO_DIR
 * <config>                        root 0644 grants (default /etc/buildctl-deno/launcher.json)
 * <runDir>/                       root 0755 (default /run/buildctl-deno)
 *   users/<uid>/buildkitd.sock    gate (public; the gate checks SO_PEERCRED)
 *   users/<uid>/control.sock      control endpoint (state/stop/reset/logs)
 *   d/                            root 0700
 *   d/<rootId>/                   root 0700: daemon.sock, admin.sock, locks, mount points
 * <logDir>/                       root 0700: audit.log, <rootId>.log (0600)
 * ```
 *
 * Pure: no I/O.
 *
 * @module
 */
import { installPathProblem } from "./config.ts";
import { parseStrictJson, type StrictJson } from "./strict_json.ts";

/** Default install prefix. */
export const DEFAULT_PREFIX = "/usr/local/libexec/buildctl-deno";
/** Default config path (the buildctl client looks here). */
export const DEFAULT_CONFIG = "/etc/buildctl-deno/launcher.json";
/** Default run directory. */
export const DEFAULT_RUN_DIR = "/run/buildctl-deno";
/** Default log directory. */
export const DEFAULT_LOG_DIR = "/var/log/buildctl-deno";
/** Default sudoers drop-in. */
export const DEFAULT_SUDOERS = "/etc/sudoers.d/buildctl-deno";

/** Fixed PATH for everything the launcher runs: root-owned system directories only. */
export const SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** How the launcher program itself is run. */
export type LauncherMode = "source" | "compiled";

/** The recorded install layout. */
export interface Layout {
  /** Always 1. */
  version: 1;
  /** Install prefix. */
  prefix: string;
  /** Grant config path. */
  config: string;
  /** Run directory. */
  runDir: string;
  /** Log directory. */
  logDir: string;
  /** Sudoers drop-in path. */
  sudoers: string;
  /** `source`: `bin/deno run … lib/src/launcher/main.ts`; `compiled`: `bin/buildkitd-launcher`. */
  mode: LauncherMode;
}

/** Paths derived from a layout. */
export interface LayoutPaths {
  /** The wrapper the sudoers rule names. */
  wrapper: string;
  /** layout.json. */
  layoutFile: string;
  /** Directory of root-owned binaries (first on the daemon's PATH). */
  binDir: string;
  /** The pinned Deno (source mode). */
  deno: string;
  /** The compiled launcher (compiled mode). */
  compiled: string;
  /** buildkitd. */
  buildkitd: string;
  /** runc. */
  runc: string;
  /** lib/ (source mode). */
  libDir: string;
  /** The launcher entry module (source mode). */
  main: string;
  /** deno.json holding only the launcher permission set (source mode). */
  denoConfig: string;
  /** buildkitd.toml. */
  buildkitdToml: string;
  /** DENO_DIR. */
  cacheDir: string;
  /** `users/` under the run dir. */
  usersDir: string;
  /** `d/` under the run dir. */
  daemonsDir: string;
}

/** Computes the derived paths. */
export function layoutPaths(layout: Layout): LayoutPaths {
  const p = layout.prefix;
  return {
    wrapper: `${p}/buildkitd-launcher`,
    layoutFile: `${p}/layout.json`,
    binDir: `${p}/bin`,
    deno: `${p}/bin/deno`,
    compiled: `${p}/bin/buildkitd-launcher`,
    buildkitd: `${p}/bin/buildkitd`,
    runc: `${p}/bin/runc`,
    libDir: `${p}/lib`,
    main: `${p}/lib/src/launcher/main.ts`,
    denoConfig: `${p}/lib/deno.json`,
    buildkitdToml: `${p}/etc/buildkitd.toml`,
    cacheDir: `${p}/cache`,
    usersDir: `${layout.runDir}/users`,
    daemonsDir: `${layout.runDir}/d`,
  };
}

/** Per-user socket paths. */
export function userSockets(layout: Layout, uid: number): { gate: string; control: string } {
  const dir = `${layout.runDir}/users/${uid}`;
  return { gate: `${dir}/buildkitd.sock`, control: `${dir}/control.sock` };
}

/** Per-daemon private paths (all inside root-only `d/<rootId>/`). */
export function daemonPaths(layout: Layout, id: string): {
  dir: string;
  socket: string;
  admin: string;
  mountPoint: string;
  wipePoint: string;
  startLock: string;
  runLock: string;
  log: string;
} {
  const dir = `${layout.runDir}/d/${id}`;
  return {
    dir,
    socket: `${dir}/daemon.sock`,
    admin: `${dir}/admin.sock`,
    mountPoint: `${dir}/root`,
    wipePoint: `${dir}/wipe`,
    startLock: `${dir}/start.lock`,
    runLock: `${dir}/run.lock`,
    log: `${layout.logDir}/${id}.log`,
  };
}

/** The program and arguments that run the launcher with `args` (no wrapper, no env). */
export function launcherCommand(layout: Layout, args: readonly string[]): [string, string[]] {
  const paths = layoutPaths(layout);
  if (layout.mode === "compiled") return [paths.compiled, [...args]];
  return [paths.deno, [
    "run",
    "--quiet",
    "--no-prompt",
    "--no-lock",
    `--config=${paths.denoConfig}`,
    "-P=launcher",
    paths.main,
    ...args,
  ]];
}

/** The fixed environment of every launcher process. */
export function launcherEnv(layout: Layout): Record<string, string> {
  return {
    PATH: SYSTEM_PATH,
    HOME: "/root",
    LANG: "C.UTF-8",
    DENO_DIR: layoutPaths(layout).cacheDir,
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
  };
}

/** Serialises a layout (what the installer writes). */
export function serializeLayout(layout: Layout): string {
  return JSON.stringify(layout, null, 2) + "\n";
}

/**
 * Parses layout.json strictly.
 *
 * @throws {Error} if anything is off
 */
export function parseLayout(bytes: Uint8Array): Layout {
  const doc = parseStrictJson(bytes, { maxBytes: 4096, maxDepth: 2 });
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new Error("layout: expected an object");
  }
  const o = doc as { [k: string]: StrictJson };
  const keys = ["version", "prefix", "config", "runDir", "logDir", "sudoers", "mode"];
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new Error(`layout: unknown key ${JSON.stringify(k)}`);
  }
  if (o["version"] !== 1) throw new Error("layout.version: must be 1");
  const out: Record<string, string> = {};
  for (const k of keys.slice(1, 6)) {
    const v = o[k];
    if (typeof v !== "string") throw new Error(`layout.${k}: expected a string`);
    const problem = installPathProblem(v);
    if (problem) throw new Error(`layout.${k}: ${problem}`);
    out[k] = v;
  }
  const mode = o["mode"];
  if (mode !== "source" && mode !== "compiled") {
    throw new Error('layout.mode: must be "source" or "compiled"');
  }
  return {
    version: 1,
    prefix: out["prefix"]!,
    config: out["config"]!,
    runDir: out["runDir"]!,
    logDir: out["logDir"]!,
    sudoers: out["sudoers"]!,
    mode,
  };
}

/**
 * The wrapper script. It runs under sudo (environment already reset) and
 * still trusts nothing: it rebuilds the environment from constants with
 * `env -i` (keeping only the SUDO_UID/SUDO_GID/SUDO_USER that sudo itself
 * set), resets resource limits (`ulimit`) before the runtime starts, and
 * execs the launcher by absolute path.
 */
export function wrapperScript(layout: Layout): string {
  const env = launcherEnv(layout);
  const [program, args] = launcherCommand(layout, []);
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const lines = [
    "#!/bin/sh",
    "# buildctl-deno launcher wrapper: generated by `sudo buildctl daemon start`; do not edit.",
    "# Runs under sudo; rebuilds the environment from constants and resets resource limits.",
    "umask 077",
    "cd / || exit 70",
    "# Resource limits: no core dumps; every soft limit raised to its hard limit (a caller's tiny",
    "# soft limits must not truncate root's writes). Raising a hard limit needs CAP_SYS_RESOURCE;",
    "# with a caller-lowered hard limit the runtime may refuse to start, before any write.",
    "ulimit -c 0",
    'for o in t f d m n v p; do h=$(ulimit -H -$o) && ulimit -S -$o "$h" 2>/dev/null; done',
    "ulimit -S -s 8192 2>/dev/null",
    "exec /usr/bin/env -i \\",
    ...envArgs.map((a) => `  ${a} \\`),
    '  "SUDO_UID=${SUDO_UID-}" "SUDO_GID=${SUDO_GID-}" "SUDO_USER=${SUDO_USER-}" \\',
    `  ${[program, ...args].join(" ")} "$@"`,
    "",
  ];
  return lines.join("\n");
}
