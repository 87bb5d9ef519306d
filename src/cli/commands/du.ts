/** `buildctl du`: disk usage of the build cache. @module */

import type { Command } from "../command.ts";
import type { Globals } from "../globals.ts";
import { connectDaemon } from "../connect.ts";
import { renderDu } from "../format/du.ts";
import { toUsageInfo } from "./convert.ts";
import { FILTER_FLAG, filters, format, FORMAT_FLAG, render, VERBOSE_FLAG } from "./common.ts";

/** The `du` command. */
export function duCommand(): Command<Globals> {
  return {
    name: "du",
    usage: "disk usage",
    flags: [FILTER_FLAG, VERBOSE_FLAG, FORMAT_FLAG],
    async action({ flags, globals }) {
      const filter = filters(flags);
      const fmt = format(flags);
      const client = await connectDaemon(globals);
      try {
        const records = (await client.diskUsage({ filter })).map(toUsageInfo);
        render(
          globals,
          fmt,
          () => renderDu(records, { verbose: flags["verbose"] === true, format: fmt, filter }),
        );
      } finally {
        client.close();
      }
    },
  };
}
