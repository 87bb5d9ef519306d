/**
 * The idle timeout (root, real buildkitd, private mount namespace): it
 * never fires while a build runs (a `RUN sleep` longer than the timeout),
 * fires within timeout + 5 s after the last activity, counts short commands
 * as activity, and the next command starts the daemon again transparently.
 *
 * @module
 */

import { join } from "node:path";
import {
  assert,
  assertEquals,
  assertStringIncludes,
  createSandbox,
  type Sandbox,
  startedPid,
} from "./_util/daemon_ns.ts";
import { busyboxArgs } from "./_util/busybox.ts";

function nsTest(name: string, fn: (sb: Sandbox) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const sb = await createSandbox();
      try {
        await fn(sb);
      } catch (err) {
        console.error(`--- buildkitd.log ---\n${await sb.read("/var/lib/buildkit/buildkitd.log")}`);
        throw err;
      } finally {
        await sb.dispose();
      }
    },
  });
}

async function waitGone(sb: Sandbox, pid: number, limitMs: number): Promise<number> {
  const t0 = Date.now();
  while ((await sb.pids("buildkitd")).includes(pid)) {
    if (Date.now() - t0 > limitMs) {
      throw new Error(`buildkitd (pid ${pid}) still runs after ${limitMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return Date.now() - t0;
}

nsTest(
  "idle: no stop during a RUN sleep longer than the timeout; stop soon after it ends",
  async (sb) => {
    const ctx = await Deno.makeTempDir({ prefix: "idle-ctx-" });
    try {
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        "FROM busybox\nRUN sleep 9 && echo slept\n",
      );
      const start = await sb.buildctl(["daemon", "start", "--timeout", "3s"]);
      assertEquals(start.code, 0, start.stderr);
      const pid = startedPid(start.stderr)!;

      const build = sb.spawnBuildctl([
        "build",
        "--progress",
        "plain",
        "--frontend",
        "dockerfile.v0",
        "--local",
        `context=${ctx}`,
        "--local",
        `dockerfile=${ctx}`,
        ...(await busyboxArgs()),
      ]);
      // Well past the timeout, mid-build: still there.
      await new Promise((r) => setTimeout(r, 7000));
      assertEquals(await sb.pids("buildkitd"), [pid], "stopped during the build");
      const b = await build.done;
      assertEquals(b.code, 0, b.stderr);
      assertStringIncludes(b.stderr, "slept");
      const buildEnd = Date.now();

      const waited = await waitGone(sb, pid, 3000 + 5000 + 2000);
      const after = Date.now() - buildEnd;
      console.log(`idle stop ${after} ms after the build ended (timeout 3 s); waited ${waited} ms`);
      assert(after >= 2500, `stopped too early: ${after} ms after the last activity`);
      assert(after <= 3000 + 5000, `stopped too late: ${after} ms after the last activity`);
      assertStringIncludes(
        await sb.read("/var/lib/buildkit/buildkitd.log"),
        `stopping idle buildkitd (pid ${pid})`,
      );
      const s = JSON.parse((await sb.buildctl(["daemon", "state", "--format", "json"])).stdout);
      assertEquals(s.running, false);

      // Transparent restart.
      const next = await sb.buildctl(["debug", "workers"]);
      assertEquals(next.code, 0, next.stderr);
      assert(startedPid(next.stderr), next.stderr);
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

nsTest("idle: short commands count as activity", async (sb) => {
  const start = await sb.buildctl(["daemon", "start", "--timeout", "4s"]);
  assertEquals(start.code, 0, start.stderr);
  const pid = startedPid(start.stderr)!;
  let last = Date.now();
  const until = Date.now() + 9000;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 1500));
    const r = await sb.buildctl(["debug", "workers"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stderr, "", "no restart while commands keep coming");
    last = Date.now();
  }
  assertEquals(await sb.pids("buildkitd"), [pid]);
  await waitGone(sb, pid, 4000 + 5000 + 2000);
  const after = Date.now() - last;
  assert(after >= 3000 && after <= 9000, `stopped ${after} ms after the last command`);
});
