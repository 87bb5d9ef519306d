/** `buildctl prune`: remove build cache, streaming what was deleted. @module */

import type { Command, FlagValues } from "../command.ts";
import type { Globals } from "../globals.ts";
import { connectDaemon } from "../connect.ts";
import { createPrunePrinter } from "../format/prune.ts";
import { parseGoDuration } from "../format/units.ts";
import { toUsageInfo } from "./convert.ts";
import { FILTER_FLAG, filters, format, FORMAT_FLAG, render, VERBOSE_FLAG } from "./common.ts";
import { usageError } from "../../errors.ts";

/** The `prune` command. */
export function pruneCommand(): Command<Globals> {
  return {
    name: "prune",
    usage: "clean up build cache",
    flags: [
      {
        name: "keep-duration",
        kind: "string",
        usage: "Keep data newer than this limit",
        placeholder: "value",
      },
      {
        name: "keep-storage",
        kind: "string",
        usage: "Keep data below this limit (in MB)",
        placeholder: "value",
      },
      {
        name: "keep-storage-min",
        kind: "string",
        usage: "Always allow data above this limit (in MB)",
        placeholder: "value",
      },
      {
        name: "free-storage",
        kind: "string",
        usage: "Keep free data below this limit (in MB)",
        placeholder: "value",
      },
      FILTER_FLAG,
      { name: "all", kind: "bool", usage: "Include internal/frontend references" },
      VERBOSE_FLAG,
      FORMAT_FLAG,
    ],
    async action({ flags, globals }) {
      const req = {
        filter: filters(flags),
        all: flags["all"] === true,
        keepDuration: keepDuration(flags),
        reservedSpace: megabytes(flags, "keep-storage-min"),
        maxUsedSpace: megabytes(flags, "keep-storage"),
        minFreeSpace: megabytes(flags, "free-storage"),
      };
      const fmt = format(flags);
      const printer = createPrunePrinter({ verbose: flags["verbose"] === true, format: fmt });
      const client = await connectDaemon(globals);
      try {
        for await (const record of client.prune(req, globals.io.signal)) {
          const info = toUsageInfo(record);
          render(globals, fmt, () => printer.record(info));
        }
        render(globals, fmt, () => printer.end());
      } finally {
        client.close();
      }
    },
  };
}

function keepDuration(flags: FlagValues): bigint {
  const v = flags["keep-duration"];
  if (typeof v !== "string" || v === "") return 0n;
  try {
    return parseGoDuration(v);
  } catch {
    throw usageError(
      `invalid value "${v}" for flag --keep-duration: expected a duration such as 24h, 90m or 1h30m`,
    );
  }
}

/** A size in MB (float, as upstream) converted to bytes. */
function megabytes(flags: FlagValues, name: string): bigint {
  const v = flags[name];
  if (typeof v !== "string" || v === "") return 0n;
  if (!/^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(v.trim())) {
    throw usageError(
      `invalid value "${v}" for flag --${name}: expected a number of megabytes, e.g. 512 or 1.5`,
    );
  }
  const n = Number(v);
  if (!Number.isFinite(n)) {
    throw usageError(`invalid value "${v}" for flag --${name}: out of range`);
  }
  return BigInt(Math.trunc(n * 1e6));
}
