/** A cheap liveness check of a unix socket (no gRPC, loads nothing). @module */

/**
 * Checks that something accepts on a unix socket. Returns undefined when it
 * does, else the reason in words.
 */
export async function probeUnixSocket(path: string): Promise<string | undefined> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) throw err;
    return describeConnectError(err);
  }
}

/** Whether something accepts connections on the unix socket `path`. */
export async function answers(path: string): Promise<boolean> {
  try {
    return (await probeUnixSocket(path)) === undefined;
  } catch {
    return false;
  }
}

/** Why connecting to a socket failed, in words. */
export function describeConnectError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such socket";
  if (err instanceof Deno.errors.ConnectionRefused) {
    return "connection refused (nothing is listening)";
  }
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  return err instanceof Error ? err.message : String(err);
}
