/**
 * The one error type of the project: a user-facing message, an optional hint
 * and a documented exit code. Every module throws {@linkcode BuildctlError}
 * for conditions the user can act on; only `cli/` renders it.
 *
 * @module
 */

/** Exit codes, documented in README.md ("Exit codes"). */
export const ExitCode = {
  /** Success. */
  Ok: 0,
  /** The operation failed (build error, daemon error). */
  Failure: 1,
  /** Bad usage: unknown command or flag, malformed value. */
  Usage: 2,
  /** The daemon could not be reached or started. */
  Unavailable: 69,
  /** The daemon or the gatekeeper refused the request. */
  NoPermission: 77,
  /** Interrupted by the user (Ctrl-C). */
  Interrupted: 130,
} as const;

/** One of the values of {@linkcode ExitCode}. */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/** Options of {@linkcode BuildctlError}. */
export interface BuildctlErrorOptions {
  /** Exit code to leave with (default {@linkcode ExitCode.Failure}). */
  exitCode?: ExitCode;
  /** One line that tells the user what to do next. */
  hint?: string;
  /** The underlying error, shown with `--debug`. */
  cause?: unknown;
  /** Print the command's usage after the message. */
  showUsage?: boolean;
  /** Text printed before the `error:` line (e.g. the Dockerfile lines that failed). */
  preamble?: string;
}

/** An error meant for the user: message, hint and exit code. */
export class BuildctlError extends Error {
  override name = "BuildctlError";
  /** Exit code the CLI leaves with. */
  readonly exitCode: ExitCode;
  /** What to do about it, if known. */
  readonly hint: string | undefined;
  /** Whether the CLI should print usage after the message. */
  readonly showUsage: boolean;
  /** Text printed before the `error:` line. */
  readonly preamble: string | undefined;

  constructor(message: string, options: BuildctlErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.exitCode = options.exitCode ?? ExitCode.Failure;
    this.hint = options.hint;
    this.showUsage = options.showUsage ?? false;
    this.preamble = options.preamble;
  }
}

/** A usage error: bad flag, bad value, unknown command. Exit code 2. */
export function usageError(message: string, hint?: string): BuildctlError {
  return new BuildctlError(message, { exitCode: ExitCode.Usage, hint, showUsage: false });
}
