/**
 * Finding the programs the daemon needs (buildkitd, rootlesskit, runc,
 * newuidmap…): `PATH` first, then the directory of our own executable (a
 * release archive ships buildctl and buildkitd side by side).
 *
 * @module
 */

import { dirname, join } from "../path.ts";

/** Where a program was found, and everywhere we looked. */
export interface FoundProgram {
  name: string;
  /** Absolute path, if found. */
  path: string | undefined;
  /** Directories searched, in order. */
  searched: string[];
}

/** The directory of our own executable (the compiled binary, or deno under `deno run`). */
export function ownDir(): string | undefined {
  try {
    return dirname(Deno.execPath());
  } catch {
    return undefined;
  }
}

/** Searches `PATH`, then `extraDirs`, then our own directory, for an executable file. */
export function findProgram(
  name: string,
  env: (name: string) => string | undefined,
  extraDirs: string[] = [],
): FoundProgram {
  const dirs: string[] = [];
  for (const d of (env("PATH") ?? "").split(":")) if (d && !dirs.includes(d)) dirs.push(d);
  for (const d of [...extraDirs, ownDir()]) if (d && !dirs.includes(d)) dirs.push(d);
  for (const d of dirs) {
    const p = join(d, name);
    if (isExecutable(p)) return { name, path: p, searched: dirs };
  }
  return { name, path: undefined, searched: dirs };
}

/** Whether `path` is a regular file with an execute bit. */
export function isExecutable(path: string): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** A PATH for the daemon: ours plus the directories of the programs we found (for runc beside buildkitd). */
export function daemonPath(
  env: (name: string) => string | undefined,
  programs: (string | undefined)[],
): string {
  const dirs = (env("PATH") || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    .split(":");
  for (const p of programs) {
    if (!p) continue;
    const d = dirname(p);
    if (!dirs.includes(d)) dirs.push(d);
  }
  return dirs.filter((d) => d !== "").join(":");
}
