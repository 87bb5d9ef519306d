/**
 * Connecting a command to the daemon from the global flags: address
 * resolution, TLS files, `--timeout`, `--wait`, and automatic start of the
 * daemon when the address is the default one and nothing answers.
 *
 * @module
 */

import { join } from "../path.ts";
import type { BuildkitClient, TlsFiles } from "../client/mod.ts";
import { resolveAddress } from "../client/address.ts";
import { BuildctlError, ExitCode } from "../errors.ts";
import type { Globals } from "./globals.ts";

/** Resolves `--tlsdir` or the three TLS flags into file paths. */
export function tlsFiles(g: Globals): TlsFiles {
  if (g.tlsDir) {
    if (g.tlsCaCert || g.tlsCert || g.tlsKey) {
      throw new BuildctlError(
        "cannot specify tlsdir and tlscacert/tlscert/tlskey at the same time",
        {
          exitCode: ExitCode.Usage,
        },
      );
    }
    const oneOf = (a: string, b: string) => {
      for (const name of [a, b]) {
        const p = join(g.tlsDir!, name);
        try {
          Deno.statSync(p);
          return p;
        } catch { /* next */ }
      }
      throw new BuildctlError(
        `--tlsdir "${g.tlsDir}" did not contain one of the needed files: ${a} or ${b}`,
        { exitCode: ExitCode.Usage },
      );
    };
    return {
      caCert: oneOf("ca.pem", "ca.crt"),
      cert: oneOf("cert.pem", "tls.crt"),
      key: oneOf("key.pem", "tls.key"),
      serverName: g.tlsServerName,
    };
  }
  return { caCert: g.tlsCaCert, cert: g.tlsCert, key: g.tlsKey, serverName: g.tlsServerName };
}

/** Hook that starts a daemon for the default address; set by the daemon module. */
export type AutoStart = (g: Globals) => Promise<string | undefined>;

let autoStartHook: AutoStart | undefined;

/** Installs the automatic-start hook (see `daemon/`). */
export function setAutoStart(hook: AutoStart | undefined): void {
  autoStartHook = hook;
}

/** Connects to the daemon the global flags name. */
export async function connectDaemon(g: Globals): Promise<BuildkitClient> {
  const resolved = resolveAddress(g.addr, g.io.env);
  let address = resolved.address;
  const tls = tlsFiles(g);
  const timeoutMs = g.timeoutSeconds * 1000;
  if (resolved.isDefault && autoStartHook) {
    const started = await autoStartHook(g);
    if (started) address = resolveAddress(started, () => undefined).address;
  }
  // gRPC (the heaviest import) is loaded only by commands that talk to the daemon.
  const { connect } = await import("../client/mod.ts");
  try {
    return await connect({ address, tls, timeoutMs, wait: g.wait, signal: g.io.signal });
  } catch (err) {
    if (
      err instanceof BuildctlError && err.exitCode === ExitCode.Unavailable && !resolved.isDefault
    ) {
      throw new BuildctlError(err.message, {
        exitCode: err.exitCode,
        cause: err.cause,
        hint: `${err.hint ?? ""}${
          err.hint ? "; " : ""
        }automatic start applies only to the default address (${resolved.source} was set)`,
      });
    }
    throw err;
  }
}
