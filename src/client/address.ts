/**
 * Daemon addresses: parsing `unix://` and `tcp://` URLs, and the default
 * address upstream buildctl uses on Linux.
 *
 * @module
 */

import { usageError } from "../errors.ts";

/** The address upstream buildctl dials when neither `--addr` nor `BUILDKIT_HOST` is set. */
export const DEFAULT_ADDRESS = "unix:///run/buildkit/buildkitd.sock";

/** A parsed daemon address. */
export type Address =
  | { scheme: "unix"; path: string; url: string }
  | { scheme: "tcp"; host: string; port: number; url: string };

/** Longest unix socket path the kernel accepts (sun_path is 108 bytes incl. NUL). */
const MAX_UNIX_PATH = 107;

/**
 * Parses a daemon address.
 *
 * @throws {BuildctlError} naming the value when it is malformed or uses an unsupported scheme.
 */
export function parseAddress(url: string): Address {
  const bad = (why: string) =>
    usageError(
      `invalid --addr "${url}": ${why}`,
      'use "unix:///path/to/buildkitd.sock" or "tcp://host:port"',
    );
  const m = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/.exec(url);
  if (!m) throw bad("expected a URL such as unix:///run/buildkit/buildkitd.sock");
  const [, scheme, rest] = m as unknown as [string, string, string];
  if (scheme === "unix") {
    if (!rest.startsWith("/")) throw bad("the socket path must be absolute");
    if (new TextEncoder().encode(rest).length > MAX_UNIX_PATH) {
      throw bad(`the socket path is longer than ${MAX_UNIX_PATH} bytes`);
    }
    return { scheme: "unix", path: rest, url };
  }
  if (scheme === "tcp") {
    const hp = /^(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+):(\d{1,5})\/?$/.exec(rest);
    if (!hp) throw bad("expected tcp://host:port");
    const port = Number(hp[2]);
    if (port < 1 || port > 65535) throw bad(`port ${hp[2]} is out of range`);
    return { scheme: "tcp", host: hp[1]!.replace(/^\[|\]$/g, ""), port, url };
  }
  throw bad(`unsupported scheme "${scheme}://" (this buildctl speaks unix:// and tcp://)`);
}

/** Whether the address is given explicitly (flag or environment), or is the default. */
export interface ResolvedAddress {
  address: Address;
  /** True when neither `--addr` nor `BUILDKIT_HOST` named it. */
  isDefault: boolean;
  /** Where it came from, for messages. */
  source: "--addr" | "BUILDKIT_HOST" | "default";
}

/** Resolves the address from the flag, then `BUILDKIT_HOST`, then the default. */
export function resolveAddress(
  flag: string | undefined,
  env: (name: string) => string | undefined,
  fallback: string = DEFAULT_ADDRESS,
): ResolvedAddress {
  if (flag !== undefined && flag !== "") {
    return { address: parseAddress(flag), isDefault: false, source: "--addr" };
  }
  const fromEnv = env("BUILDKIT_HOST");
  if (fromEnv) return { address: parseAddress(fromEnv), isDefault: false, source: "BUILDKIT_HOST" };
  return { address: parseAddress(fallback), isDefault: true, source: "default" };
}
