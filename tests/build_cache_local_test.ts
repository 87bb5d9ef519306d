// The content-store attachable (src/session/content_store.ts) and the client-side local cache /
// OCI-layout handling (src/cli/flags/cache_local.ts) against a real buildkitd, compared with
// upstream buildctl: local cache export and import, reset=true, oci/docker tar=false outputs.
//
// The session is assembled here from serveGrpc + the tunnel (health, FileSync, Content), since
// startSession has no way to add handlers yet.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  type CacheOptionsEntry,
  SolveRequest,
  type SolveResponse,
  type StatusResponse,
} from "../src/gen/github.com/moby/buildkit/api/services/control/control_solve.ts";
import { type BuildkitClient, connect, GrpcError, parseAddress } from "../src/client/mod.ts";
import { type Handler, serveGrpc } from "../src/session/grpc_server.ts";
import { openTunnel } from "../src/session/tunnel.ts";
import { Methods, newSessionId } from "../src/session/session.ts";
import { fileSyncHandler, type SenderStats } from "../src/session/filesync_send.ts";
import { ContentMethods, contentStoreHandlers } from "../src/session/content_store.ts";
import {
  finishCacheExports,
  prepareCacheExports,
  prepareCacheImports,
  prepareOciDirExport,
} from "../src/cli/flags/cache_local.ts";
import type { CacheEntry } from "../src/cli/flags/build.ts";
import { daemonTest, type TestDaemon } from "./_util/daemon.ts";
import { runUpstream } from "./_util/run.ts";
import { busyboxRootfs } from "./_util/busybox.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

// The busybox rootfs is part of the main context: a `local:` named context is not cacheable
// across builds (its LLB changes every time), the main context is.
const DOCKERFILE = [
  "FROM scratch AS base",
  "COPY rootfs/ /",
  "FROM base AS b",
  "RUN echo hello > /hello && head -c 300000 /dev/urandom > /random",
  "FROM scratch",
  "COPY --from=b /hello /random /",
  "",
].join("\n");

/** Content-store calls served, by method path (across sessions of this test file). */
const contentCalls = new Map<string, number>();

interface TestSession {
  id: string;
  close(): Promise<void>;
}

/** A session serving health, FileSync for `localDirs` and the content stores. */
function startTestSession(
  client: BuildkitClient,
  localDirs: Map<string, string>,
  stores: ReadonlyMap<string, string>,
): TestSession {
  const id = newSessionId();
  const handlers = new Map<string, Handler>();
  handlers.set(Methods.healthCheck, async (call) => {
    await call.recv();
    await call.send(new Uint8Array([0x08, 0x01]));
  });
  handlers.set(
    Methods.fileSyncDiffCopy,
    fileSyncHandler(localDirs, new Map<string, SenderStats>()),
  );
  for (const [path, h] of contentStoreHandlers(stores)) {
    handlers.set(path, (call) => {
      contentCalls.set(path, (contentCalls.get(path) ?? 0) + 1);
      return h(call);
    });
  }
  const md: [string, string][] = [
    ["x-docker-expose-session-uuid", id],
    ["x-docker-expose-session-sharedkey", ""],
  ];
  for (const path of handlers.keys()) md.push(["x-docker-expose-session-grpc-method", path]);
  const tunnel = openTunnel(client, md);
  const conn = serveGrpc(tunnel.duplex, handlers);
  return {
    id,
    async close() {
      tunnel.duplex.end();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([tunnel.ended, new Promise<void>((r) => timer = setTimeout(r, 5000))]);
      clearTimeout(timer);
      conn.close();
      tunnel.call.cancel();
      await conn.closed;
    },
  };
}

interface SolveResult {
  response?: SolveResponse;
  error?: GrpcError;
  statuses: StatusResponse[];
}

/** One dockerfile build with our session; returns the response and the Status stream. */
async function build(
  d: TestDaemon,
  ctx: string,
  stores: ReadonlyMap<string, string>,
  req: Partial<SolveRequest>,
): Promise<SolveResult> {
  const client = await connect({ address: parseAddress(d.addr), timeoutMs: 10_000 });
  try {
    const session = startTestSession(
      client,
      new Map([["context", ctx], ["dockerfile", ctx]]),
      stores,
    );
    const ref = `test${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
    const full = SolveRequest.fromPartial({
      Ref: ref,
      Session: session.id,
      Frontend: "dockerfile.v0",
      ...req,
    });
    const statuses: StatusResponse[] = [];
    const statusDone = (await client.status(ref, (st) => statuses.push(st))).status;
    const result: SolveResult = await client.solve(full).then(
      (response) => ({ response, statuses }),
      (error: GrpcError) => ({ error, statuses }),
    );
    await Promise.race([statusDone, new Promise((r) => setTimeout(r, 5000))]);
    await session.close();
    return result;
  } finally {
    client.close();
  }
}

function assertOk(res: SolveResult): SolveResponse {
  if (res.error || !res.response) assert.fail(`build failed: ${res.error?.details}`);
  return res.response;
}

const cacheOpts = (exports: CacheEntry[], imports: CacheEntry[]) => ({
  ExportRefDeprecated: "",
  ImportRefsDeprecated: [],
  ExportAttrsDeprecated: {},
  Exports: exports.map((c): CacheOptionsEntry => ({ Type: c.type, Attrs: c.attrs })),
  Imports: imports.map((c): CacheOptionsEntry => ({ Type: c.type, Attrs: c.attrs })),
});

const upstreamBuild = async (d: TestDaemon, ctx: string, extra: string[]) => {
  const res = await runUpstream([
    "--addr",
    d.addr,
    "build",
    "--progress=plain",
    "--frontend",
    "dockerfile.v0",
    "--local",
    `context=${ctx}`,
    "--local",
    `dockerfile=${ctx}`,
    ...extra,
  ]);
  assert.equal(res.code, 0, res.stderr);
  return res;
};

/** Paths, types, permission bits and content hashes of a tree. */
async function describeTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    names.sort();
    for (const name of names) {
      const abs = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await Deno.lstat(abs);
      const perm = ((st.mode ?? 0) & 0o7777).toString(8);
      if (st.isDirectory) {
        out.push(`${r}/ ${perm}`);
        await walk(abs, r);
      } else {
        const h = createHash("sha256").update(await Deno.readFile(abs)).digest("hex");
        out.push(`${r} ${perm} ${h}`);
      }
    }
  };
  await walk(root, "");
  return out;
}

/** Every blob's content hashes to its file name. */
async function assertBlobsValid(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(join(dir, "blobs", "sha256"))) {
    const h = createHash("sha256").update(await Deno.readFile(join(dir, "blobs", "sha256", e.name)))
      .digest("hex");
    assert.equal(h, e.name, `blob ${e.name} has the wrong content`);
    n++;
  }
  return n;
}

async function withTemp(fn: (tmp: string, ctx: string) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "cache-local-" });
  try {
    const ctx = join(tmp, "ctx");
    await Deno.mkdir(ctx);
    await Deno.writeTextFile(join(ctx, "Dockerfile"), DOCKERFILE);
    const cp = await new Deno.Command("cp", {
      args: ["-a", `${await busyboxRootfs()}/.`, join(ctx, "rootfs")],
    }).output();
    assert.equal(cp.code, 0, new TextDecoder().decode(cp.stderr));
    await fn(tmp, ctx);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

const local = (attrs: Record<string, string>): CacheEntry => ({
  type: "local",
  attrs,
  legacy: false,
});

const runVertexes = (statuses: StatusResponse[]) =>
  statuses.flatMap((s) => s.vertexes).filter((v) => v.name.includes("RUN echo hello"));

// ---------------------------------------------------------------------------------------------
// Tests

daemonTest(
  "local cache exported by upstream buildctl is imported through our content store (after prune)",
  async (_t, d) => {
    await withTemp(async (tmp, ctx) => {
      const cache = join(tmp, "cache");
      await upstreamBuild(d, ctx, ["--export-cache", `type=local,dest=${cache},mode=max`]);
      const prune = await runUpstream(["--addr", d.addr, "prune", "--all"]);
      assert.equal(prune.code, 0, prune.stderr);

      const imports = await prepareCacheImports([
        local({ src: cache }),
        local({ src: join(tmp, "missing") }),
        local({ src: cache, tag: "nope" }),
      ]);
      assert.equal(imports.entries.length, 1);
      const index = JSON.parse(await Deno.readTextFile(join(cache, "index.json")));
      assert.equal(imports.entries[0]!.attrs["digest"], index.manifests[0].digest);
      assert.deepEqual([...imports.stores], [[`local:${cache}`, cache]]);
      assert.deepEqual(imports.warnings.map((w) => w.msg), [
        `local cache import at ${tmp}/missing skipped due to err: could not read ${tmp}/missing/index.json: open ${tmp}/missing/index.json: no such file or directory`,
        `local cache import at ${cache} skipped: no digest found for tag nope`,
      ]);

      contentCalls.clear();
      const res = await build(d, ctx, imports.stores, {
        FrontendAttrs: {
          "cache-imports": JSON.stringify(
            imports.entries.map((c) => ({ Type: c.type, Attrs: c.attrs })),
          ),
        },
        Cache: cacheOpts([], imports.entries),
      });
      assertOk(res);
      const names = res.statuses.flatMap((s) => s.vertexes.map((v) => v.name));
      assert.ok(
        names.some((n) => n.startsWith("importing cache manifest from local:")),
        `no cache import vertex in ${JSON.stringify([...new Set(names)])}`,
      );
      const run = runVertexes(res.statuses);
      assert.ok(run.length > 0, "the RUN vertex was reported");
      assert.ok(run.some((v) => v.cached), "the RUN step came from the imported cache");
      assert.ok(!run.some((v) => v.started && !v.cached), "the RUN step did not execute");
      // The daemon read the cache manifest and config from our store.
      assert.ok(
        (contentCalls.get(ContentMethods.info) ?? 0) > 0,
        JSON.stringify([...contentCalls]),
      );
      assert.ok(
        (contentCalls.get(ContentMethods.read) ?? 0) > 0,
        JSON.stringify([...contentCalls]),
      );
    });
  },
);

daemonTest(
  "local cache export through our content store (tag, reset=true) matches upstream's directory",
  async (_t, d) => {
    await withTemp(async (tmp, ctx) => {
      const ours = join(tmp, "ours", "cache");
      const theirs = join(tmp, "theirs", "cache");
      // A stale blob in both: reset=true removes it.
      const stale = createHash("sha256").update("stale").digest("hex");
      for (const dir of [ours, theirs]) {
        await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
        await Deno.writeTextFile(join(dir, "blobs", "sha256", stale), "stale");
      }

      // Ours first (the daemon has to build), then upstream from the same cache records.
      const exports = [local({ dest: ours, mode: "max", tag: "t1", reset: "true" })];
      const prepared = await prepareCacheExports(exports);
      assert.deepEqual([...prepared.stores], [[`local:${ours}`, ours]]);
      contentCalls.clear();
      const res = await build(d, ctx, prepared.stores, { Cache: cacheOpts(exports, []) });
      assert.ok(
        (contentCalls.get(ContentMethods.write) ?? 0) >= 3,
        JSON.stringify([...contentCalls]),
      );
      const resp = assertOk(res);
      assert.ok(resp.ExporterResponse["cache.manifest"], "the daemon reported cache.manifest");
      const done = await finishCacheExports(exports, resp.ExporterResponse);
      assert.deepEqual(done.warnings, []);

      await upstreamBuild(d, ctx, [
        "--export-cache",
        `type=local,dest=${theirs},mode=max,tag=t1,reset=true`,
      ]);

      assert.ok(await assertBlobsValid(ours) >= 3);
      const ourTree = await describeTree(ours);
      assert.ok(!ourTree.some((l) => l.includes(stale)), "the stale blob was pruned");
      assert.deepEqual(ourTree, await describeTree(theirs));
      const idx = JSON.parse(await Deno.readTextFile(join(ours, "index.json")));
      assert.equal(idx.manifests[0].annotations["org.opencontainers.image.ref.name"], "t1");

      // The exported cache imports back through our store.
      const imports = await prepareCacheImports([local({ src: ours, tag: "t1" })]);
      assert.equal(imports.entries.length, 1);
      assert.deepEqual(imports.warnings, []);
    });
  },
);

daemonTest(
  "oci and docker tar=false outputs through the export store match upstream's layout",
  async (_t, d) => {
    await withTemp(async (tmp, ctx) => {
      const epoch = { "build-arg:SOURCE_DATE_EPOCH": "0" };
      for (
        const [type, name] of [["oci", "foo/bar:v1"], ["docker", undefined]] as const
      ) {
        const ours = join(tmp, `ours-${type}`, "out");
        const theirs = join(tmp, `theirs-${type}`, "out");
        const stores = new Map<string, string>();
        await prepareOciDirExport(ours, stores);
        await assert.rejects(
          () => prepareOciDirExport(ours, stores),
          /oci store key "export" already exists/,
        );
        const attrs: Record<string, string> = { tar: "false" };
        if (name) attrs["name"] = name;
        const res = await build(d, ctx, stores, {
          FrontendAttrs: epoch,
          Exporters: [{ Type: type, Attrs: attrs }],
        });
        const resp = assertOk(res);
        await finishCacheExports([], resp.ExporterResponse, { ociDirs: [ours] });

        await upstreamBuild(d, ctx, [
          "--opt",
          "build-arg:SOURCE_DATE_EPOCH=0",
          "--output",
          `type=${type},tar=false,dest=${theirs}${name ? `,name=${name}` : ""}`,
        ]);
        assert.ok(await assertBlobsValid(ours) >= 3);
        assert.deepEqual(await describeTree(ours), await describeTree(theirs), `${type} layout`);
        const idx = JSON.parse(await Deno.readTextFile(join(ours, "index.json")));
        assert.equal(
          idx.manifests[0].annotations["org.opencontainers.image.ref.name"],
          name ? "v1" : "latest",
        );
      }
    });
  },
);

Deno.test("content store method paths are the containerd Content service's", () => {
  assert.equal(ContentMethods.write, "/containerd.services.content.v1.Content/Write");
  assert.equal(ContentMethods.read, "/containerd.services.content.v1.Content/Read");
});
