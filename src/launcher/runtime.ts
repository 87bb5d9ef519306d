/**
 * What every launcher process establishes before doing anything: its own
 * install layout (derived from the kernel's /proc/self/exe, checked to be a
 * root-owned tree), the grant config read with sudo's secure-open rules, and
 * the launcher's exit codes and error type.
 *
 * @module
 */
import { type LauncherConfig, MAX_CONFIG_BYTES, parseConfig } from "./config.ts";
import { type Layout, layoutPaths, parseLayout } from "./layout.ts";
import { checkRootOwnedPath, readRootOwnedFile, UnsafePathError } from "./secure_fs.ts";

/** The launcher's exit codes (sysexits-style, fixed). */
export const LauncherExit = {
  /** Done. */
  Ok: 0,
  /** Internal error. */
  Software: 70,
  /** Bad arguments. */
  Usage: 64,
  /** The daemon could not be started. */
  Unavailable: 69,
  /** The caller is not authorised (no grant, not run through sudo). */
  NoPermission: 77,
  /** The install, layout or config is missing, insecure or invalid. */
  Config: 78,
} as const;

/** A launcher failure with its exit code and a stable machine-readable code. */
export class LauncherError extends Error {
  override name = "LauncherError";
  /** Exit code. */
  readonly exitCode: number;
  /** Stable code, e.g. `PEER_NOT_ALLOWED`, `INSECURE_CONFIG`. */
  readonly code: string;

  /** Builds the error. */
  constructor(code: string, message: string, exitCode: number) {
    super(message);
    this.code = code;
    this.exitCode = exitCode;
  }
}

/**
 * Finds and verifies this launcher's install: the executable must be
 * `<prefix>/bin/deno` (source install, and the main module must then be
 * `<prefix>/lib/src/launcher/main.ts`) or `<prefix>/bin/buildkitd-launcher`
 * (compiled); `<prefix>/layout.json` must be root-owned in a root-owned
 * tree and name the same prefix; every program and source file must be
 * root-owned and not writable by anyone else.
 *
 * @param mainModule `import.meta.url` of main.ts
 * @throws {LauncherError} `INSECURE_INSTALL` (exit 78)
 */
export function resolveLayout(mainModule: string): Layout {
  try {
    const exe = Deno.execPath();
    const m = /^(\/.+)\/bin\/(deno|buildkitd-launcher)$/.exec(exe);
    if (!m) throw new UnsafePathError(`${exe} is not inside an installed launcher prefix`);
    const prefix = m[1]!;
    const { bytes } = readRootOwnedFile(`${prefix}/layout.json`, 4096);
    const layout = parseLayout(bytes);
    if (layout.prefix !== prefix) {
      throw new UnsafePathError(`layout.json names prefix ${layout.prefix}, not ${prefix}`);
    }
    const paths = layoutPaths(layout);
    checkRootOwnedPath(exe);
    if (layout.mode === "source") {
      if (m[2] !== "deno") throw new UnsafePathError("a source install must run bin/deno");
      const expected = new URL(`file://${paths.main}`).href;
      if (mainModule !== expected) {
        throw new UnsafePathError(`the launcher must run from ${paths.main}`);
      }
      for (const dir of ["src/launcher", "src/sys"]) {
        for (const entry of Deno.readDirSync(`${paths.libDir}/${dir}`)) {
          checkRootOwnedPath(`${paths.libDir}/${dir}/${entry.name}`);
        }
      }
      checkRootOwnedPath(paths.denoConfig);
    } else if (m[2] !== "buildkitd-launcher") {
      throw new UnsafePathError("a compiled install must run bin/buildkitd-launcher");
    }
    checkRootOwnedPath(paths.wrapper);
    checkRootOwnedPath(paths.buildkitd);
    checkRootOwnedPath(paths.runc);
    return layout;
  } catch (err) {
    if (err instanceof LauncherError) throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new LauncherError(
      "INSECURE_INSTALL",
      `the launcher is not installed securely: ${why}`,
      LauncherExit.Config,
    );
  }
}

/**
 * Reads the grant config named by the layout, with the secure-open rules,
 * and checks that it agrees with the layout.
 *
 * @throws {LauncherError} `INSECURE_CONFIG` or `INVALID_CONFIG` (exit 78)
 */
export function loadConfig(layout: Layout): LauncherConfig {
  let bytes: Uint8Array;
  try {
    bytes = readRootOwnedFile(layout.config, MAX_CONFIG_BYTES).bytes;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new LauncherError("INSECURE_CONFIG", `insecure config: ${why}`, LauncherExit.Config);
  }
  let config: LauncherConfig;
  try {
    config = parseConfig(bytes);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new LauncherError(
      "INVALID_CONFIG",
      `invalid config ${layout.config}: ${why}`,
      LauncherExit.Config,
    );
  }
  const paths = layoutPaths(layout);
  if (config.launcher !== paths.wrapper || config.runDir !== layout.runDir) {
    throw new LauncherError(
      "INVALID_CONFIG",
      `config ${layout.config} does not match this install (launcher or runDir differ)`,
      LauncherExit.Config,
    );
  }
  return config;
}
