/**
 * Spawns our buildctl exactly as the binary would run (`deno run -P=buildctl`)
 * and upstream Go buildctl, and collects exit code, stdout and stderr.
 *
 * @module
 */

import { join } from "node:path";
import { DENO, REPO, TEST_PATH, UPSTREAM_BUILDCTL } from "./paths.ts";

/** The outcome of a command. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Raw stdout bytes. */
  bytes: Uint8Array;
}

/** Options for {@linkcode runBuildctl} and {@linkcode runUpstream}. */
export interface RunOptions {
  /** Extra environment (merged over a minimal one). */
  env?: Record<string, string>;
  /** Bytes or text for stdin (default: no stdin). */
  stdin?: Uint8Array | string;
  cwd?: string;
  /** Kill after this many ms (default 120 s). */
  timeoutMs?: number;
}

/** The command line that runs our buildctl from source with its permission set. */
export function buildctlCommand(): string[] {
  return [
    DENO,
    "run",
    "--quiet",
    "--no-prompt",
    // As scripts/buildctl runs it: modules load when imported, as in the binary.
    "--unstable-lazy-dynamic-imports",
    `--config=${join(REPO, "deno.json")}`,
    "-P=buildctl",
    join(REPO, "main.ts"),
  ];
}

/** Runs our buildctl. */
export function runBuildctl(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...pre] = buildctlCommand();
  return run(cmd!, [...pre, ...args], opts);
}

/** Runs upstream Go buildctl (reference only). */
export function runUpstream(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(UPSTREAM_BUILDCTL, args, opts);
}

/** Options of {@linkcode collect}. */
export interface CollectOptions {
  /** The environment; with `clearEnv` false it is added to the inherited one. */
  env?: Record<string, string>;
  clearEnv?: boolean;
  cwd?: string;
  /** Bytes or text for stdin (default: no stdin). */
  stdin?: Uint8Array | string;
  /** Kill after this many ms (default 120 s). */
  timeoutMs?: number;
}

/** What {@linkcode collect} returns. */
export interface Collected extends RunResult {
  /** Milliseconds it took. */
  ms: number;
}

/** Spawns a command, feeds stdin, kills it after the timeout, and collects its output. */
export async function collect(
  cmd: string,
  args: string[],
  opts: CollectOptions = {},
): Promise<Collected> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    ...(opts.env ? { env: opts.env } : {}),
    clearEnv: opts.clearEnv ?? false,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, opts.timeoutMs ?? 120_000);
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(
      typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin,
    )
      .catch(() => {});
    await w.close().catch(() => {});
  }
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    bytes: out.stdout,
    ms: performance.now() - t0,
  };
}

/** Runs any command with the test environment. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return collect(cmd, args, {
    env: {
      PATH: TEST_PATH,
      HOME: Deno.env.get("HOME") ?? "/root",
      NO_COLOR: "1",
      ...(opts.env ?? {}),
    },
    clearEnv: true,
    cwd: opts.cwd ?? REPO,
    ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
}
