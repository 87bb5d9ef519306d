/**
 * How to run ourselves again (for the detached idle supervisor): the
 * compiled binary is simply re-executed; under `deno run` the same Deno runs
 * the same main module with the `buildctl` permission set of the nearest
 * deno.json (the set the binary is compiled with).
 *
 * @module
 */

import { basename, dirname, fromFileUrl, join } from "../path.ts";

/** The permission flags of the `buildctl` set, for when no deno.json is found. */
const FALLBACK_PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-run",
  "--allow-sys=hostname,osRelease,uid,gid",
];

/** argv that starts this program again (append the subcommand and its flags). */
export function selfArgv(): string[] {
  const exec = Deno.execPath();
  if (!/^deno(\.exe)?$/.test(basename(exec))) return [exec];
  const main = Deno.mainModule.startsWith("file:") ? fromFileUrl(Deno.mainModule) : Deno.mainModule;
  const config = findUp(dirname(main), "deno.json");
  const perms = config ? [`--config=${config}`, "-P=buildctl"] : FALLBACK_PERMISSIONS;
  // Lazy dynamic imports as in scripts/buildctl (the binary loads lazily anyway).
  return [exec, "run", "--quiet", "--no-prompt", "--unstable-lazy-dynamic-imports", ...perms, main];
}

function findUp(dir: string, name: string): string | undefined {
  for (let d = dir;;) {
    const p = join(d, name);
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* keep going */ }
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}
