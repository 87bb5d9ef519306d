/** `buildctl du`: disk usage of the build cache (the action is in `control_actions.ts`). @module */

import type { Command } from "../command.ts";
import type { Globals } from "../globals.ts";
import { FILTER_FLAG, FORMAT_FLAG, VERBOSE_FLAG } from "./common.ts";

/** The `du` command. */
export function duCommand(): Command<Globals> {
  return {
    name: "du",
    usage: "disk usage",
    flags: [FILTER_FLAG, VERBOSE_FLAG, FORMAT_FLAG],
    action: async (inv) => (await import("./control_actions.ts")).runDu(inv),
  };
}
