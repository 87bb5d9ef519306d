/**
 * Flags shared by the Control API commands (du, prune, debug workers|info).
 *
 * @module
 */

import type { Flag, FlagValues } from "../command.ts";
import { validateFilters } from "../flags/filter.ts";

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
