/**
 * Rootless automatic start as a real unprivileged user (created with
 * useradd, with a subuid/subgid range), inside a private mount namespace
 * with its own /run, /var/lib and /home.
 *
 * @module
 */

import { join } from "node:path";
import { busyboxArgs, busyboxRootfs } from "./_util/busybox.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
  createSandbox,
  type Sandbox,
  type SandboxOptions,
  startedPid,
  TEST_USER,
} from "./_util/daemon_ns.ts";

const LOG = `/home/${TEST_USER}/.local/share/buildkit/buildkitd.log`;

function nsTest(
  name: string,
  fn: (sb: Sandbox) => Promise<void>,
  opts: SandboxOptions = { user: true },
): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const sb = await createSandbox(opts);
      try {
        await fn(sb);
      } catch (err) {
        console.error(`--- rootless log ---\n${await sb.read(LOG)}`);
        throw err;
      } finally {
        await sb.dispose();
      }
    },
  });
}

nsTest("rootless: a user's command starts a rootless daemon for that user", async (sb) => {
  // A root daemon at the system socket (mode 0660 root:root) does not serve this user.
  const root = await sb.buildctl(["debug", "workers"]);
  assertEquals(root.code, 0, root.stderr);

  const r = await sb.buildctl(["debug", "workers"], { user: true });
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "linux/amd64");
  const pid = startedPid(r.stderr);
  assert(pid, r.stderr);
  assertStringIncludes(r.stderr, `, rootless) in `);
  assertStringIncludes(r.stderr, `logs: ${LOG}`);

  const again = await sb.buildctl(["debug", "workers"], { user: true });
  assertEquals(again.code, 0, again.stderr);
  assertEquals(again.stderr, "");

  const s = JSON.parse(
    (await sb.buildctl(["daemon", "state", "--format", "json"], { user: true })).stdout,
  );
  assertEquals(s.running, true);
  assertEquals(s.mode, "rootless");
  assertEquals(s.pid, pid);
  assertEquals(s.address, `unix:///run/user/${sb.uid}/buildkit/buildkitd.sock`);
  assertEquals(s.rootDir, `/home/${TEST_USER}/.local/share/buildkit`);
  assertEquals(s.idleTimeoutMs, 30 * 60_000);
  assertEquals(s.supervisorRunning, true);
  // The daemon process (rootlesskit) runs as the user.
  const owner = (await sb.sh(`stat -c %u /proc/${pid}`)).stdout.trim();
  assertEquals(Number(owner), sb.uid);

  const stop = await sb.buildctl(["daemon", "stop"], { user: true });
  assertEquals(stop.code, 0, stop.stderr);
  assertMatch(stop.stdout, new RegExp(`stopped buildkitd \\(pid ${pid}\\)`));
  assertEquals((await sb.pids("buildkitd")).length, 1, "the root daemon is untouched");
});

nsTest(
  "rootless: without XDG_RUNTIME_DIR the socket goes to /run/user/<uid>, else a private /tmp dir",
  async (sb) => {
    const r = await sb.buildctl(["debug", "workers"], { user: true, unset: ["XDG_RUNTIME_DIR"] });
    assertEquals(r.code, 0, r.stderr);
    const s = JSON.parse(
      (await sb.buildctl(["daemon", "state", "--format", "json"], {
        user: true,
        unset: ["XDG_RUNTIME_DIR"],
      })).stdout,
    );
    assertEquals(s.address, `unix:///run/user/${sb.uid}/buildkit/buildkitd.sock`);
    assertEquals(
      (await sb.buildctl(["daemon", "stop"], { user: true, unset: ["XDG_RUNTIME_DIR"] })).code,
      0,
    );

    // No /run/user/<uid> either (su, cron): a private dir in /tmp.
    await sb.sh(`rm -rf /run/user/${sb.uid}`);
    const fallback = `/tmp/buildctl-runtime-${sb.uid}`;
    try {
      const f = await sb.buildctl(["debug", "workers"], { user: true, unset: ["XDG_RUNTIME_DIR"] });
      assertEquals(f.code, 0, f.stderr);
      const st = (await sb.sh(`stat -c '%u %a' ${fallback}`)).stdout.trim();
      assertEquals(st, `${sb.uid} 700`);
      const s2 = JSON.parse(
        (await sb.buildctl(["daemon", "state", "--format", "json"], {
          user: true,
          unset: ["XDG_RUNTIME_DIR"],
        })).stdout,
      );
      assertEquals(s2.address, `unix://${fallback}/buildkit/buildkitd.sock`);
      assertEquals(
        (await sb.buildctl(["daemon", "stop"], { user: true, unset: ["XDG_RUNTIME_DIR"] })).code,
        0,
      );
    } finally {
      await sb.sh(`rm -rf ${fallback}`);
    }
  },
);

nsTest("rootless: doctor checks the rootless pieces", async (sb) => {
  const r = await sb.buildctl(["daemon", "doctor"], { user: true });
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assertStringIncludes(r.stdout, `rootless daemon for user "${TEST_USER}"`);
  for (
    const name of [
      "rootlesskit",
      "newuidmap",
      "newgidmap",
      "subuid",
      "subgid",
      "user namespaces",
      "XDG_RUNTIME_DIR",
    ]
  ) {
    assertMatch(r.stdout, new RegExp(`^  ok    ${name} `, "m"), name);
  }
});

nsTest(
  "rootless: a user with no subordinate ids gets what is missing and how to fix it",
  async (sb) => {
    const r = await sb.buildctl(["debug", "workers"], { user: true });
    assertEquals(r.code, 69, r.stderr);
    assertStringIncludes(
      r.stderr,
      `error: cannot start the daemon: running as user "${TEST_USER}" (not root) and rootless mode is not available:`,
    );
    assertStringIncludes(
      r.stderr,
      `no subordinate uid range for user "${TEST_USER}" in /etc/subuid`,
    );
    assertMatch(r.stderr, new RegExp(`fix: sudo usermod --add-subuids \\d+-\\d+ ${TEST_USER}`));
    assertStringIncludes(
      r.stderr,
      `no subordinate gid range for user "${TEST_USER}" in /etc/subgid`,
    );
    assertStringIncludes(r.stderr, "hint: run 'buildctl daemon doctor' for every check");
    // The other way in: the exact one-time grant an administrator runs.
    assertMatch(
      r.stderr,
      new RegExp(
        `or an administrator can grant you a daemon once with:\\n  sudo buildctl daemon start --root=/home/${TEST_USER}/\\.local/share/buildctl-deno --allow-user=${TEST_USER}`,
      ),
    );

    const d = await sb.buildctl(["daemon", "doctor"], { user: true });
    assertEquals(d.code, 1);
    assertMatch(d.stdout, /^ {2}FAIL {2}subuid +no range for/m);
    assertStringIncludes(d.stdout, "fix: sudo usermod --add-subuids");
  },
  { user: true, noSubIds: true },
);

nsTest(
  "rootless: idle timeout stops the user's daemon; the next command starts it again",
  async (sb) => {
    const start = await sb.buildctl(["daemon", "start", "--timeout", "2s"], { user: true });
    assertEquals(start.code, 0, start.stderr);
    const pid = startedPid(start.stderr)!;
    const t0 = Date.now();
    while ((await sb.pids("rootlesskit")).includes(pid)) {
      assert(
        Date.now() - t0 < 2000 + 5000 + 3000,
        "not stopped within timeout + 5 s (+ start slack)",
      );
      await new Promise((r) => setTimeout(r, 200));
    }
    assertStringIncludes(await sb.read(LOG), `stopping idle buildkitd (pid ${pid})`);
    const next = await sb.buildctl(["debug", "workers"], { user: true });
    assertEquals(next.code, 0, next.stderr);
    assert(startedPid(next.stderr), next.stderr);
  },
);

nsTest("rootless: reset wipes files that belong to container users too", async (sb) => {
  const ctx = await Deno.makeTempDir({ prefix: "rl-ctx-" });
  try {
    await Deno.chmod(ctx, 0o755);
    await Deno.chmod(await busyboxRootfs(), 0o755); // readable by the test user
    await Deno.writeTextFile(
      join(ctx, "Dockerfile"),
      "FROM busybox\nRUN mkdir -p /owned && chown 1234:1234 /owned && touch /owned/f\n",
    );
    await Deno.chmod(join(ctx, "Dockerfile"), 0o644);
    const b = await sb.buildctl(
      [
        "build",
        "--frontend",
        "dockerfile.v0",
        "--local",
        `context=${ctx}`,
        "--local",
        `dockerfile=${ctx}`,
        ...(await busyboxArgs()),
      ],
      { user: true },
    );
    assertEquals(b.code, 0, b.stderr);
    const pid = startedPid(b.stderr)!;
    // Some files in the state dir now belong to a subordinate uid, not to the user.
    const foreign = await sb.sh(
      `find /home/${TEST_USER}/.local/share/buildkit ! -user ${sb.uid} | head -1`,
    );
    assert(foreign.stdout.trim() !== "", "expected files owned by a subordinate uid");

    const r = await sb.buildctl(["daemon", "reset", "--force"], { user: true });
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stderr, `stopped buildkitd (pid ${pid})`);
    assertStringIncludes(r.stderr, `deleted /home/${TEST_USER}/.local/share/buildkit`);
    const pid2 = startedPid(r.stderr);
    assert(pid2 && pid2 !== pid, r.stderr);
    const left = await sb.sh(
      `find /home/${TEST_USER}/.local/share/buildkit ! -user ${sb.uid} | head -1`,
    );
    assertEquals(left.stdout.trim(), "");
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});
