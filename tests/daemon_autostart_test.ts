/**
 * Automatic start of the daemon at the default address, as root, with a
 * real buildkitd, inside a private mount namespace (its own /run and
 * /var/lib/buildkit): first start, the 20-way race, kill -9 recovery, stale
 * files, missing buildkitd, broken daemon flags, a start that hangs, and an
 * explicit non-default address.
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
  shellQuote,
  startedPid,
} from "./_util/daemon_ns.ts";
import { buildctlCommand } from "./_util/run.ts";

/** Runs `fn` with a fresh sandbox and always disposes it; prints daemon logs on failure. */
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

nsTest("auto-start: a command with no daemon starts one as root and uses it", async (sb) => {
  const r = await sb.buildctl(["debug", "workers"]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "linux/amd64");
  const pid = startedPid(r.stderr);
  assert(pid, `no "started buildkitd" line in: ${r.stderr}`);
  assertMatch(
    r.stderr,
    /started buildkitd \(pid \d+, root\) in \d+\.\ds; logs: \/var\/lib\/buildkit\/buildkitd\.log/,
  );
  assertEquals(r.stderr.trim().split("\n").length, 1, "exactly one line on stderr");

  // The daemon outlives the command and serves the next one silently.
  const again = await sb.buildctl(["debug", "workers"]);
  assertEquals(again.code, 0, again.stderr);
  assertEquals(again.stderr, "");
  assertEquals(await sb.pids("buildkitd"), [pid]);
  // Its own session (setsid), not the command's.
  const sid = (await sb.sh(`cut -d' ' -f6 /proc/${pid}/stat`)).stdout.trim();
  assertEquals(Number(sid), pid);
  assertStringIncludes(await sb.read("/var/lib/buildkit/buildkitd.log"), "running server on");
});

nsTest("auto-start: 20 commands at once start exactly one daemon and all succeed", async (sb) => {
  const runs = Array.from({ length: 20 }, () => sb.spawnBuildctl(["debug", "workers"]).done);
  const results = await Promise.all(runs);
  for (const r of results) assertEquals(r.code, 0, r.stderr);
  const starters = results.filter((r) => startedPid(r.stderr) !== undefined);
  assertEquals(starters.length, 1, "exactly one command started the daemon");
  assertEquals((await sb.pids("buildkitd")).length, 1);
  const ms = results.map((r) => r.ms).sort((a, b) => a - b);
  const p95 = ms[Math.ceil(0.95 * ms.length) - 1]!;
  console.log(
    `20-way race: p50 ${ms[9]!.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms, max ${
      ms[19]!.toFixed(0)
    } ms`,
  );
});

nsTest("auto-start: after kill -9 of the daemon the next command starts a new one", async (sb) => {
  const first = await sb.buildctl(["debug", "workers"]);
  assertEquals(first.code, 0, first.stderr);
  const pid = startedPid(first.stderr)!;
  const rec = JSON.parse(await sb.read("/run/buildkit/buildctl.json"));
  // Kill the daemon and its idle supervisor without any chance to clean up.
  await sb.sh(`kill -9 ${pid} ${rec.supervisor?.pid ?? ""}`);
  for (let i = 0; i < 50 && (await sb.pids("buildkitd")).length; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  // The socket, record, pid stamps and lock files are all left behind.
  assertStringIncludes((await sb.sh("ls /run/buildkit")).stdout, "buildkitd.sock");

  const second = await sb.buildctl(["debug", "workers"]);
  assertEquals(second.code, 0, second.stderr);
  const pid2 = startedPid(second.stderr);
  assert(pid2 && pid2 !== pid, second.stderr);
  assertEquals(await sb.pids("buildkitd"), [pid2]);
});

nsTest(
  "auto-start: stale socket, lock, record from another boot and a foreign pid never block",
  async (sb) => {
    // A stale socket file (bound, then its process exited), a lock file naming a
    // dead pid, and a record whose pid is a live process of this boot with the
    // wrong start time, or of another boot.
    const holderStat = (await sb.sh(`cat /proc/${sb.holderPid}/stat`)).stdout;
    const startTime = Number(holderStat.slice(holderStat.lastIndexOf(")") + 2).split(" ")[19]);
    const record = (bootId: string, st: number) =>
      JSON.stringify({
        format: 1,
        status: "running",
        mode: "root",
        daemon: { pid: sb.holderPid, startTime: st, bootId },
        address: "unix:///run/buildkit/buildkitd.sock",
        socketPath: "/run/buildkit/buildkitd.sock",
        logPath: "/var/lib/buildkit/buildkitd.log",
        argv: [],
        options: {
          rootDir: "/var/lib/buildkit",
          extraFlags: [],
          debug: false,
          idleTimeoutMs: 0,
          idleTimeoutExplicit: false,
        },
        startedBy: "auto",
        startedAt: 0,
      });
    for (
      const rec of [
        record("00000000-0000-0000-0000-000000000000", startTime),
        record("", startTime + 1),
      ]
    ) {
      await sb.sh(
        `python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("/run/buildkit/buildkitd.sock")' && ` +
          `echo 999999 > /run/buildkit/buildctl.lock && printf %s ${
            shellQuote(rec)
          } > /run/buildkit/buildctl.json`,
      );
      const t0 = performance.now();
      const r = await sb.buildctl(["debug", "workers"], {
        env: { BUILDCTL_DAEMON_START_TIMEOUT: "20s" },
      });
      assertEquals(r.code, 0, r.stderr);
      assert(startedPid(r.stderr), r.stderr);
      // It did not wait for the "live" pid in the record.
      assert(performance.now() - t0 < 10_000, `took ${performance.now() - t0} ms`);
      const stop = await sb.buildctl(["daemon", "stop"]);
      assertEquals(stop.code, 0, stop.stderr);
    }
  },
);

nsTest("auto-start: missing buildkitd says where it looked and how to install it", async (sb) => {
  const r = await sb.buildctl(["debug", "workers"], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
  });
  assertEquals(r.code, 69, r.stderr);
  assertStringIncludes(r.stderr, "error: cannot start the daemon: buildkitd not found");
  assertStringIncludes(r.stderr, "looked in: /usr/sbin, /usr/bin, /sbin, /bin");
  assertMatch(
    r.stderr,
    /hint: install BuildKit v\d+\.\d+\.\d+: download buildkit-v.*github\.com\/moby\/buildkit\/releases/,
  );
});

nsTest("auto-start: root without CAP_SYS_ADMIN is told why, and nothing starts", async (sb) => {
  // uid 0 with CAP_SYS_ADMIN dropped from the bounding set (a restricted container).
  const argv = [...buildctlCommand(), "debug", "workers"].map(shellQuote).join(" ");
  const r = await sb.sh(`exec setpriv --bounding-set=-sys_admin --inh-caps=-sys_admin ${argv}`);
  assertEquals(r.code, 69, r.stderr);
  assertStringIncludes(r.stderr, "error: cannot start the daemon as root:");
  assertStringIncludes(r.stderr, "running as uid 0 without CAP_SYS_ADMIN");
  assertStringIncludes(r.stderr, "hint: run 'buildctl daemon doctor' for every check");
  assertEquals(await sb.pids("buildkitd"), []);
});

nsTest("auto-start: a daemon that exits during start-up reports the log tail", async (sb) => {
  // Broken daemon flags through `daemon start -- …`.
  const r = await sb.buildctl(["daemon", "start", "--", "--no-such-flag"]);
  assertEquals(r.code, 69, r.stderr);
  assertMatch(
    r.stderr,
    /error: buildkitd exited during start-up \(exit status \d+\) after \d+\.\ds/,
  );
  assertStringIncludes(r.stderr, "last ");
  assertStringIncludes(r.stderr, "no-such-flag");
  assertStringIncludes(r.stderr, "log: /var/lib/buildkit/buildkitd.log");
  assertEquals(await sb.pids("buildkitd"), []);
  // The broken flags are not kept: the next command starts a working daemon.
  const ok = await sb.buildctl(["debug", "workers"]);
  assertEquals(ok.code, 0, ok.stderr);
});

nsTest(
  "auto-start: a daemon that never answers fails within the configured timeout",
  async (sb) => {
    const dir = "/run/fakebin";
    await sb.sh(
      `mkdir -p ${dir} && printf '#!/bin/sh\\necho "fake buildkitd: hanging"\\nexec sleep 600\\n' > ${dir}/buildkitd && chmod +x ${dir}/buildkitd`,
    );
    const r = await sb.buildctl(["debug", "workers"], {
      env: { PATH: `${dir}:/usr/sbin:/usr/bin:/sbin:/bin`, BUILDCTL_DAEMON_START_TIMEOUT: "2s" },
    });
    assertEquals(r.code, 69, r.stderr);
    assert(r.ms < 10_000, `took ${r.ms} ms`);
    assertStringIncludes(r.stderr, "error: buildkitd did not answer within 2s");
    assertStringIncludes(r.stderr, "fake buildkitd: hanging");
    assertStringIncludes(r.stderr, "log: /var/lib/buildkit/buildkitd.log");
    assertEquals(await sb.pids("sleep"), [], "the hung daemon was killed");
  },
);

nsTest("auto-start: an explicit non-default address gets the dial error and a hint", async (sb) => {
  const r = await sb.buildctl(["--addr", "unix:///run/nothing/here.sock", "debug", "workers"]);
  assertEquals(r.code, 69, r.stderr);
  assertStringIncludes(r.stderr, "cannot connect to buildkitd at unix:///run/nothing/here.sock");
  assertStringIncludes(r.stderr, "automatic start applies only to the default address");
  assertEquals(await sb.pids("buildkitd"), []);
  const env = await sb.buildctl(["debug", "workers"], {
    env: { BUILDKIT_HOST: "unix:///run/nothing/here.sock" },
  });
  assertEquals(env.code, 69, env.stderr);
  assertStringIncludes(env.stderr, "BUILDKIT_HOST");
  assertEquals(await sb.pids("buildkitd"), []);
});
