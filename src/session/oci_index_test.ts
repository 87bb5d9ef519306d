import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  blobPath,
  type Descriptor,
  digestError,
  findTagged,
  getTagged,
  goJsonString,
  imageName,
  imageTag,
  insertDescriptor,
  marshalIndex,
  type OciIndex,
  ociReferenceName,
  parseDescriptorJson,
  pruneUnreferenced,
  putIndex,
  readIndex,
} from "./oci_index.ts";

const sha = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "oci-index-test-" });
}

async function writeBlob(dir: string, content: string): Promise<string> {
  const d = sha(content);
  const p = blobPath(dir, d);
  await Deno.mkdir(join(p, ".."), { recursive: true });
  await Deno.writeTextFile(p, content);
  return d;
}

// Exactly what upstream buildctl v0.32.2 wrote for `--export-cache type=local,dest=…`.
const UPSTREAM_CACHE_INDEX =
  '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:362ce3ce937bab34641473afc0b68bf2f69680278d412f27b55f54b2b4a04e21","size":573,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}';
// … and for `--output type=docker,tar=false,dest=…,name=foo/bar:v1,name-canonical=true`.
const UPSTREAM_IMAGE_INDEX =
  '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:5c91515f84c5bccbc42cfd284026fac09e1e7696050cb5ccee9eda27b30b9314","size":476,"annotations":{"io.containerd.image.name":"docker.io/foo/bar:v1","org.opencontainers.image.created":"2026-11-29T15:44:39Z","org.opencontainers.image.ref.name":"v1"},"platform":{"architecture":"amd64","os":"linux"}}]}';

Deno.test("putIndex writes a new layout byte for byte as upstream (cache manifest under tag latest)", async () => {
  const dir = await tempDir();
  try {
    const desc = parseDescriptorJson(
      '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:362ce3ce937bab34641473afc0b68bf2f69680278d412f27b55f54b2b4a04e21","size":573}',
    );
    await putIndex(dir, desc, [imageTag("latest")]);
    assert.equal(await Deno.readTextFile(join(dir, "index.json")), UPSTREAM_CACHE_INDEX);
    assert.equal(
      await Deno.readTextFile(join(dir, "oci-layout")),
      '{"imageLayoutVersion":"1.0.0"}',
    );
    assert.equal((await Deno.stat(join(dir, "index.json"))).mode! & 0o777, 0o644);
    // The lock file and temp files are gone.
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["index.json", "oci-layout"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("putIndex with an image name: containerd name annotation + OCI ref name, as upstream", async () => {
  const dir = await tempDir();
  try {
    const desc = parseDescriptorJson(
      '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:5c91515f84c5bccbc42cfd284026fac09e1e7696050cb5ccee9eda27b30b9314","size":476,"annotations":{"org.opencontainers.image.created":"2026-11-29T15:44:39Z"},"platform":{"architecture":"amd64","os":"linux"}}',
    );
    await putIndex(dir, desc, [imageName("docker.io/foo/bar:v1")]);
    assert.equal(await Deno.readTextFile(join(dir, "index.json")), UPSTREAM_IMAGE_INDEX);
    // The caller's descriptor is untouched.
    assert.deepEqual(Object.keys(desc.annotations!), ["org.opencontainers.image.created"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("putIndex replaces the entry with the same tag, keeps others, drops unknown fields", async () => {
  const dir = await tempDir();
  try {
    await Deno.writeTextFile(
      join(dir, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        extra: "dropped",
        manifests: [
          { digest: sha("a"), size: 1, annotations: { "org.opencontainers.image.ref.name": "v1" } },
          {
            digest: sha("b"),
            size: 2,
            unknown: 1,
            annotations: { "org.opencontainers.image.ref.name": "latest" },
          },
        ],
      }),
      { mode: 0o600 },
    );
    await Deno.chmod(join(dir, "index.json"), 0o600);
    await putIndex(dir, { digest: sha("c"), size: 3, mediaType: "m" }, [imageTag("latest")]);
    const idx = await readIndex(dir);
    assert.equal(idx.mediaType, "application/vnd.oci.image.index.v1+json");
    assert.deepEqual(idx.manifests.map((m) => m.digest), [sha("a"), sha("c")]);
    const text = await Deno.readTextFile(join(dir, "index.json"));
    assert.ok(!text.includes("unknown") && !text.includes("extra"));
    // The existing file's mode is kept.
    assert.equal((await Deno.stat(join(dir, "index.json"))).mode! & 0o777, 0o600);
    // Untagged put appends.
    await putIndex(dir, { digest: sha("d"), size: 4 });
    assert.equal((await readIndex(dir)).manifests.length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tag lookup: containerd image name first, then OCI ref name; errors as upstream", async () => {
  const idx: OciIndex = { schemaVersion: 2, manifests: [] };
  insertDescriptor(idx, { digest: sha("1"), size: 1 }, imageTag("x"));
  insertDescriptor(idx, { digest: sha("2"), size: 1 }, imageName("x"));
  assert.equal(findTagged(idx, "x")?.digest, sha("2"));
  assert.equal(findTagged(idx, "nope"), undefined);

  const dir = await tempDir();
  try {
    await assert.rejects(
      () => getTagged(dir, "latest"),
      (err: Error) =>
        err.message ===
          `could not read ${dir}/index.json: open ${dir}/index.json: no such file or directory`,
    );
    await Deno.writeTextFile(join(dir, "index.json"), "{bad");
    await assert.rejects(
      () => readIndex(dir),
      (err: Error) => err.message.startsWith(`could not unmarshal ${dir}/index.json ("{bad")`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ociReferenceName follows containerd's reference.Parse", () => {
  assert.equal(ociReferenceName("docker.io/library/alpine:3.19"), "3.19");
  assert.equal(ociReferenceName("foo/bar:v1"), "v1");
  assert.equal(ociReferenceName("localhost:5000/x:t"), "t");
  assert.equal(ociReferenceName(`example.com/x@${sha("a")}`), `@${sha("a")}`);
  assert.equal(ociReferenceName("example.com/x"), "");
  assert.equal(ociReferenceName("foo"), ""); // parses: host only, no object
  assert.equal(ociReferenceName("foo:v1"), "foo:v1"); // invalid port: unparsable, kept whole
  assert.equal(ociReferenceName("a://b"), "a://b");
});

Deno.test("marshalIndex: Go field order, sorted annotations, Go string escaping", () => {
  const d: Descriptor = {
    digest: sha("x"),
    size: 10,
    mediaType: "t",
    platform: { architecture: "arm64", os: "linux", variant: "v8" },
    annotations: { z: "1", a: "<&>", "\u00e9": "x" },
    urls: ["u"],
  };
  assert.equal(
    marshalIndex({ schemaVersion: 2, manifests: [d] }),
    `{"schemaVersion":2,"manifests":[{"mediaType":"t","digest":"${
      sha("x")
    }","size":10,"urls":["u"],"annotations":{"a":"\\u003c\\u0026\\u003e","z":"1","\u00e9":"x"},"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}`,
  );
  assert.equal(goJsonString('a"b\\c\n\u0001\u2028'), '"a\\"b\\\\c\\n\\u0001\\u2028"');
});

Deno.test("digestError matches go-digest validation", () => {
  assert.equal(digestError(sha("x")), undefined);
  assert.equal(digestError("sha256:abc"), "invalid checksum digest length");
  assert.equal(digestError("sha256:" + "G".repeat(64)), "invalid checksum digest format");
  assert.equal(digestError("nope"), "invalid checksum digest format");
  assert.equal(digestError("md5:abcd"), "unsupported digest algorithm");
  assert.equal(digestError("sha512:" + "a".repeat(128)), undefined);
});

Deno.test("pruneUnreferenced keeps what index.json reaches (index → manifest → config/layers) and deletes the rest", async () => {
  const dir = await tempDir();
  try {
    const layer = await writeBlob(dir, "layer");
    const config = await writeBlob(dir, "config");
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 6 },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layer, size: 5 }],
    });
    const m = await writeBlob(dir, manifest);
    const nested = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: m,
        size: manifest.length,
      }],
    });
    const n = await writeBlob(dir, nested);
    const stray1 = await writeBlob(dir, "old layer");
    const stray2 = await writeBlob(dir, "old manifest");
    await putIndex(dir, {
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest: n,
      size: nested.length,
    }, [imageTag("latest")]);
    const res = await pruneUnreferenced(dir);
    assert.deepEqual(res.deleted.sort(), [stray1, stray2].sort());
    assert.deepEqual(res.failures, []);
    for (const d of [layer, config, m, n]) await Deno.stat(blobPath(dir, d));
    await assert.rejects(() => Deno.stat(blobPath(dir, stray1)), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pruneUnreferenced deletes nothing when a referenced manifest is missing", async () => {
  const dir = await tempDir();
  try {
    const stray = await writeBlob(dir, "stray");
    await putIndex(dir, {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: sha("missing"),
      size: 1,
    }, [imageTag("latest")]);
    await assert.rejects(
      () => pruneUnreferenced(dir),
      (err: Error) => err.message.startsWith("reset: failed to collect referenced blobs: "),
    );
    await Deno.stat(blobPath(dir, stray));
    const empty = await tempDir();
    await assert.rejects(
      () => pruneUnreferenced(empty),
      (err: Error) => err.message.startsWith("reset: failed to read index.json: could not read"),
    );
    await Deno.remove(empty, { recursive: true });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
