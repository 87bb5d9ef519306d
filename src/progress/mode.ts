/**
 * The `--progress` modes and how `auto` is decided, apart from the displays
 * so that a command can check the flag before it loads them.
 *
 * @module
 */

/** Every value `--progress` accepts. */
export const PROGRESS_MODES = ["auto", "tty", "plain", "rawjson", "quiet"] as const;

/** A `--progress` value. */
export type ProgressMode = typeof PROGRESS_MODES[number];

/** A mode after `auto` has been decided. */
export type ResolvedProgressMode = Exclude<ProgressMode, "auto">;

/** Environment lookup: a record, or nothing to read the process environment. */
export type ProgressEnv = Record<string, string | undefined>;

/** Reads `env`, or the process environment when `env` is undefined. */
export function envGetter(env: ProgressEnv | undefined): (key: string) => string | undefined {
  if (env !== undefined) return (key) => env[key];
  return (key) => {
    try {
      return Deno.env.get(key);
    } catch {
      return undefined;
    }
  };
}

/**
 * Decides the display mode like buildctl: for `auto` (or an empty value)
 * `BUILDKIT_PROGRESS` wins if set, then `tty` on a terminal, else `plain`.
 *
 * @throws {Error} for an unknown value (the message lists the valid ones),
 * or for `tty` when the output is not a terminal.
 */
export function resolveMode(
  flag: string,
  isTerminal: boolean,
  env?: ProgressEnv,
): ResolvedProgressMode {
  const get = envGetter(env);
  let mode = flag;
  let source = "";
  if (mode === "" || mode === "auto") {
    const fromEnv = get("BUILDKIT_PROGRESS");
    if (fromEnv !== undefined && fromEnv !== "") {
      mode = fromEnv;
      source = " (from BUILDKIT_PROGRESS)";
    }
  }
  if (mode === "" || mode === "auto") return isTerminal ? "tty" : "plain";
  if (!(PROGRESS_MODES as readonly string[]).includes(mode)) {
    throw new Error(
      `Invalid progress mode "${mode}"${source}: valid modes are ${PROGRESS_MODES.join(", ")}`,
    );
  }
  if (mode === "tty" && !isTerminal) {
    throw new Error(
      `Cannot use progress mode "tty"${source}: the output is not a terminal (use "plain")`,
    );
  }
  return mode as ResolvedProgressMode;
}
