/**
 * Global flags (accepted before or after the command, as upstream) and the
 * options they resolve to.
 *
 * @module
 */

import type { Flag, FlagValues } from "./command.ts";
import type { Io } from "./io.ts";
import { usageError } from "../errors.ts";

/** Global flags, spelled as upstream buildctl spells them. */
export const GLOBAL_FLAGS: Flag[] = [
  { name: "debug", kind: "bool", usage: "enable debug output in logs" },
  {
    name: "addr",
    kind: "string",
    usage: "buildkitd address",
    defaultText: '"unix:///run/buildkit/buildkitd.sock"',
    env: "BUILDKIT_HOST",
    placeholder: "value",
  },
  {
    name: "log-format",
    kind: "string",
    usage: "log formatter: json or text",
    defaultText: '"text"',
  },
  {
    name: "tlsservername",
    kind: "string",
    usage: "buildkitd server name for certificate validation",
  },
  { name: "tlscacert", kind: "string", usage: "CA certificate for validation" },
  { name: "tlscert", kind: "string", usage: "client certificate" },
  { name: "tlskey", kind: "string", usage: "client key" },
  {
    name: "tlsdir",
    kind: "string",
    usage:
      "directory containing CA certificate, client certificate, and client key. Supported file names are (ca.pem, cert.pem, key.pem) or (ca.crt, tls.crt, tls.key)",
  },
  {
    name: "timeout",
    kind: "string",
    usage: "timeout backend connection after value seconds",
    defaultText: "5",
  },
  { name: "wait", kind: "bool", usage: "block RPCs until the connection becomes available" },
];

/** Resolved global options. */
export interface Globals {
  io: Io;
  debug: boolean;
  logFormat: "text" | "json";
  /** `--addr` as given, if given. */
  addr: string | undefined;
  tlsServerName: string | undefined;
  tlsCaCert: string | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsDir: string | undefined;
  /** Connection timeout in seconds; 0 disables it. */
  timeoutSeconds: number;
  wait: boolean;
}

/** Turns parsed global flag values into {@linkcode Globals}. */
export function resolveGlobals(values: FlagValues, io: Io): Globals {
  const str = (k: string) => {
    const v = values[k];
    return typeof v === "string" && v !== "" ? v : undefined;
  };
  const logFormat = str("log-format") ?? "text";
  if (logFormat !== "text" && logFormat !== "json") {
    throw usageError(
      `unsupported log type "${logFormat}" for --log-format`,
      'use "text" or "json"',
    );
  }
  const timeoutText = str("timeout") ?? "5";
  if (!/^\d+$/.test(timeoutText)) {
    throw usageError(`invalid value "${timeoutText}" for flag --timeout: expected whole seconds`);
  }
  return {
    io,
    debug: values["debug"] === true,
    logFormat,
    addr: str("addr"),
    tlsServerName: str("tlsservername"),
    tlsCaCert: str("tlscacert"),
    tlsCert: str("tlscert"),
    tlsKey: str("tlskey"),
    tlsDir: str("tlsdir"),
    timeoutSeconds: Number(timeoutText),
    wait: values["wait"] === true,
  };
}
