/**
 * The buildctl entry: parses argv, runs the command, and is the only place
 * that renders errors and chooses the exit code.
 *
 * @module
 */

import { type Command, parseArgv, renderHelp } from "./command.ts";
import { type Globals, resolveGlobals } from "./globals.ts";
import type { Io } from "./io.ts";
import { buildApp } from "./app.ts";
import { BuildctlError, ExitCode } from "../errors.ts";
import { BUILDKIT_VERSION, VERSION } from "../version.ts";

/**
 * Runs buildctl with `argv` against `io` and returns the exit code.
 * Never calls `Deno.exit`.
 */
export async function main(argv: string[], io: Io): Promise<number> {
  const app: Command<Globals> = buildApp();
  let debug = argv.includes("--debug");
  try {
    const parsed = parseArgv(app, argv);
    if (parsed.kind === "version") {
      io.stdout.write(
        `buildctl ${VERSION} (buildctl for Deno; BuildKit API ${BUILDKIT_VERSION})\n`,
      );
      return ExitCode.Ok;
    }
    if (parsed.kind === "help") {
      io.stdout.write(renderHelp(app, parsed.command, parsed.path));
      return ExitCode.Ok;
    }
    const globals = resolveGlobals(parsed.globals, io);
    debug = globals.debug;
    const code = await parsed.command.action!({
      flags: parsed.flags,
      args: parsed.args,
      globals,
      path: parsed.path,
      dashDashAt: parsed.dashDashAt,
    });
    return code ?? ExitCode.Ok;
  } catch (err) {
    return renderError(err, io, debug);
  }
}

/** Prints an error as `error: …` (+ `hint: …`) and returns its exit code. */
export function renderError(err: unknown, io: Io, debug: boolean): number {
  if (err instanceof BuildctlError) {
    if (err.preamble) io.stderr.write(err.preamble);
    io.stderr.write(`error: ${err.message}\n`);
    if (err.hint) io.stderr.write(`hint: ${err.hint}\n`);
    if (debug) writeCauses(err, io);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.stderr.write(`error: ${message}\n`);
  if (debug && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`);
  else if (!debug) io.stderr.write("hint: run with --debug for details\n");
  return ExitCode.Failure;
}

function writeCauses(err: Error, io: Io): void {
  if (err.stack) io.stderr.write(`${err.stack}\n`);
  let cause = err.cause;
  while (cause !== undefined) {
    if (cause instanceof Error) {
      io.stderr.write(`caused by: ${cause.stack ?? cause.message}\n`);
      cause = cause.cause;
    } else {
      io.stderr.write(`caused by: ${String(cause)}\n`);
      break;
    }
  }
}
