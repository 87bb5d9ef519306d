/**
 * The command tree of buildctl: upstream's commands and flags, plus
 * `daemon` for the daemon's lifecycle.
 *
 * @module
 */

import type { Command } from "./command.ts";
import { GLOBAL_FLAGS, type Globals } from "./globals.ts";
import { duCommand } from "./commands/du.ts";
import { pruneCommand } from "./commands/prune.ts";
import { debugCommand } from "./commands/debug.ts";
import { buildCommand } from "./commands/build_command.ts";
import { daemonCommand, installAutoStart } from "./commands/daemon.ts";

/** Builds the root command. */
export function buildApp(): Command<Globals> {
  installAutoStart();
  return {
    name: "buildctl",
    usage: "build utility (buildctl for Deno: starts buildkitd when needed)",
    flags: GLOBAL_FLAGS,
    subcommands: [duCommand(), pruneCommand(), buildCommand(), debugCommand(), daemonCommand()],
  };
}
