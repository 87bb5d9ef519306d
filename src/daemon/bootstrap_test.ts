import assert from "node:assert/strict";
import { join } from "node:path";
import { bridgeNetworkFlags } from "./bootstrap.ts";

Deno.test("bridgeNetworkFlags() isolates RUN networking when the CNI plugins are installed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cni-" });
  try {
    assert.deepEqual(
      bridgeNetworkFlags([], dir),
      [],
      "no bridge plugin: leave buildkitd's default",
    );
    await Deno.writeTextFile(join(dir, "bridge"), "");
    assert.deepEqual(bridgeNetworkFlags([], dir), [
      "--oci-worker-net=bridge",
      `--oci-cni-binary-dir=${dir}`,
    ]);
    assert.deepEqual(
      bridgeNetworkFlags(["--oci-worker-net=host"], dir),
      [],
      "the user's choice wins",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
