/** `buildctl prune`: remove build cache, streaming what was deleted (the action is in `control_actions.ts`). @module */

import type { Command } from "../command.ts";
import type { Globals } from "../globals.ts";
import { FILTER_FLAG, FORMAT_FLAG, VERBOSE_FLAG } from "./common.ts";

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
    action: async (inv) => (await import("./control_actions.ts")).runPrune(inv),
  };
}
