import assert from "node:assert/strict";
import http2 from "node:http2";
import net from "node:net";
import {
  type AuditRecord,
  entitlementBase,
  formatAuditLine,
  headersFromRaw,
  isAllowedMethod,
  missingEntitlements,
  type Policy,
  startGatekeeper,
} from "./gatekeeper.ts";
import { decodeGrpcMessage, encodeGrpcFrame } from "./grpc_frames.ts";
import { encodeHeaders } from "./hpack.ts";
import { Flag, frame, FrameSplitter, frameStream, FrameType, PREFACE } from "./h2_frames.ts";

Deno.test("isAllowedMethod() accepts exactly the allow-list and LLBBridge methods", async (t) => {
  const cases: [string, boolean][] = [
    ["/moby.buildkit.v1.Control/Solve", true],
    ["/moby.buildkit.v1.Control/Status", true],
    ["/moby.buildkit.v1.Control/Session", true],
    ["/moby.buildkit.v1.Control/DiskUsage", true],
    ["/moby.buildkit.v1.Control/Prune", true],
    ["/moby.buildkit.v1.Control/ListWorkers", true],
    ["/moby.buildkit.v1.Control/Info", true],
    ["/grpc.health.v1.Health/Check", true],
    ["/moby.buildkit.v1.frontend.LLBBridge/Ping", true],
    ["/moby.buildkit.v1.frontend.LLBBridge/Solve", true],
    ["/moby.buildkit.v1.frontend.LLBBridge/NewContainer", true],
    ["/grpc.health.v1.Health/Watch", false],
    ["/moby.buildkit.v1.Control/ListenBuildHistory", false],
    ["/moby.buildkit.v1.Control/UpdateBuildHistory", false],
    ["/moby.buildkit.v1.Control/solve", false],
    ["/moby.buildkit.v1.Control/Solve/", false],
    ["/moby.buildkit.v1.Control/Solve?x=1", false],
    ["/moby.buildkit.v1.frontend.LLBBridge/", false],
    ["/moby.buildkit.v1.frontend.LLBBridge/a/b", false],
    ["/moby.buildkit.v1.frontend.LLBBridge/../Control/UpdateBuildHistory", false],
    ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", false],
    ["/containerd.services.content.v1.Content/Read", false],
    ["/opentelemetry.proto.collector.trace.v1.TraceService/Export", false],
    ["", false],
  ];
  for (const [path, want] of cases) {
    await t.step(
      `${JSON.stringify(path)} → ${want}`,
      () => assert.equal(isAllowedMethod(path), want),
    );
  }
});

Deno.test("missingEntitlements() compares base names and exact device grants", async (t) => {
  assert.equal(entitlementBase("device=gpu0,alias=x"), "device");
  assert.equal(entitlementBase("network.host"), "network.host");
  const cases: [string, string[], string[], string[]][] = [
    ["nothing requested", [], [], []],
    ["granted", ["network.host"], ["network.host"], []],
    ["not granted", ["security.insecure"], ["network.host"], ["security.insecure"]],
    ["device base grant covers a named device", ["device=gpu0,alias=x"], ["device"], []],
    ["device request without grant", ["device=gpu0"], ["network.host"], ["device=gpu0"]],
    ["named device grant covers only itself", ["device=gpu1"], ["device=gpu0"], ["device=gpu1"]],
    ["named device grant does not cover bare device", ["device"], ["device=gpu0"], ["device"]],
    ["duplicates reported once", ["security.insecure", "security.insecure"], [], [
      "security.insecure",
    ]],
    ["odd spelling fails closed", [" network.host", "NETWORK.HOST"], ["network.host"], [
      " network.host",
      "NETWORK.HOST",
    ]],
  ];
  for (const [name, requested, granted, want] of cases) {
    await t.step(name, () => assert.deepEqual(missingEntitlements(requested, granted), want));
  }
});

Deno.test("headersFromRaw() keeps repeated fields separate and drops connection headers", () => {
  const h = headersFromRaw(
    [
      ":method",
      "POST",
      ":path",
      "/a/b",
      ":status",
      "200",
      "x-docker-expose-session-grpc-method",
      "/a,b/c",
      "x-docker-expose-session-grpc-method",
      "/d/e",
      "content-type",
      "application/grpc",
      "content-type",
      "text/plain",
      "connection",
      "close",
      "te",
      "trailers",
    ],
    new Set([":method", ":path"]),
  );
  assert.deepEqual({ ...h }, {
    ":method": "POST",
    ":path": "/a/b",
    "x-docker-expose-session-grpc-method": ["/a,b/c", "/d/e"],
    "content-type": "application/grpc",
    te: "trailers",
  });
});

Deno.test("formatAuditLine() writes one JSON object per line", () => {
  const line = formatAuditLine({
    time: "2026-01-01T00:00:00.000Z",
    event: "solve",
    uid: 1000,
    gid: 1000,
    pid: 42,
    method: "/moby.buildkit.v1.Control/Solve",
    entitlements: ["security.insecure"],
    decision: "deny",
  });
  assert.ok(line.endsWith("}\n"));
  assert.equal(line.split("\n").length, 2);
  assert.equal(JSON.parse(line).decision, "deny");
});

// --- in-process proxy tests against a fake upstream ---------------------------------

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}
function strField(field: number, s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...varint((field << 3) | 2), ...varint(b.length), ...b];
}
/** A SolveRequest with a ref and the given entitlements. */
function solveRequest(entitlements: string[]): Uint8Array {
  return encodeGrpcFrame(
    new Uint8Array([...strField(1, "ref1"), ...entitlements.flatMap((e) => strField(9, e))]),
  );
}

interface SeenRequest {
  path: string;
  raw: string[];
  body: Uint8Array;
}

/** A fake daemon: echoes the body (or fails if the path ends in /Fail) and records what it saw. */
async function fakeUpstream(path: string) {
  const seen: SeenRequest[] = [];
  const h2 = http2.createServer();
  h2.on(
    "stream",
    (
      stream: http2.ServerHttp2Stream,
      headers: http2.IncomingHttpHeaders,
      _f: number,
      raw: string[],
    ) => {
      const chunks: Uint8Array[] = [];
      const p = String(headers[":path"]);
      if (p.endsWith("/Info")) {
        // trailers-only error response
        stream.respond({
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": "5",
          "grpc-message": "no%20such",
        }, {
          endStream: true,
        });
        seen.push({ path: p, raw, body: new Uint8Array() });
        stream.resume();
        return;
      }
      // bidi echo: respond at once, echo every chunk as it comes
      stream.respond({ ":status": 200, "content-type": "application/grpc", "x-r": ["1", "2"] }, {
        waitForTrailers: true,
      });
      stream.on("data", (c: Uint8Array) => {
        chunks.push(c);
        stream.write(c);
      });
      stream.on(
        "wantTrailers",
        () =>
          stream.sendTrailers({
            "grpc-status": "0",
            "grpc-status-details-bin": "AAEC",
            "x-t": "t",
          }),
      );
      stream.on("end", () => {
        seen.push({ path: p, raw, body: concat(chunks) });
        stream.end();
      });
    },
  );
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    h2.emit("connection", s);
  });
  await new Promise<void>((resolve) => server.listen(path, () => resolve()));
  return {
    seen,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

interface CallResult {
  raw: string[];
  data: Uint8Array;
  trailers: Record<string, string>;
  status: number | undefined;
  message: string;
}

/** One gRPC-shaped call; `chunks` are written one after another with a pause between them. */
function call(
  client: http2.ClientHttp2Session,
  path: string,
  chunks: Uint8Array[],
  extra: http2.OutgoingHttpHeaders = {},
): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const req = client.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...extra,
    });
    let raw: string[] = [];
    const data: Uint8Array[] = [];
    let trailers: Record<string, string> = {};
    let statusFromHeaders: string | undefined;
    let msgFromHeaders = "";
    req.on("response", (h: http2.IncomingHttpHeaders, _f: number, r: string[]) => {
      raw = r;
      statusFromHeaders = h["grpc-status"] as string | undefined;
      msgFromHeaders = (h["grpc-message"] as string | undefined) ?? "";
    });
    req.on("trailers", (h: http2.IncomingHttpHeaders) => {
      trailers = Object.fromEntries(Object.entries(h).map(([k, v]) => [k, String(v)]));
    });
    req.on("data", (c: Uint8Array) => data.push(c));
    req.on("error", reject);
    req.on("close", () => {
      const status = trailers["grpc-status"] ?? statusFromHeaders;
      resolve({
        raw,
        data: concat(data),
        trailers,
        status: status === undefined ? undefined : Number(status),
        message: decodeGrpcMessage(trailers["grpc-message"] ?? msgFromHeaders),
      });
    });
    (async () => {
      for (const c of chunks) {
        req.write(c);
        await new Promise((r) => setTimeout(r, 5));
      }
      req.end();
    })();
  });
}

async function withGate(
  policy: Policy,
  fn: (
    ctx: {
      client: () => http2.ClientHttp2Session;
      audit: AuditRecord[];
      seen: SeenRequest[];
      dir: string;
    },
  ) => Promise<void>,
  upstreamUp = true,
) {
  const dir = await Deno.makeTempDir({ prefix: "gate_test_" });
  const audit: AuditRecord[] = [];
  const upstream = upstreamUp ? await fakeUpstream(`${dir}/d.sock`) : undefined;
  const gate = startGatekeeper({
    path: `${dir}/gate.sock`,
    upstream: `${dir}/d.sock`,
    policy,
    audit: (r) => audit.push(r),
    hint: (_uid, missing) => `hint: sudo buildctl daemon start --entitlements=${missing.join(",")}`,
  });
  const clients: http2.ClientHttp2Session[] = [];
  try {
    await fn({
      client: () => {
        const c = http2.connect("http://localhost", {
          createConnection: () => net.connect(`${dir}/gate.sock`),
        });
        c.on("error", () => {});
        clients.push(c);
        return c;
      },
      audit,
      seen: upstream?.seen ?? [],
      dir,
    });
  } finally {
    for (const c of clients) c.destroy();
    await gate.close();
    await upstream?.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Grants the test process's own uid (root in CI) network.host only. */
const allowSelf: Policy = (uid) => ({
  allowed: uid === Deno.uid(),
  entitlements: uid === Deno.uid() ? ["network.host"] : [],
});

Deno.test({
  name:
    "gatekeeper forwards a bidi stream with repeated headers, response headers and trailers intact",
  fn: () =>
    withGate(allowSelf, async ({ client, seen }) => {
      const c = client();
      const parts = [
        new Uint8Array([0, 0, 0, 0, 2, 1]),
        new Uint8Array([2]),
        new Uint8Array(100_000).fill(7),
      ];
      const res = await call(c, "/moby.buildkit.v1.Control/Session", parts, {
        "x-docker-expose-session-uuid": "abc",
        "x-docker-expose-session-grpc-method": ["/moby.filesync.v1.FileSync/DiffCopy", "/a,b/c"],
      });
      assert.equal(res.status, 0);
      assert.equal(res.trailers["grpc-status-details-bin"], "AAEC");
      assert.equal(res.trailers["x-t"], "t");
      assert.deepEqual(res.data, concat(parts));
      // response headers: the repeated field arrives as two fields
      const xr = res.raw.flatMap((v, i) => (i % 2 === 0 && v === "x-r" ? [res.raw[i + 1]] : []));
      assert.deepEqual(xr, ["1", "2"]);
      // request headers at the daemon: separate fields, not comma-joined
      const s = seen.find((r) => r.path.endsWith("/Session"))!;
      const methods = s.raw.flatMap((v, i) =>
        i % 2 === 0 && v === "x-docker-expose-session-grpc-method" ? [s.raw[i + 1]] : []
      );
      assert.deepEqual(methods, ["/moby.filesync.v1.FileSync/DiffCopy", "/a,b/c"]);
      assert.deepEqual(s.body, concat(parts));
    }),
});

Deno.test({
  name: "gatekeeper forwards a trailers-only error response",
  fn: () =>
    withGate(allowSelf, async ({ client }) => {
      const res = await call(client(), "/moby.buildkit.v1.Control/Info", [
        encodeGrpcFrame(new Uint8Array()),
      ]);
      assert.equal(res.status, 5);
      assert.equal(res.message, "no such");
    }),
});

Deno.test({
  name:
    "gatekeeper answers PERMISSION_DENIED for a method outside the allow-list without forwarding",
  fn: () =>
    withGate(allowSelf, async ({ client, seen, audit }) => {
      const res = await call(client(), "/moby.buildkit.v1.Control/UpdateBuildHistory", [
        encodeGrpcFrame(new Uint8Array()),
      ]);
      assert.equal(res.status, 7);
      assert.match(res.message, /UpdateBuildHistory.*not allowed/);
      assert.equal(seen.length, 0);
      assert.ok(audit.some((a) => a.event === "request" && a.decision === "deny"));
    }),
});

Deno.test({
  name: "gatekeeper refuses a Solve asking for an entitlement outside the grant, with the hint",
  fn: () =>
    withGate(allowSelf, async ({ client, seen, audit }) => {
      const res = await call(client(), "/moby.buildkit.v1.Control/Solve", [
        solveRequest(["network.host", "security.insecure"]),
      ]);
      assert.equal(res.status, 7);
      assert.match(res.message, /entitlement "security\.insecure" is not granted to uid \d+ by/);
      assert.match(
        res.message,
        /\nhint: sudo buildctl daemon start --entitlements=security\.insecure$/,
      );
      assert.equal(seen.length, 0);
      const rec = audit.find((a) => a.event === "solve")!;
      assert.equal(rec.decision, "deny");
      assert.deepEqual(rec.entitlements, ["network.host", "security.insecure"]);
      assert.equal(rec.uid, Deno.uid());
      assert.equal(rec.pid, Deno.pid);
    }),
});

Deno.test({
  name: "gatekeeper forwards a Solve within the grant byte for byte",
  fn: () =>
    withGate(allowSelf, async ({ client, seen, audit }) => {
      const req = solveRequest(["network.host"]);
      // split the message across DATA frames
      const res = await call(client(), "/moby.buildkit.v1.Control/Solve", [
        req.subarray(0, 3),
        req.subarray(3),
      ]);
      assert.equal(res.status, 0);
      assert.deepEqual(seen[0]!.body, req);
      assert.ok(audit.some((a) => a.event === "solve" && a.decision === "allow"));
    }),
});

Deno.test({
  name: "gatekeeper refuses a compressed or malformed Solve",
  fn: () =>
    withGate(allowSelf, async ({ client, seen }) => {
      const c = client();
      const compressed = solveRequest([]);
      compressed[0] = 1;
      assert.equal((await call(c, "/moby.buildkit.v1.Control/Solve", [compressed])).status, 7);
      const two = new Uint8Array([...solveRequest([]), ...solveRequest(["security.insecure"])]);
      assert.equal((await call(c, "/moby.buildkit.v1.Control/Solve", [two])).status, 3);
      const bad = encodeGrpcFrame(new Uint8Array([...varint((9 << 3) | 2), 50, 1]));
      assert.equal((await call(c, "/moby.buildkit.v1.Control/Solve", [bad])).status, 3);
      assert.equal(seen.length, 0);
    }),
});

Deno.test({
  name: "gatekeeper closes a connection from a uid the policy refuses and audits it",
  fn: () =>
    withGate(() => ({ allowed: false, entitlements: ["network.host"] }), async ({ dir, audit }) => {
      const conn = await Deno.connect({ transport: "unix", path: `${dir}/gate.sock` });
      // the gate closes without reading: the first read sees EOF (or a reset)
      const n = await conn.read(new Uint8Array(16)).catch(() => null);
      assert.equal(n, null);
      conn.close();
      assert.equal(audit.length, 1);
      assert.equal(audit[0]!.event, "connect");
      assert.equal(audit[0]!.decision, "deny");
      assert.equal(audit[0]!.uid, Deno.uid());
    }),
});

Deno.test({
  name: "gatekeeper answers UNAVAILABLE when the daemon socket is missing",
  fn: () =>
    withGate(allowSelf, async ({ client }) => {
      const res = await call(client(), "/moby.buildkit.v1.Control/ListWorkers", [
        encodeGrpcFrame(new Uint8Array()),
      ]);
      assert.equal(res.status, 14);
      assert.match(res.message, /ENOENT/);
    }, false),
});

Deno.test({
  name: "gatekeeper forwards a Solve larger than the HTTP/2 flow-control windows",
  fn: () =>
    withGate(allowSelf, async ({ client, seen }) => {
      const big = "x".repeat(300_000);
      const req = encodeGrpcFrame(
        new Uint8Array([...strField(1, big), ...strField(9, "network.host")]),
      );
      const c = client();
      const parts = [
        req.subarray(0, 100_000),
        req.subarray(100_000, 250_000),
        req.subarray(250_000),
      ];
      const res = await call(c, "/moby.buildkit.v1.Control/Solve", parts);
      assert.equal(res.status, 0);
      assert.deepEqual(res.data, req);
      assert.deepEqual(seen[0]!.body, req);
      // the connection's windows are still sound: a second large call on it completes
      const again = await call(c, "/moby.buildkit.v1.Control/Session", [new Uint8Array(500_000)]);
      assert.equal(again.status, 0);
      assert.equal(again.data.length, 500_000);
    }),
});

Deno.test({
  name: "gatekeeper keeps calls apart around a refused call and a Solve still being checked",
  fn: () =>
    withGate(allowSelf, async ({ client, seen }) => {
      const c = client();
      const refused = await call(c, "/grpc.health.v1.Health/Watch", [new Uint8Array(10)]);
      assert.equal(refused.status, 7);
      const req = solveRequest(["network.host"]);
      // the Solve is sent slowly, so the Session call opens (and is forwarded) while it is held
      const solve = call(c, "/moby.buildkit.v1.Control/Solve", [
        req.subarray(0, 2),
        req.subarray(2, 6),
        req.subarray(6),
      ]);
      const session = call(c, "/moby.buildkit.v1.Control/Session", [new Uint8Array([1, 2, 3])]);
      const denied = call(c, "/moby.buildkit.v1.Control/Solve", [solveRequest(["device"])]);
      const [s, t, d] = await Promise.all([solve, session, denied]);
      assert.equal(s.status, 0);
      assert.deepEqual(s.data, req);
      assert.equal(t.status, 0);
      assert.deepEqual(t.data, new Uint8Array([1, 2, 3]));
      assert.equal(d.status, 7);
      assert.deepEqual(seen.map((r) => r.path).sort(), [
        "/moby.buildkit.v1.Control/Session",
        "/moby.buildkit.v1.Control/Solve",
      ]);
    }),
});

/** Writes raw bytes to a Deno connection, all of them. */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

Deno.test({
  name: "gatekeeper decodes a request header block whose CONTINUATION arrives in a later read",
  fn: () =>
    withGate(allowSelf, async ({ dir, seen }) => {
      const conn = await Deno.connect({ transport: "unix", path: `${dir}/gate.sock` });
      const block = encodeHeaders([
        [":method", "POST"],
        [":scheme", "http"],
        [":path", "/moby.buildkit.v1.Control/Session"],
        [":authority", "localhost"],
        ["content-type", "application/grpc"],
        ["te", "trailers"],
        ["x-pad", "p".repeat(3000)],
        ["x-last", "end"],
      ]);
      const cut = 1500;
      const body = encodeGrpcFrame(new Uint8Array([1, 2, 3, 4]));
      // First read: preface, SETTINGS and a HEADERS frame without END_HEADERS.
      await writeAll(
        conn,
        new Uint8Array([
          ...PREFACE,
          ...frame(FrameType.SETTINGS, 0, 0),
          ...frame(FrameType.HEADERS, 0, 1, block.subarray(0, cut)),
        ]),
      );
      await new Promise((r) => setTimeout(r, 50)); // the gate reads (and reuses its buffer) in between
      await writeAll(
        conn,
        new Uint8Array([
          ...frame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(cut)),
          ...frame(FrameType.DATA, Flag.END_STREAM, 1, body),
        ]),
      );
      // Read until the response ends on stream 1, acknowledging the daemon's SETTINGS.
      const splitter = new FrameSplitter();
      const echoed: Uint8Array[] = [];
      let done = false;
      const buf = new Uint8Array(65536);
      while (!done) {
        const n = await conn.read(buf);
        if (n === null) break;
        const acks: Uint8Array[] = [];
        splitter.push(buf.subarray(0, n), (b, off, len) => {
          const type = b[off + 3];
          const flags = b[off + 4]!;
          if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) {
            acks.push(frame(FrameType.SETTINGS, Flag.ACK, 0));
          }
          if (frameStream(b, off) !== 1) return;
          if (type === FrameType.DATA) echoed.push(b.slice(off + 9, off + 9 + len));
          if ((type === FrameType.HEADERS || type === FrameType.DATA) && flags & Flag.END_STREAM) {
            done = true;
          }
        });
        for (const a of acks) await writeAll(conn, a);
      }
      conn.close();
      assert.ok(done, "the response ended");
      assert.deepEqual(concat(echoed), body);
      const s = seen.find((r) => r.path === "/moby.buildkit.v1.Control/Session")!;
      assert.ok(s, "the daemon saw the request");
      assert.deepEqual(s.body, body);
      const pad = s.raw.findIndex((v, i) => i % 2 === 0 && v === "x-pad");
      assert.equal(s.raw[pad + 1], "p".repeat(3000));
      assert.equal(s.raw[s.raw.indexOf("x-last") + 1], "end");
    }),
});

Deno.test({
  name: "gatekeeper relays 8 MiB each way intact to a client that reads slowly",
  fn: () =>
    withGate(allowSelf, async ({ client }) => {
      const c = client();
      const size = 8 << 20;
      const sent = new Uint8Array(size);
      for (let i = 0; i < size; i++) sent[i] = (i * 131 + (i >>> 16)) & 0xff;
      const res = await new Promise<Uint8Array>((resolve, reject) => {
        const req = c.request({
          ":method": "POST",
          ":path": "/moby.buildkit.v1.Control/Session",
          "content-type": "application/grpc",
          te: "trailers",
        });
        const got: Uint8Array[] = [];
        req.on("data", (chunk: Uint8Array) => {
          got.push(chunk);
          // a slow reader: the gate must queue, pause the daemon leg and resume it in order
          if (got.length % 16 === 0) {
            req.pause();
            setTimeout(() => req.resume(), 2);
          }
        });
        req.on("end", () => resolve(concat(got)));
        req.on("error", reject);
        (async () => {
          for (let off = 0; off < size; off += 1 << 20) {
            if (!req.write(sent.subarray(off, off + (1 << 20)))) {
              await new Promise((r) => req.once("drain", r));
            }
          }
          req.end();
        })();
      });
      assert.equal(res.length, size);
      assert.ok(res.every((b, i) => b === sent[i]), "the echo matches byte for byte");
    }),
});
