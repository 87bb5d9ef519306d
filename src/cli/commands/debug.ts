/** `buildctl debug workers|info`. @module */

import type { Command } from "../command.ts";
import type { Globals } from "../globals.ts";
import { connectDaemon } from "../connect.ts";
import { renderWorkers } from "../format/workers.ts";
import { renderInfo } from "../format/info.ts";
import { toBuildkitVersion, toWorkerInfo } from "./convert.ts";
import { filters, format, FORMAT_FLAG, render, VERBOSE_FLAG } from "./common.ts";

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
        async action({ flags, globals }) {
          const filter = filters(flags);
          const fmt = format(flags);
          const client = await connectDaemon(globals);
          try {
            const workers = (await client.listWorkers(filter)).map(toWorkerInfo);
            render(
              globals,
              fmt,
              () => renderWorkers(workers, { verbose: flags["verbose"] === true, format: fmt }),
            );
          } finally {
            client.close();
          }
        },
      },
      {
        name: "info",
        usage: "display internal information",
        flags: [FORMAT_FLAG],
        async action({ flags, globals }) {
          const fmt = format(flags);
          const client = await connectDaemon(globals);
          try {
            const res = await client.info();
            render(
              globals,
              fmt,
              () =>
                renderInfo({ BuildkitVersion: toBuildkitVersion(res.buildkitVersion) }, {
                  format: fmt,
                }),
            );
          } finally {
            client.close();
          }
        },
      },
    ],
  };
}
