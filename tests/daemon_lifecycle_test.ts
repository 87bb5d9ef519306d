/**
 * `buildctl daemon start|state|stop|reset|logs|doctor` as root against a
 * real buildkitd, inside a private mount namespace.
 *
 * @module
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
  createSandbox,
  type Sandbox,
  startedPid,
} from "./_util/daemon_ns.ts";

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

nsTest("daemon start/state/stop: lifecycle, text and JSON state", async (sb) => {
  const none = await sb.buildctl(["daemon", "state"]);
  assertEquals(none.code, 0, none.stderr);
  assertStringIncludes(
    none.stdout,
    "buildkitd is not running (the next command that needs it starts it)",
  );
  assertStringIncludes(none.stdout, "address:   unix:///run/buildkit/buildkitd.sock");

  const start = await sb.buildctl(["daemon", "start", "--", "--oci-worker-gc=false"]);
  assertEquals(start.code, 0, start.stderr);
  const pid = startedPid(start.stderr);
  assert(pid, start.stderr);

  const again = await sb.buildctl(["daemon", "start"]);
  assertEquals(again.code, 0, again.stderr);
  assertStringIncludes(
    again.stdout,
    `buildkitd is already running (pid ${pid}, root) at unix:///run/buildkit/buildkitd.sock`,
  );

  const text = await sb.buildctl(["daemon", "state"]);
  assertEquals(text.code, 0, text.stderr);
  assertStringIncludes(text.stdout, "buildkitd is running (root)");
  assertStringIncludes(text.stdout, `pid:           ${pid}`);
  assertMatch(text.stdout, /version: +v\d+\.\d+\.\d+/);
  assertMatch(text.stdout, /workers: +1 \(\w+: linux\/amd64/);
  assertStringIncludes(text.stdout, "active builds: 0");
  assertStringIncludes(text.stdout, "idle timeout:  none (runs until 'buildctl daemon stop')");
  assertStringIncludes(text.stdout, "extra flags:   --oci-worker-gc=false");
  assertStringIncludes(text.stdout, "log:           /var/lib/buildkit/buildkitd.log");
  assertStringIncludes(text.stdout, "last log lines:");
  assertStringIncludes(text.stdout, "running server on /run/buildkit/buildkitd.sock");

  const json = await sb.buildctl(["daemon", "state", "--format", "json"]);
  assertEquals(json.code, 0, json.stderr);
  const s = JSON.parse(json.stdout);
  assertEquals(s.running, true);
  assertEquals(s.managed, true);
  assertEquals(s.pid, pid);
  assertEquals(s.mode, "root");
  assertEquals(s.rootDir, "/var/lib/buildkit");
  assertEquals(s.startedBy, "start");
  assertEquals(s.idleTimeoutMs, 0);
  assertEquals(s.activeBuilds, 0);
  assertEquals(s.workers.length, 1);
  assert(s.uptimeMs >= 0);

  const stop = await sb.buildctl(["daemon", "stop"]);
  assertEquals(stop.code, 0, stop.stderr);
  assertMatch(stop.stdout, new RegExp(`^stopped buildkitd \\(pid ${pid}\\) in \\d+\\.\\ds\\n$`));
  assertEquals(await sb.pids("buildkitd"), []);
  const stopped = JSON.parse((await sb.buildctl(["daemon", "state", "--format", "json"])).stdout);
  assertEquals(stopped.running, false);
  const twice = await sb.buildctl(["daemon", "stop"]);
  assertEquals(twice.code, 0, twice.stderr);
  assertEquals(twice.stdout, "buildkitd is not running\n");

  // The next command starts it again, with the options of the last explicit start.
  const next = await sb.buildctl(["debug", "workers"]);
  assertEquals(next.code, 0, next.stderr);
  assert(startedPid(next.stderr), next.stderr);
  const rec = JSON.parse(await sb.read("/run/buildkit/buildctl.json"));
  assertEquals(rec.options.extraFlags, ["--oci-worker-gc=false"]);
});

nsTest("daemon start --root and --timeout; usage errors", async (sb) => {
  const bad = await sb.buildctl(["daemon", "start", "--timeout", "soon"]);
  assertEquals(bad.code, 2);
  assertStringIncludes(bad.stderr, 'invalid --timeout "soon"');
  const stray = await sb.buildctl(["daemon", "start", "--debug", "extra"]);
  assertEquals(stray.code, 2);
  assertStringIncludes(stray.stderr, 'pass buildkitd flags after "--"');

  const r = await sb.buildctl([
    "daemon",
    "start",
    "--root",
    "/var/lib/buildkit/alt",
    "--timeout",
    "10m",
    "--debug",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stderr, "logs: /var/lib/buildkit/alt/buildkitd.log");
  const s = JSON.parse((await sb.buildctl(["daemon", "state", "--format", "json"])).stdout);
  assertEquals(s.rootDir, "/var/lib/buildkit/alt");
  assertEquals(s.idleTimeoutMs, 600_000);
  assertEquals(s.supervisorRunning, true);
  assert(s.idleLeftMs > 590_000 && s.idleLeftMs <= 600_000, String(s.idleLeftMs));
  const text = (await sb.buildctl(["daemon", "state"])).stdout;
  assertMatch(text, /idle timeout: +10m0s; stops in \d+m\d+s if idle/);
  assertStringIncludes(await sb.read("/var/lib/buildkit/alt/buildkitd.log"), "level=debug");
});

nsTest("daemon logs prints the log; -n limits it; -f follows", async (sb) => {
  const missing = await sb.buildctl(["daemon", "logs"]);
  assertEquals(missing.code, 1);
  assertStringIncludes(missing.stderr, "no daemon log at /var/lib/buildkit/buildkitd.log yet");

  assertEquals((await sb.buildctl(["daemon", "start"])).code, 0);
  const all = await sb.buildctl(["daemon", "logs"]);
  assertEquals(all.code, 0, all.stderr);
  assertStringIncludes(all.stdout, "buildctl: starting buildkitd (start)");
  assertStringIncludes(all.stdout, "running server on /run/buildkit/buildkitd.sock");
  const two = await sb.buildctl(["daemon", "logs", "-n", "2"]);
  assertEquals(two.stdout.trimEnd().split("\n").length, 2);

  const follow = sb.spawnBuildctl(["daemon", "logs", "-f", "-n", "0"], { timeoutMs: 4000 });
  await new Promise((r) => setTimeout(r, 1500));
  await sb.sh("echo 'appended line for the follow test' >> /var/lib/buildkit/buildkitd.log");
  const out = await follow.done; // killed by the timeout
  assertStringIncludes(out.stdout, "appended line for the follow test");
});

nsTest(
  "daemon reset: asks, refuses without a terminal, wipes with --force and starts fresh",
  async (sb) => {
    const first = await sb.buildctl(["debug", "workers"]);
    assertEquals(first.code, 0, first.stderr);
    const pid = startedPid(first.stderr)!;
    await sb.sh("echo cache > /var/lib/buildkit/marker");

    const refused = await sb.buildctl(["daemon", "reset"], { stdin: "y\n" });
    assertEquals(refused.code, 2);
    assertStringIncludes(
      refused.stderr,
      'refusing to delete "/var/lib/buildkit" without confirmation',
    );
    assertStringIncludes(refused.stderr, "hint: pass --force");
    assertEquals(await sb.pids("buildkitd"), [pid]);

    const reset = await sb.buildctl(["daemon", "reset", "--force"]);
    assertEquals(reset.code, 0, reset.stderr);
    assertStringIncludes(reset.stderr, `stopped buildkitd (pid ${pid})`);
    assertStringIncludes(reset.stderr, "deleted /var/lib/buildkit");
    const pid2 = startedPid(reset.stderr);
    assert(pid2 && pid2 !== pid, reset.stderr);
    assertEquals(await sb.read("/var/lib/buildkit/marker"), "");
    assertEquals(await sb.pids("buildkitd"), [pid2]);
    const r = await sb.buildctl(["debug", "workers"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stderr, "");
  },
);

nsTest("daemon doctor: every check, and the fix for a missing buildkitd", async (sb) => {
  const ok = await sb.buildctl(["daemon", "doctor"]);
  assertEquals(ok.code, 0, ok.stdout + ok.stderr);
  assertStringIncludes(
    ok.stdout,
    'buildctl daemon doctor: root daemon for user "root" at unix:///run/buildkit/buildkitd.sock',
  );
  for (
    const name of [
      "buildkitd",
      "privileges",
      "runc",
      "snapshotter",
      "cgroups",
      "socket",
      "state dir",
      "daemon",
    ]
  ) {
    assertMatch(ok.stdout, new RegExp(`^  (ok  |warn)  ${name} `, "m"), name);
  }
  assertMatch(ok.stdout, /no problems found/);

  const broken = await sb.buildctl(["daemon", "doctor"], { env: { PATH: "/usr/bin:/bin" } });
  assertEquals(broken.code, 1);
  assertMatch(broken.stdout, /^ {2}FAIL {2}buildkitd +not found \(looked in \/usr\/bin, \/bin/m);
  assertMatch(broken.stdout, /fix: download buildkit-v[\d.]+\.linux-amd64\.tar\.gz/);
  assertMatch(broken.stdout, /\d+ problems? found/);

  const json = JSON.parse((await sb.buildctl(["daemon", "doctor", "--format", "json"])).stdout);
  assertEquals(json.mode, "root");
  assertEquals(json.failures, 0);
});
