/** `buildctl debug workers|info` (the actions are in `control_actions.ts`). @module */

import type { Command } from "../command.ts";
import type { Globals } from "../globals.ts";
import { FORMAT_FLAG, VERBOSE_FLAG } from "./common.ts";

/** The `debug` command group. */
export function debugCommand(): Command<Globals> {
  return {
    name: "debug",
    usage: "debug utilities",
    subcommands: [
      {
        name: "workers",
        usage: "list workers",
        flags: [
          {
            name: "filter",
            short: "f",
            kind: "list",
            usage: "containerd-style filter string slice",
          },
          VERBOSE_FLAG,
          FORMAT_FLAG,
        ],
        action: async (inv) => (await import("./control_actions.ts")).runWorkers(inv),
      },
      {
        name: "info",
        usage: "display internal information",
        flags: [FORMAT_FLAG],
        action: async (inv) => (await import("./control_actions.ts")).runInfo(inv),
      },
    ],
  };
}
