/**
 * `--frontend gateway.v0 --opt source=IMAGE`: the Dockerfile frontend (built
 * from BuildKit's source by scripts/deps.sh) is packaged as an image with our
 * buildctl, pushed to docker-registry on loopback, and then used as the
 * gateway frontend of a build, by our buildctl and by upstream's.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { daemonTest } from "./_util/daemon.ts";
import { runBuildctl, runUpstream } from "./_util/run.ts";
import { startRegistry } from "./_util/registry.ts";
import { TOOLS_BIN } from "./_util/paths.ts";
import { describeTree } from "./_util/tree.ts";

daemonTest(
  "build --frontend gateway.v0 runs a frontend image pulled from a registry",
  async (_t, d) => {
    const registry = await startRegistry();
    const work = await Deno.makeTempDir({ prefix: "gw-" });
    try {
      const fe = join(work, "frontend");
      await Deno.mkdir(fe);
      await Deno.copyFile(join(TOOLS_BIN, "dockerfile-frontend"), join(fe, "dockerfile-frontend"));
      await Deno.chmod(join(fe, "dockerfile-frontend"), 0o755);
      await Deno.writeTextFile(
        join(fe, "Dockerfile"),
        'FROM scratch\nCOPY dockerfile-frontend /bin/dockerfile-frontend\nENTRYPOINT ["/bin/dockerfile-frontend"]\n',
      );
      const image = `${registry.host}/dockerfile-frontend:test`;
      const push = await runBuildctl([
        "--addr",
        d.addr,
        "build",
        "--progress=plain",
        "--frontend=dockerfile.v0",
        "--local",
        `context=${fe}`,
        "--local",
        `dockerfile=${fe}`,
        "--output",
        `type=image,name=${image},push=true`,
      ]);
      assert.equal(push.code, 0, push.stderr);

      const ctx = join(work, "ctx");
      await Deno.mkdir(ctx);
      await Deno.writeTextFile(join(ctx, "hello.txt"), "through the gateway\n");
      await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY hello.txt /greeting\n");
      const common = [
        "build",
        "--progress=plain",
        "--frontend=gateway.v0",
        "--opt",
        `source=${image}`,
        "--local",
        `context=${ctx}`,
        "--local",
        `dockerfile=${ctx}`,
      ];
      const ours = await runBuildctl([
        "--addr",
        d.addr,
        ...common,
        "--output",
        `type=local,dest=${work}/ours`,
      ]);
      assert.equal(ours.code, 0, ours.stderr);
      assert.match(
        ours.stderr,
        new RegExp(`resolve image config for .*${image.replace(/[.:/]/g, "\\$&")}`),
      );
      assert.equal(await Deno.readTextFile(`${work}/ours/greeting`), "through the gateway\n");
      const theirs = await runUpstream([
        "--addr",
        d.addr,
        ...common,
        "--output",
        `type=local,dest=${work}/theirs`,
      ]);
      assert.equal(theirs.code, 0, theirs.stderr);
      assert.deepEqual(await describeTree(`${work}/ours`), await describeTree(`${work}/theirs`));
    } finally {
      await registry.stop();
      await Deno.remove(work, { recursive: true });
    }
  },
);
