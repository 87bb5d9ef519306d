/**
 * Flags of `daemon start` for a grant (`--allow-user`, `--entitlements`)
 * and the hidden install overrides that `daemon start` and `daemon revoke`
 * share.
 *
 * @module
 */

import type { Flag, FlagValues } from "../command.ts";
import type { InstallOverrides } from "../../daemon/grant.ts";
import { VALID_ENTITLEMENTS } from "../../launcher/config.ts";

/** Flags `daemon start` needs for a grant, and `daemon revoke` for the overrides. */
export const GRANT_FLAGS: Flag[] = [
  {
    name: "allow-user",
    kind: "list",
    usage:
      "grant USER[,USER...] (names or uids) passwordless use of a root daemon through the launcher (needs sudo)",
    placeholder: "value",
  },
  {
    name: "entitlements",
    kind: "string",
    usage: `entitlements granted with --allow-user: ${VALID_ENTITLEMENTS.join(", ")}`,
    placeholder: "value",
  },
];

/** Hidden flags that move the install (tests use them); honoured only in this root-run command. */
export const INSTALL_OVERRIDE_FLAGS: Flag[] = [
  { name: "launcher-prefix", kind: "string", usage: "install prefix", hidden: true },
  { name: "launcher-config", kind: "string", usage: "config path", hidden: true },
  { name: "launcher-run-dir", kind: "string", usage: "run directory", hidden: true },
  { name: "launcher-log-dir", kind: "string", usage: "log directory", hidden: true },
  { name: "launcher-sudoers", kind: "string", usage: "sudoers drop-in path", hidden: true },
];

/** Reads the hidden override flags. */
export function overridesFromFlags(flags: FlagValues): InstallOverrides {
  const s = (k: string) => {
    const v = flags[k];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const o: InstallOverrides = {};
  const prefix = s("launcher-prefix");
  if (prefix) o.prefix = prefix;
  const config = s("launcher-config");
  if (config) o.config = config;
  const runDir = s("launcher-run-dir");
  if (runDir) o.runDir = runDir;
  const logDir = s("launcher-log-dir");
  if (logDir) o.logDir = logDir;
  const sudoers = s("launcher-sudoers");
  if (sudoers) o.sudoers = sudoers;
  return o;
}
