/**
 * Helpers shared by the Control API commands.
 *
 * @module
 */

import type { Flag, FlagValues } from "../command.ts";
import type { Globals } from "../globals.ts";
import { parseTemplate, TemplateError } from "../format/template.ts";
import { validateFilters } from "../flags/filter.ts";
import { BuildctlError, ExitCode } from "../../errors.ts";

/** `--filter, -f` as upstream. */
export const FILTER_FLAG: Flag = {
  name: "filter",
  short: "f",
  kind: "list",
  usage: "Filter records",
};
/** `--verbose, -v` as upstream. */
export const VERBOSE_FLAG: Flag = {
  name: "verbose",
  short: "v",
  kind: "bool",
  usage: "Verbose output",
};
/** `--format` as upstream. */
export const FORMAT_FLAG: Flag = {
  name: "format",
  kind: "string",
  usage: "Format the output using the given Go template, e.g, '{{json .}}'",
};

/** The list of `--filter` values, validated. */
export function filters(flags: FlagValues, name = "filter"): string[] {
  return validateFilters((flags[name] as string[] | undefined) ?? [], `--${name}`);
}

/** The `--format` value, checked to parse before any call is made. */
export function format(flags: FlagValues): string | undefined {
  const f = flags["format"];
  if (typeof f !== "string" || f === "") return undefined;
  try {
    parseTemplate(f);
  } catch (err) {
    throw templateError(f, err);
  }
  return f;
}

/** Runs a renderer, turning template failures into a usage error after printing partial output. */
export function render(g: Globals, fmt: string | undefined, fn: () => string): void {
  try {
    g.io.stdout.write(fn());
  } catch (err) {
    if (err instanceof TemplateError && fmt !== undefined) {
      if (err.partialOutput) g.io.stdout.write(err.partialOutput);
      throw templateError(fmt, err);
    }
    throw err;
  }
}

function templateError(fmt: string, err: unknown): BuildctlError {
  return new BuildctlError(`invalid --format "${fmt}": ${(err as Error).message}`, {
    exitCode: ExitCode.Usage,
    cause: err,
  });
}
