import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  finishCacheExports,
  finishOciDirExport,
  prepareCacheExports,
  prepareCacheImports,
  prepareOciDirExport,
} from "./cache_local.ts";
import type { CacheEntry } from "./build.ts";
import { blobPath, imageTag, putIndex } from "../../session/oci_index.ts";

const sha = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;
const local = (attrs: Record<string, string>): CacheEntry => ({
  type: "local",
  attrs,
  legacy: false,
});

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cache-local-unit-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function addBlob(dir: string, content: string): Promise<string> {
  const d = sha(content);
  await Deno.mkdir(join(blobPath(dir, d), ".."), { recursive: true });
  await Deno.writeTextFile(blobPath(dir, d), content);
  return d;
}

Deno.test("prepareCacheExports creates dest dirs (0755) and maps local:<dest>; rejects a bad reset", async () => {
  await withTemp(async (tmp) => {
    const dest = join(tmp, "a", "b");
    const res = await prepareCacheExports([
      local({ dest, mode: "max" }),
      { type: "registry", attrs: { ref: "x" }, legacy: false },
    ]);
    assert.deepEqual([...res.stores], [[`local:${dest}`, dest]]);
    assert.equal((await Deno.stat(dest)).mode! & 0o777, 0o755);
    assert.equal((await Deno.stat(join(tmp, "a"))).mode! & 0o777, 0o755);
    await assert.rejects(
      () => prepareCacheExports([local({ dest, reset: "yes" })]),
      (err: Error) =>
        err.message ===
          'failed to parse reset attribute: strconv.ParseBool: parsing "yes": invalid syntax',
    );
  });
});

Deno.test("prepareCacheImports resolves tags, checks blobs, drops unusable imports with upstream's warnings", async () => {
  await withTemp(async (tmp) => {
    const cache = join(tmp, "cache");
    const m = await addBlob(cache, "manifest");
    await putIndex(cache, { digest: m, size: 8, mediaType: "x" }, [imageTag("latest")]);
    const registry: CacheEntry = { type: "registry", attrs: { ref: "r" }, legacy: false };
    const res = await prepareCacheImports([
      registry,
      local({ src: cache }),
      local({ src: cache, digest: sha("gone") }),
      local({ src: cache, digest: "bad" }),
      local({ src: join(tmp, "new") }),
    ]);
    assert.deepEqual(res.entries, [registry, local({ src: cache, digest: m })]);
    assert.deepEqual([...res.stores], [[`local:${cache}`, cache]]);
    assert.deepEqual(res.warnings.map((w) => [w.level, w.msg]), [
      [
        "warning",
        `local cache import at ${cache} skipped: digest ${sha("gone")} unavailable: content ${
          sha("gone")
        }: not found`,
      ],
      [
        "warning",
        `local cache import at ${cache} skipped: digest bad unavailable: calculating blob info path: cannot calculate blob path from invalid digest: invalid checksum digest format: invalid argument`,
      ],
      [
        "warning",
        `local cache import at ${tmp}/new skipped due to err: could not read ${tmp}/new/index.json: open ${tmp}/new/index.json: no such file or directory`,
      ],
    ]);
    // Upstream's store creates a missing src directory.
    assert.equal((await Deno.stat(join(tmp, "new"))).mode! & 0o777, 0o755);
    await assert.rejects(
      () => prepareCacheImports([local({ src: cache, tag: "" })]),
      /local cache importer requires either explicit digest, "latest" tag or custom tag on index.json/,
    );
  });
});

Deno.test("finishCacheExports records cache.manifest under the tag and prunes with reset=true", async () => {
  await withTemp(async (tmp) => {
    const a = join(tmp, "a");
    const b = join(tmp, "b");
    const manifest = JSON.stringify({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { digest: sha("cfg"), size: 3 },
      layers: [],
    });
    for (const dir of [a, b]) {
      await addBlob(dir, manifest);
      await addBlob(dir, "cfg");
      await addBlob(dir, "stale");
    }
    const desc = `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${
      sha(manifest)
    }","size":${manifest.length}}`;
    const entries = [local({ dest: a, tag: "t1", reset: "true" }), local({ dest: b })];
    const res = await finishCacheExports(entries, { "cache.manifest": desc });
    assert.deepEqual(res.warnings, []);
    assert.equal(
      await Deno.readTextFile(join(a, "index.json")),
      `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${
        sha(manifest)
      }","size":${manifest.length},"annotations":{"org.opencontainers.image.ref.name":"t1"}}]}`,
    );
    assert.match(
      await Deno.readTextFile(join(b, "index.json")),
      /"org.opencontainers.image.ref.name":"latest"/,
    );
    await assert.rejects(() => Deno.stat(blobPath(a, sha("stale"))), Deno.errors.NotFound);
    await Deno.stat(blobPath(a, sha("cfg")));
    await Deno.stat(blobPath(b, sha("stale"))); // no reset for b

    // No cache.manifest: nothing written; a failing reset is a warning.
    const c = join(tmp, "c");
    await Deno.mkdir(c);
    const res2 = await finishCacheExports([local({ dest: c, reset: "1" })], {});
    assert.equal(res2.warnings.length, 1);
    assert.equal(res2.warnings[0]!.msg, "failed to reset cache store");
    assert.match(
      res2.warnings[0]!.fields!["error"]!,
      /^reset: failed to read index.json: could not read/,
    );
  });
});

Deno.test("finishOciDirExport: containerimage.descriptor under image.name names, or tag latest", async () => {
  await withTemp(async (tmp) => {
    const stores = new Map<string, string>();
    const dest = join(tmp, "out");
    await prepareOciDirExport(dest, stores);
    assert.deepEqual([...stores], [["export", dest]]);
    await assert.rejects(
      () => prepareOciDirExport(dest, stores),
      /oci store key "export" already exists/,
    );
    const desc = {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: sha("m"),
      size: 1,
    };
    const b64 = Buffer.from(JSON.stringify(desc)).toString("base64");
    await finishOciDirExport(dest, { "containerimage.descriptor": b64 });
    let idx = JSON.parse(await Deno.readTextFile(join(dest, "index.json")));
    assert.deepEqual(idx.manifests[0].annotations, {
      "org.opencontainers.image.ref.name": "latest",
    });
    await finishOciDirExport(dest, {
      "containerimage.descriptor": b64,
      "image.name": "docker.io/a/b:1,docker.io/a/c:2",
    });
    idx = JSON.parse(await Deno.readTextFile(join(dest, "index.json")));
    assert.deepEqual(
      idx.manifests.map((m: { annotations: Record<string, string> }) => m.annotations),
      [
        { "org.opencontainers.image.ref.name": "latest" },
        { "io.containerd.image.name": "docker.io/a/b:1", "org.opencontainers.image.ref.name": "1" },
        { "io.containerd.image.name": "docker.io/a/c:2", "org.opencontainers.image.ref.name": "2" },
      ],
    );
    await finishOciDirExport(join(tmp, "none"), {}); // no descriptor: nothing to do
    await assert.rejects(() => Deno.stat(join(tmp, "none")), Deno.errors.NotFound);
    await assert.rejects(
      () => finishOciDirExport(dest, { "containerimage.descriptor": "!!" }),
      /illegal base64 data at input byte 0/,
    );
  });
});
