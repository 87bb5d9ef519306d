/**
 * `debug workers`, `debug info`, `du` and `prune` through our buildctl and
 * upstream Go buildctl against the same real daemon: same output, same exit
 * codes. Plus the bad-input cases of the foundation.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { daemonTest } from "./_util/daemon.ts";
import { runBuildctl, runUpstream } from "./_util/run.ts";
import { busyboxArgs } from "./_util/busybox.ts";

async function same(addr: string, args: string[]): Promise<string> {
  const ours = await runBuildctl(["--addr", addr, ...args]);
  const theirs = await runUpstream(["--addr", addr, ...args]);
  assert.equal(
    ours.stdout,
    theirs.stdout,
    `stdout of "${args.join(" ")}" differs\n--- ours stderr:\n${ours.stderr}`,
  );
  assert.equal(ours.code, theirs.code, `exit code of "${args.join(" ")}" differs: ${ours.stderr}`);
  return ours.stdout;
}

async function populateCache(addr: string, tag: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ctx-" });
  try {
    await Deno.writeTextFile(
      join(dir, "Dockerfile"),
      `FROM busybox\nRUN echo ${tag} > /x && mkdir /d && echo ${tag} > /d/y\n`,
    );
    const r = await runUpstream([
      "--addr",
      addr,
      "build",
      "--progress=plain",
      "--frontend=dockerfile.v0",
      "--local",
      `context=${dir}`,
      "--local",
      `dockerfile=${dir}`,
      ...(await busyboxArgs()),
    ]);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

daemonTest(
  "debug workers, debug info and du print exactly what upstream buildctl prints",
  async (t, d) => {
    for (
      const args of [
        ["debug", "workers"],
        ["debug", "workers", "-v"],
        ["debug", "workers", "--format", "json"],
        ["debug", "workers", "--format", "{{range .}}{{.ID}} {{len .Platforms}}{{end}}"],
        ["debug", "workers", "--filter", "platforms==linux/amd64"],
        ["debug", "info"],
        ["debug", "info", "--format", "{{json .}}"],
        ["du"],
      ]
    ) {
      await t.step(`buildctl ${args.join(" ")}`, async () => {
        await same(d.addr, args);
      });
    }
    await populateCache(d.addr, "one");
    for (
      const args of [
        ["du"],
        ["du", "-v"],
        ["du", "--format", "json"],
        ["du", "--filter", "type==regular"],
        ["du", "--format", "{{range .}}{{.ID}} {{.Size}} {{.CreatedAt}}\n{{end}}"],
      ]
    ) {
      await t.step(`buildctl ${args.join(" ")} with cache records`, async () => {
        const out = await same(d.addr, args);
        assert.ok(out.length > 0);
      });
    }
  },
);

daemonTest("prune streams deleted records like upstream and empties the cache", async (t, d) => {
  await t.step("ours: prune --all -v", async () => {
    await populateCache(d.addr, "a");
    const before = await runBuildctl(["--addr", d.addr, "du", "--format", "{{len .}}"]);
    assert.ok(Number(before.stdout.trim()) > 0, "the build left cache records");
    const ours = await runBuildctl(["--addr", d.addr, "prune", "--all"]);
    assert.equal(ours.code, 0, ours.stderr);
    assert.match(ours.stdout, /^ID\s+RECLAIMABLE\s+SIZE\s+LAST ACCESSED\n/);
    assert.match(ours.stdout, /\nTotal:\t[0-9.]+[kMG]?B\n$/);
    const after = await runBuildctl(["--addr", d.addr, "du", "--format", "{{len .}}"]);
    assert.equal(after.stdout.trim(), "0");
  });
  await t.step("same lines as upstream for the same cache", async () => {
    await populateCache(d.addr, "b");
    const du = await runUpstream(["--addr", d.addr, "du", "-v"]);
    const ours = await runBuildctl(["--addr", d.addr, "prune", "--all", "-v"]);
    assert.equal(ours.code, 0, ours.stderr);
    await populateCache(d.addr, "b");
    const theirs = await runUpstream(["--addr", d.addr, "prune", "--all", "-v"]);
    const shape = (s: string) => s.split("\n").map((l) => l.split(":")[0]).sort().join("\n");
    assert.equal(shape(ours.stdout), shape(theirs.stdout));
    assert.ok(du.stdout.length > 0);
  });
  await t.step("prune with limits and filters is accepted by the daemon", async () => {
    for (
      const args of [
        [
          "prune",
          "--keep-duration",
          "1h30m",
          "--keep-storage",
          "0.5",
          "--keep-storage-min",
          "1",
          "--free-storage",
          "2",
        ],
        ["prune", "--filter", "type==regular", "--format", "{{.ID}}"],
      ]
    ) {
      await same(d.addr, args);
    }
  });
});

daemonTest("--wait and --timeout connect to a daemon that answers", async (_t, d) => {
  const r = await runBuildctl(["--addr", d.addr, "--wait", "--timeout", "3", "debug", "info"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^BuildKit:\s+github.com\/moby\/buildkit v0.32.2/);
});

Deno.test("bad input: each error names the flag or value and exits non-zero", async (t) => {
  const cases: { args: string[]; code: number; stderr: RegExp }[] = [
    { args: ["frobnicate"], code: 2, stderr: /error: unknown command "frobnicate" for "buildctl"/ },
    { args: ["du", "--bogus"], code: 2, stderr: /error: unknown flag "--bogus" for "buildctl du"/ },
    { args: ["--addr", "nonsense", "du"], code: 2, stderr: /error: invalid --addr "nonsense"/ },
    { args: ["--addr", "http://x:1", "du"], code: 2, stderr: /unsupported scheme "http:\/\/"/ },
    {
      args: ["--addr", "unix:///nonexistent/bk.sock", "du", "--filter", "=="],
      code: 2,
      stderr: /invalid --filter "=="/,
    },
    {
      args: ["--addr", "unix:///nonexistent/bk.sock", "prune", "--keep-duration", "forever"],
      code: 2,
      stderr: /invalid value "forever" for flag --keep-duration/,
    },
    {
      args: ["--addr", "unix:///nonexistent/bk.sock", "prune", "--keep-storage", "10GB"],
      code: 2,
      stderr: /invalid value "10GB" for flag --keep-storage/,
    },
    {
      args: ["--addr", "unix:///nonexistent/bk.sock", "du", "--format", "{{.Nope"],
      code: 2,
      stderr: /invalid --format "\{\{\.Nope"/,
    },
    {
      args: ["--timeout", "soon", "du"],
      code: 2,
      stderr: /invalid value "soon" for flag --timeout/,
    },
    {
      args: ["--addr", "unix:///nonexistent/bk.sock", "debug", "workers"],
      code: 69,
      stderr:
        /error: cannot connect to buildkitd at unix:\/\/\/nonexistent\/bk.sock: no such socket\nhint: .*automatic start applies only to the default address/,
    },
    {
      args: ["--addr", "tcp://127.0.0.1:1", "--tlscacert", "/nonexistent/ca.pem", "debug", "info"],
      code: 2,
      stderr: /cannot read --tlscacert file "\/nonexistent\/ca.pem"/,
    },
    {
      args: ["--addr", "tcp://127.0.0.1:1", "--tlsdir", "/nonexistent", "debug", "info"],
      code: 2,
      stderr: /--tlsdir "\/nonexistent" did not contain one of the needed files: ca.pem or ca.crt/,
    },
  ];
  for (const c of cases) {
    await t.step(`buildctl ${c.args.join(" ")} exits ${c.code}`, async () => {
      const r = await runBuildctl(c.args);
      assert.equal(r.code, c.code, r.stderr);
      assert.match(r.stderr, c.stderr);
      assert.equal(r.stdout, "");
    });
  }
});

Deno.test("nothing listening on a tcp address fails within --timeout with a hint", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const started = Date.now();
  const r = await runBuildctl([
    "--addr",
    `tcp://127.0.0.1:${port}`,
    "--timeout",
    "2",
    "debug",
    "info",
  ]);
  const elapsed = Date.now() - started;
  assert.equal(r.code, 69, r.stderr);
  assert.match(r.stderr, new RegExp(`cannot connect to buildkitd at tcp://127.0.0.1:${port}`));
  assert.match(r.stderr, /hint: /);
  assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
});

Deno.test("--help works on every command and --version prints ours", async () => {
  for (
    const args of [["--help"], ["du", "--help"], ["prune", "-h"], ["debug", "workers", "--help"], [
      "debug",
    ]]
  ) {
    const r = await runBuildctl(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /USAGE:/);
  }
  const v = await runBuildctl(["--version"]);
  assert.match(
    v.stdout,
    /^buildctl \d+\.\d+\.\d+ \(buildctl for Deno; BuildKit API v0\.32\.2\)\n$/,
  );
});
