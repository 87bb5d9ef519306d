import assert from "node:assert/strict";
import { daemonPaths } from "./paths.ts";
import { subIdRanges } from "./prereq.ts";
import { parseDurationMs } from "./auto.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("daemonPaths() gives root the system socket and state dir", () => {
  const p = daemonPaths(
    { euid: 0, egid: 0, user: "root", home: "/root" },
    env({ XDG_RUNTIME_DIR: "/run/user/0" }),
  );
  assert.equal(p.mode, "root");
  assert.equal(p.address, "unix:///run/buildkit/buildkitd.sock");
  assert.equal(p.rootDir, "/var/lib/buildkit");
  assert.equal(p.lockPath, "/run/buildkit/buildctl.lock");
  assert.equal(p.xdgRuntimeDir, undefined);
});

Deno.test("daemonPaths() gives a user the rootless socket under XDG dirs", () => {
  const id = { euid: 4242, egid: 4242, user: "u", home: "/home/u" };
  const p = daemonPaths(id, env({ XDG_RUNTIME_DIR: "/run/user/4242" }));
  assert.equal(p.mode, "rootless");
  assert.equal(p.address, "unix:///run/user/4242/buildkit/buildkitd.sock");
  assert.equal(p.rootDir, "/home/u/.local/share/buildkit");
  assert.equal(p.xdgRuntimeDir, undefined);
  const q = daemonPaths(id, env({ XDG_RUNTIME_DIR: "/r", XDG_DATA_HOME: "/data" }));
  assert.equal(q.rootDir, "/data/buildkit");
  // No XDG_RUNTIME_DIR and no /run/user/4242: a private dir in /tmp, handed to the daemon.
  const f = daemonPaths(id, env({}));
  assert.equal(f.xdgRuntimeDir, "/tmp/buildctl-runtime-4242");
  assert.equal(f.socketPath, "/tmp/buildctl-runtime-4242/buildkit/buildkitd.sock");
});

Deno.test("subIdRanges() matches by name or uid", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(
      file,
      "alice:100000:65536\n1001:200000:1000\n# bob:1:2\nbob:300000:65536\n",
    );
    assert.deepEqual(subIdRanges(file, "alice", 1000), [{ start: 100000, count: 65536 }]);
    assert.deepEqual(subIdRanges(file, "carol", 1001), [{ start: 200000, count: 1000 }]);
    assert.deepEqual(subIdRanges(file, "dave", 1002), []);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("parseDurationMs() takes Go durations and rejects the rest", () => {
  assert.equal(parseDurationMs("30m", "--timeout"), 1_800_000);
  assert.equal(parseDurationMs("1h30m", "--timeout"), 5_400_000);
  assert.equal(parseDurationMs("0", "--timeout"), 0);
  assert.equal(parseDurationMs("1.5s", "--timeout"), 1500);
  assert.throws(() => parseDurationMs("soon", "--timeout"), /invalid --timeout "soon"/);
  assert.throws(() => parseDurationMs("-1s", "--timeout"), /invalid --timeout/);
});
