// Proves that the generated protocol types in src/gen are wire-compatible with BuildKit v0.32.2:
// exact bytes for known field numbers, lossless round trips, LLB accepted by the upstream Go
// buildctl, and real Control RPCs (ListWorkers, Info, DiskUsage) against a real buildkitd.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ControlDefinition } from "../src/gen/github.com/moby/buildkit/api/services/control/control.ts";
import { DiskUsageResponse } from "../src/gen/github.com/moby/buildkit/api/services/control/control_cache.ts";
import {
  ListWorkersRequest,
  ListWorkersResponse,
} from "../src/gen/github.com/moby/buildkit/api/services/control/control_info.ts";
import {
  SolveRequest,
  StatusResponse,
} from "../src/gen/github.com/moby/buildkit/api/services/control/control_solve.ts";
import { Definition, OpMetadata } from "../src/gen/github.com/moby/buildkit/solver/pb/graph.ts";
import { Op } from "../src/gen/github.com/moby/buildkit/solver/pb/ops.ts";
import { Packet, Packet_PacketType } from "../src/gen/github.com/tonistiigi/fsutil/types/wire.ts";
import {
  FileSendDefinition,
  FileSyncDefinition,
} from "../src/gen/github.com/moby/buildkit/session/filesync/filesync.ts";
import { AuthDefinition } from "../src/gen/github.com/moby/buildkit/session/auth/auth.ts";
import { SecretsDefinition } from "../src/gen/github.com/moby/buildkit/session/secrets/secrets.ts";
import { HealthDefinition } from "../src/gen/grpc/health/v1/health.ts";
import {
  connect,
  CONTROL_METHODS,
  CONTROL_SERVICE,
  controlPath,
  parseAddress,
  SESSION_METHOD,
} from "../src/client/mod.ts";
import { Methods } from "../src/session/session.ts";
import { startDaemon } from "./_util/daemon.ts";
import { UPSTREAM_BUILDCTL } from "./_util/paths.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);

const enc = new TextEncoder();

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

// ---------------------------------------------------------------------------------------------
// Pure encoding checks

Deno.test("SolveRequest encodes Ref/Session/CompatibilityVersion with BuildKit's field numbers and round-trips", () => {
  const bytes = SolveRequest.encode(
    SolveRequest.create({ Ref: "r", Session: "s", CompatibilityVersion: 30n }),
  ).finish();
  // field 1 (string) "r", field 5 (string) "s", field 16 (varint) 30
  assert.equal(hex(bytes), "0a 01 72 2a 01 73 80 01 1e");

  const req = SolveRequest.create({
    Ref: "ref1",
    Session: "sess1",
    Frontend: "dockerfile.v0",
    FrontendAttrs: { filename: "Dockerfile", "build-arg:A": "b" },
    Exporters: [{ Type: "local", Attrs: { dest: "out" } }],
    Cache: {
      ExportRefDeprecated: "",
      ImportRefsDeprecated: [],
      ExportAttrsDeprecated: {},
      Exports: [{ Type: "inline", Attrs: {} }],
      Imports: [{ Type: "registry", Attrs: { ref: "x/y:cache" } }],
    },
    Entitlements: ["network.host"],
    SourcePolicy: {
      version: 1n,
      rules: [{
        action: 2,
        selector: { identifier: "docker-image://alpine", matchType: 1, constraints: [] },
        updates: { identifier: "docker-image://alpine:3", attrs: {} },
      }],
    },
    ProxyNetwork: true,
  });
  const back = SolveRequest.decode(SolveRequest.encode(req).finish());
  assert.deepEqual(back, req);
});

Deno.test("ListWorkersRequest, StatusResponse and DiskUsageResponse round-trip (int64 as bigint, Timestamp as {seconds, nanos})", () => {
  const lw = ListWorkersRequest.create({ filter: ["platform==linux/amd64"] });
  assert.equal(
    hex(ListWorkersRequest.encode(lw).finish()),
    "0a 15 " + hex(enc.encode("platform==linux/amd64")),
  );
  assert.deepEqual(ListWorkersRequest.decode(ListWorkersRequest.encode(lw).finish()), lw);

  const when = { seconds: 1704164645n, nanos: 678_901_234 };
  const st = StatusResponse.create({
    vertexes: [{
      digest: "sha256:aa",
      inputs: [],
      name: "[1/2] FROM x",
      cached: false,
      started: when,
      error: "",
    }],
    statuses: [{
      ID: "transferring context:",
      vertex: "sha256:aa",
      name: "",
      current: 1n << 40n,
      total: 0n,
      timestamp: when,
    }],
    logs: [{ vertex: "sha256:aa", timestamp: when, stream: 2n, msg: utf8("hello\n") }],
    warnings: [],
  });
  assert.deepEqual(StatusResponse.decode(StatusResponse.encode(st).finish()), st);

  const du = DiskUsageResponse.create({
    record: [{
      ID: "abc",
      Mutable: true,
      Size: 123456789012n,
      CreatedAt: when,
      RecordType: "regular",
      Parents: ["p"],
    }],
  });
  assert.deepEqual(DiskUsageResponse.decode(DiskUsageResponse.encode(du).finish()), du);
});

Deno.test("fsutil Packet: empty STAT is zero bytes, uint32 mode with ModeDir (1<<31) survives, REQ/DATA ids encode", () => {
  assert.equal(Packet.encode(Packet.create({})).finish().length, 0);
  const dir = Packet.create({
    type: Packet_PacketType.PACKET_STAT,
    stat: {
      path: "a/b",
      mode: ((1 << 31) | 0o755) >>> 0,
      uid: 0,
      gid: 0,
      size: 0n,
      modTime: 1_700_000_000_123_456_789n,
      linkname: "",
      devmajor: 0n,
      devminor: 0n,
      xattrs: { "user.x": new Uint8Array([1, 2]) },
    },
  });
  const back = Packet.decode(Packet.encode(dir).finish());
  assert.equal(back.stat?.mode, 0x800001ed);
  assert.deepEqual(back, dir);
  // REQ{ID: 7} = type 1, ID field 3
  assert.equal(
    hex(Packet.encode(Packet.create({ type: Packet_PacketType.PACKET_REQ, ID: 7 })).finish()),
    "08 01 18 07",
  );
});

/** A small LLB graph: local://context source, exec with a cache mount, file op with mkfile. */
function sampleDefinition(): { def: Definition; bytes: Uint8Array; digests: string[] } {
  const platform = {
    Architecture: "amd64",
    OS: "linux",
    Variant: "",
    OSVersion: "",
    OSFeatures: [],
  };
  const src = Op.encode(Op.create({
    source: { identifier: "local://context", attrs: { "local.sharedkeyhint": "context" } },
    platform,
    constraints: { filter: [] },
  })).finish();
  const d0 = "sha256:" + createHash("sha256").update(src).digest("hex");
  const exec = Op.encode(Op.create({
    inputs: [{ digest: d0, index: 0n }],
    exec: {
      meta: {
        args: ["/bin/sh", "-c", "true"],
        env: ["PATH=/bin"],
        cwd: "/",
        user: "",
        hostname: "",
        cgroupParent: "",
        removeMountStubsRecursive: false,
        validExitCodes: [],
        extraHosts: [],
        ulimit: [],
      },
      mounts: [
        {
          input: 0n,
          selector: "",
          dest: "/",
          output: 0n,
          readonly: false,
          mountType: 0,
          resultID: "",
          contentCache: 0,
        },
        {
          input: -1n,
          selector: "",
          dest: "/cache",
          output: -1n,
          readonly: false,
          mountType: 3,
          cacheOpt: { ID: "c1", sharing: 2 },
          resultID: "",
          contentCache: 0,
        },
      ],
      network: 2,
      security: 0,
      secretenv: [],
      cdiDevices: [],
    },
    platform,
  })).finish();
  const d1 = "sha256:" + createHash("sha256").update(exec).digest("hex");
  const file = Op.encode(Op.create({
    inputs: [{ digest: d1, index: 0n }],
    file: {
      actions: [{
        input: 0n,
        secondaryInput: -1n,
        output: 0n,
        mkfile: { path: "/hello", mode: 0o644, data: utf8("hi"), timestamp: -1n },
      }],
    },
  })).finish();
  const d2 = "sha256:" + createHash("sha256").update(file).digest("hex");
  const term = Op.encode(Op.create({ inputs: [{ digest: d2, index: 0n }] })).finish();
  const d3 = "sha256:" + createHash("sha256").update(term).digest("hex");
  const def = Definition.create({
    def: [src.slice(), exec.slice(), file.slice(), term.slice()],
    metadata: {
      [d0]: OpMetadata.create({
        description: { "llb.customname": "load context" },
        caps: { "source.local": true },
      }),
      [d1]: OpMetadata.create({
        ignoreCache: true,
        progressGroup: { id: "g", name: "group", weak: false },
      }),
    },
  });
  return { def, bytes: Definition.encode(def).finish(), digests: [d0, d1, d2, d3] };
}

Deno.test("pb.Definition/Op round-trip losslessly, including the --no-cache trick of appending 08 01 to OpMetadata", () => {
  const { def, bytes } = sampleDefinition();
  const back = Definition.decode(bytes);
  assert.deepEqual(back, def);
  for (const raw of back.def) {
    assert.equal(hex(Op.encode(Op.decode(raw)).finish()), hex(raw));
  }
  const md = OpMetadata.encode(OpMetadata.create({ description: { a: "b" } })).finish();
  const patched = OpMetadata.decode(new Uint8Array([...md, 0x08, 0x01]));
  assert.equal(patched.ignoreCache, true);
  assert.deepEqual(patched.description, { a: "b" });
});

Deno.test("upstream Go buildctl (debug dump-llb) parses our encoded LLB with the same ops, digests and attrs", async () => {
  const { bytes, digests } = sampleDefinition();
  const child = new Deno.Command(UPSTREAM_BUILDCTL, {
    args: ["debug", "dump-llb"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(bytes);
  await w.close();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const lines = text.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 4);
  assert.deepEqual(lines.map((l) => l.Digest), digests);
  assert.match(text, /local:\/\/context/);
  assert.match(text, /local\.sharedkeyhint/);
  assert.match(text, /\/bin\/sh/);
  assert.match(text, /"c1"/);
  assert.match(text, /\/hello/);
  assert.match(text, /llb\.customname/);
  assert.match(text, /"amd64"/);
});

/** `/package.Service/Method` of a generated service definition's method. */
function methodPath<D extends { fullName: string; methods: Record<string, { name: string }> }>(
  def: D,
  method: keyof D["methods"] & string,
): string {
  return `/${def.fullName}/${def.methods[method]!.name}`;
}

Deno.test("service definitions carry BuildKit's exact gRPC method paths, as the session serves them", () => {
  assert.equal(methodPath(FileSyncDefinition, "diffCopy"), "/moby.filesync.v1.FileSync/DiffCopy");
  assert.equal(methodPath(FileSyncDefinition, "tarStream"), "/moby.filesync.v1.FileSync/TarStream");
  assert.equal(methodPath(FileSendDefinition, "diffCopy"), "/moby.filesync.v1.FileSend/DiffCopy");
  assert.equal(methodPath(AuthDefinition, "credentials"), "/moby.filesync.v1.Auth/Credentials");
  assert.equal(methodPath(AuthDefinition, "fetchToken"), "/moby.filesync.v1.Auth/FetchToken");
  assert.equal(
    methodPath(AuthDefinition, "getTokenAuthority"),
    "/moby.filesync.v1.Auth/GetTokenAuthority",
  );
  assert.equal(
    methodPath(AuthDefinition, "verifyTokenAuthority"),
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
  );
  assert.equal(
    methodPath(SecretsDefinition, "getSecret"),
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
  );
  assert.equal(methodPath(HealthDefinition, "check"), "/grpc.health.v1.Health/Check");
  assert.equal(methodPath(HealthDefinition, "watch"), "/grpc.health.v1.Health/Watch");
  assert.equal(methodPath(ControlDefinition, "session"), "/moby.buildkit.v1.Control/Session");
  assert.equal(SESSION_METHOD, "/moby.buildkit.v1.Control/Session");
  // The client names Control's methods itself (so that it need not load every message):
  // exactly the generated service's names and paths.
  assert.equal(CONTROL_SERVICE, ControlDefinition.fullName);
  assert.deepEqual(
    [...CONTROL_METHODS].sort(),
    Object.values(ControlDefinition.methods).map((m) => m.name).sort(),
  );
  for (
    const key of Object.keys(
      ControlDefinition.methods,
    ) as (keyof typeof ControlDefinition.methods)[]
  ) {
    const name = ControlDefinition.methods[key].name as typeof CONTROL_METHODS[number];
    assert.equal(controlPath(name), methodPath(ControlDefinition, key));
  }
  assert.equal(FileSyncDefinition.methods.diffCopy.requestStream, true);
  assert.equal(FileSyncDefinition.methods.diffCopy.responseStream, true);
  // What the session advertises and serves is exactly these paths.
  assert.equal(Methods.fileSyncDiffCopy, methodPath(FileSyncDefinition, "diffCopy"));
  assert.equal(Methods.fileSendDiffCopy, methodPath(FileSendDefinition, "diffCopy"));
  assert.equal(Methods.getSecret, methodPath(SecretsDefinition, "getSecret"));
  assert.equal(Methods.authCredentials, methodPath(AuthDefinition, "credentials"));
  assert.equal(Methods.healthCheck, methodPath(HealthDefinition, "check"));
});

// ---------------------------------------------------------------------------------------------
// Real daemon

/** mkfile on scratch: needs no session, no images and no network, but leaves a cache record. */
function scratchMkfileDefinition(): Definition {
  const file = Op.encode(Op.create({
    file: {
      actions: [{
        input: -1n,
        secondaryInput: -1n,
        output: 0n,
        mkfile: { path: "/hello", mode: 0o644, data: utf8("hi\n"), timestamp: -1n },
      }],
    },
  })).finish();
  const d = "sha256:" + createHash("sha256").update(file).digest("hex");
  const term = Op.encode(Op.create({ inputs: [{ digest: d, index: 0n }] })).finish();
  return Definition.create({
    def: [file.slice(), term.slice()],
    metadata: {
      [d]: OpMetadata.create({ description: { "llb.customname": "proto-compat mkfile" } }),
    },
  });
}

Deno.test({
  name:
    "our gRPC client and the generated types talk to a real buildkitd v0.32.2: Info, ListWorkers, Solve+Status, DiskUsage",
  fn: async () => {
    if (Deno.uid() !== 0) {
      throw new Error("this test needs root to start buildkitd");
    }
    const daemon = await startDaemon({ flags: ["--oci-worker-snapshotter=overlayfs"] });
    const client = await connect({ address: parseAddress(daemon.addr), timeoutMs: 10_000 });
    try {
      const info = await client.info();
      assert.equal(info.buildkitVersion?.version, "v0.32.2");
      assert.equal(info.buildkitVersion?.package, "github.com/moby/buildkit");

      // Raw bytes through the channel, decoded by the generated type.
      const workers = ListWorkersResponse.decode(
        await client.channel.unary(
          methodPath(ControlDefinition, "listWorkers"),
          ListWorkersRequest.encode({ filter: [] }).finish(),
        ),
      );
      assert.ok(workers.record.length >= 1, "at least one worker");
      const w = workers.record[0];
      assert.ok(w.ID.length > 0);
      assert.ok(w.platforms.length > 0, "worker platforms non-empty");
      assert.ok(w.platforms.every((p) => p.OS === "linux" && p.Architecture.length > 0));
      assert.equal(w.Labels["org.mobyproject.buildkit.worker.executor"], "oci");
      assert.equal(w.Labels["org.mobyproject.buildkit.worker.snapshotter"], "overlayfs");
      assert.equal(w.BuildkitVersion?.version, "v0.32.2");
      // The harness runs with --oci-worker-gc=false, so GC policies may be absent.
      for (const p of w.GCPolicy) assert.equal(typeof p.keepDuration, "bigint");

      // Solve a session-less LLB graph while streaming its Status.
      const ref = "protocompat" + crypto.randomUUID().replaceAll("-", "").slice(0, 14);
      const vertexNames = new Set<string>();
      let sawCompleted = false;
      const statusCall = await client.status(ref, (m) => {
        for (const v of m.vertexes) {
          vertexNames.add(v.name);
          if (v.completed && v.completed.seconds > 0n) sawCompleted = true;
        }
      });
      const solved = await client.solve(
        SolveRequest.create({ Ref: ref, Definition: scratchMkfileDefinition() }),
      );
      assert.deepEqual(solved.ExporterResponse, {});
      assert.equal((await statusCall.status).code, 0);
      assert.ok(vertexNames.has("proto-compat mkfile"), [...vertexNames].join(", "));
      assert.ok(sawCompleted, "a vertex reported a completed Timestamp");

      const du = await client.diskUsage({});
      assert.ok(du.length >= 1, "the solve left at least one cache record");
      for (const r of du) {
        assert.ok(r.ID.length > 0);
        assert.equal(typeof r.Size, "bigint");
        assert.ok(r.CreatedAt && r.CreatedAt.seconds >= 1704067200n);
      }
      assert.ok(du.some((r) => r.RecordType === "regular"), "a regular record exists");
    } catch (err) {
      console.error(
        `--- buildkitd log (${daemon.logPath}) ---\n${daemon.log()}\n--- end of log ---`,
      );
      throw err;
    } finally {
      client.close();
      await daemon.stop();
    }
  },
});
