/**
 * Cache and registry round trips through our buildctl: local cache export
 * then import into a fresh daemon (CACHED), inline and registry cache and an
 * image push against Debian's docker-registry on loopback, oci dir output.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startDaemon } from "./_util/daemon.ts";
import { runBuildctl, runUpstream } from "./_util/run.ts";
import { startRegistry } from "./_util/registry.ts";

const DOCKERFILE = "FROM scratch\nCOPY Dockerfile /a\nCOPY Dockerfile /b\n";

function args(addr: string, ctx: string, extra: string[]): string[] {
  return [
    "--addr",
    addr,
    "build",
    "--progress=plain",
    "--frontend=dockerfile.v0",
    "--local",
    `context=${ctx}`,
    "--local",
    `dockerfile=${ctx}`,
    ...extra,
  ];
}

Deno.test("cache round trips: local, registry and inline; push; oci dir", async (t) => {
  const ctx = await Deno.makeTempDir({ prefix: "cctx-" });
  const work = await Deno.makeTempDir({ prefix: "cwork-" });
  await Deno.writeTextFile(join(ctx, "Dockerfile"), DOCKERFILE);
  const registry = await startRegistry();
  const daemons = [await startDaemon(), await startDaemon()];
  const [a, b] = daemons as [
    Awaited<ReturnType<typeof startDaemon>>,
    Awaited<ReturnType<typeof startDaemon>>,
  ];
  try {
    await t.step(
      "local cache: export, then import into a fresh daemon reports CACHED",
      async () => {
        const exp = await runBuildctl(
          args(a.addr, ctx, ["--export-cache", `type=local,dest=${work}/cache`]),
        );
        assert.equal(exp.code, 0, exp.stderr);
        const index = JSON.parse(await Deno.readTextFile(`${work}/cache/index.json`));
        assert.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], "latest");
        const imp = await runBuildctl(
          args(b.addr, ctx, ["--import-cache", `type=local,src=${work}/cache`]),
        );
        assert.equal(imp.code, 0, imp.stderr);
        assert.match(imp.stderr, /COPY Dockerfile \/b\n(#\d+ .*\n)*#\d+ CACHED/);
      },
    );

    await t.step("local cache exported by us is what upstream exports (same files)", async () => {
      const up = await runUpstream(
        args(a.addr, ctx, ["--export-cache", `type=local,dest=${work}/cache-up`]),
      );
      assert.equal(up.code, 0, up.stderr);
      const list = async (dir: string) => {
        const names: string[] = [];
        for await (const e of Deno.readDir(join(dir, "blobs", "sha256"))) names.push(e.name);
        return names.sort();
      };
      assert.deepEqual(await list(`${work}/cache`), await list(`${work}/cache-up`));
    });

    await t.step(
      "push an image and export registry cache to docker-registry on loopback",
      async () => {
        const r = await runBuildctl(args(a.addr, ctx, [
          "--output",
          `type=image,name=${registry.host}/demo:1,push=true`,
          "--export-cache",
          `type=registry,ref=${registry.host}/demo:cache`,
        ]));
        assert.equal(r.code, 0, r.stderr);
        const tags = await (await fetch(`http://${registry.host}/v2/demo/tags/list`)).json();
        assert.deepEqual([...tags.tags].sort(), ["1", "cache"]);
      },
    );

    await t.step("registry cache import into a fresh daemon reports CACHED", async () => {
      const c = await startDaemon();
      try {
        const r = await runBuildctl(
          args(c.addr, ctx, ["--import-cache", `type=registry,ref=${registry.host}/demo:cache`]),
        );
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /COPY Dockerfile \/b\n(#\d+ .*\n)*#\d+ CACHED/);
      } finally {
        await c.stop();
      }
    });

    await t.step("inline cache travels with the pushed image", async () => {
      const r = await runBuildctl(args(a.addr, ctx, [
        "--output",
        `type=image,name=${registry.host}/inline:1,push=true`,
        "--export-cache",
        "type=inline",
      ]));
      assert.equal(r.code, 0, r.stderr);
      const c = await startDaemon();
      try {
        const imp = await runBuildctl(
          args(c.addr, ctx, ["--import-cache", `type=registry,ref=${registry.host}/inline:1`]),
        );
        assert.equal(imp.code, 0, imp.stderr);
        assert.match(imp.stderr, /CACHED/);
      } finally {
        await c.stop();
      }
    });

    await t.step("oci output with tar=false writes an OCI layout dir like upstream", async () => {
      const ours = await runBuildctl(
        args(a.addr, ctx, ["--output", `type=oci,tar=false,dest=${work}/oci-ours`]),
        {
          env: { SOURCE_DATE_EPOCH: "0" },
        },
      );
      assert.equal(ours.code, 0, ours.stderr);
      const up = await runUpstream(
        args(a.addr, ctx, ["--output", `type=oci,tar=false,dest=${work}/oci-up`]),
        {
          env: { SOURCE_DATE_EPOCH: "0" },
        },
      );
      assert.equal(up.code, 0, up.stderr);
      assert.equal(
        await Deno.readTextFile(`${work}/oci-ours/index.json`),
        await Deno.readTextFile(`${work}/oci-up/index.json`),
      );
    });
  } catch (err) {
    for (const d of daemons) console.error(`--- ${d.logPath}\n${d.log()}`);
    throw err;
  } finally {
    for (const d of daemons) await d.stop();
    await registry.stop();
    await Deno.remove(ctx, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
});
