/**
 * Test harness: a real buildkitd (runc worker) in a temporary root, on a
 * temporary socket. Its log is kept and printed when a test fails; it is
 * always stopped, even on failure.
 *
 * @module
 */

import { join } from "node:path";
import { BUILDKITD, TEST_PATH } from "./paths.ts";

/** A running test daemon. */
export interface TestDaemon {
  /** `unix://…` address of its socket. */
  addr: string;
  socket: string;
  /** Its `--root`. */
  root: string;
  /** Temp dir holding everything of this daemon. */
  dir: string;
  logPath: string;
  pid: number;
  /** The log so far. */
  log(): string;
  /** Stops it (SIGTERM, then SIGKILL) and removes its temp dir. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startDaemon}. */
export interface StartDaemonOptions {
  /** Extra buildkitd flags. */
  flags?: string[];
  /** How long to wait for the socket (ms). */
  readyTimeoutMs?: number;
}

/** Starts a real buildkitd and waits until its socket answers. */
export async function startDaemon(opts: StartDaemonOptions = {}): Promise<TestDaemon> {
  const dir = await Deno.makeTempDir({ prefix: "bkt-" });
  const root = join(dir, "root");
  const socket = join(dir, "buildkitd.sock");
  const logPath = join(dir, "buildkitd.log");
  const log = await Deno.open(logPath, { write: true, create: true, truncate: true });
  const child = new Deno.Command(BUILDKITD, {
    args: [
      "--root",
      root,
      "--addr",
      `unix://${socket}`,
      "--oci-worker-gc=false",
      ...(opts.flags ?? []),
    ],
    env: { PATH: TEST_PATH, HOME: Deno.env.get("HOME") ?? "/root" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Copy both output streams into the log file.
  const sink = log.writable.getWriter();
  const pump = async (rs: ReadableStream<Uint8Array>) => {
    for await (const chunk of rs) await sink.write(chunk);
  };
  const pumps = Promise.allSettled([pump(child.stdout), pump(child.stderr)]).finally(() =>
    sink.close().catch(() => {})
  );
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  const readLog = () => {
    try {
      return Deno.readTextFileSync(logPath);
    } catch {
      return "";
    }
  };
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const t = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await status;
      clearTimeout(t);
    }
    await pumps;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (exited) {
      const text = readLog();
      await stop();
      throw new Error(`buildkitd exited during start-up; log:\n${text}`);
    }
    try {
      const conn = await Deno.connect({ transport: "unix", path: socket });
      conn.close();
      break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      const text = readLog();
      await stop();
      throw new Error(`buildkitd did not listen on ${socket} in time; log:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    addr: `unix://${socket}`,
    socket,
    root,
    dir,
    logPath,
    pid: child.pid,
    log: readLog,
    stop,
  };
}

/**
 * Defines a test that gets its own real daemon; prints the daemon's log when
 * the test fails and always stops the daemon.
 */
export function daemonTest(
  name: string,
  fn: (t: Deno.TestContext, d: TestDaemon) => Promise<void>,
  opts: StartDaemonOptions & { ignore?: boolean } = {},
): void {
  Deno.test({
    name,
    ignore: opts.ignore ?? false,
    async fn(t) {
      const d = await startDaemon(opts);
      try {
        await fn(t, d);
      } catch (err) {
        console.error(`--- buildkitd log (${d.logPath}) ---\n${d.log()}\n--- end of log ---`);
        throw err;
      } finally {
        await d.stop();
      }
    },
  });
}
