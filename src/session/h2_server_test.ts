// The session's HTTP/2 + gRPC server: HPACK against vectors from Go's hpack
// encoder (what the daemon uses), and whole calls from a node:http2 client
// over an in-memory byte pipe.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import * as http2 from "node:http2";
import { createHash } from "node:crypto";
import { encodeHeaders, HpackDecoder, huffmanDecode } from "../launcher/hpack.ts";
import { GrpcStatusError, type Handler, serveGrpc, Status } from "./grpc_server.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));

// Two consecutive header blocks from golang.org/x/net/http2/hpack's encoder (Huffman strings,
// dynamic-table references in the second block).
const GO_BLOCK_1 =
  "8386459a6293c7e9794d4151eaa22fdc2be13505ddeaa2317cd2cb78f5fa4186a0e41d139d095f8b1d75" +
  "d0620d263d4c4d6564408690d62d50e92f8521ea497ca7408894f4507f158d33a303612c627e0163";
const GO_BLOCK_2_HEAD =
  "83c37f018790e4ea5b253505408c2f92516c855ab1a525b2a47f8756f32ac2faa28740912f92516c85" +
  "5ab1a525b2a42c5a88790b2701314085f2b507aa6f7fcd02";

Deno.test("HpackDecoder decodes Go-encoded blocks, keeping repeated fields and the dynamic table", () => {
  const d = new HpackDecoder();
  assert.deepEqual(d.decode(hex(GO_BLOCK_1)), [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", "/moby.filesync.v1.FileSync/DiffCopy"],
    [":authority", "localhost"],
    ["content-type", "application/grpc"],
    ["dir-name", "context"],
    ["followpaths", "a,b"],
    ["followpaths", "c"],
  ]);
  const long = "0123456789~!@#$%^&*()_+".repeat(20);
  const block2 = new Uint8Array([...hex(GO_BLOCK_2_HEAD), ...new TextEncoder().encode(long)]);
  assert.deepEqual(d.decode(block2), [
    [":method", "POST"],
    [":path", "/moby.filesync.v1.FileSync/DiffCopy"],
    ["dir-name", "dockerfile"],
    ["exclude-patterns", "%C3%A9%2A"],
    ["exclude-patterns-encoded", "1"],
    ["x-long", long],
  ]);
});

Deno.test("huffmanDecode() decodes RFC 7541 C.4.1 and rejects bad padding", () => {
  assert.equal(
    new TextDecoder().decode(huffmanDecode(hex("f1e3c2e5f23a6ba0ab90f4ff"))),
    "www.example.com",
  );
  assert.throws(() => huffmanDecode(hex("f1e3c2e5f23a6ba0ab90f400")));
});

Deno.test("encodeHeaders() output decodes back", () => {
  const fields: [string, string][] = [[":status", "200"], ["grpc-message", "a%20b"], ["x", ""]];
  assert.deepEqual(new HpackDecoder().decode(encodeHeaders(fields)), fields);
});

/** Two connected in-memory Duplex ends. */
function pipePair(): [Duplex, Duplex] {
  // deno-lint-ignore prefer-const
  let b: Duplex;
  const a = new Duplex({
    read() {},
    write(c, _e, cb) {
      b.push(c);
      cb();
    },
    final(cb) {
      b.push(null);
      cb();
    },
  });
  b = new Duplex({
    read() {},
    write(c, _e, cb) {
      a.push(c);
      cb();
    },
    final(cb) {
      a.push(null);
      cb();
    },
  });
  return [a, b];
}

function frameMessage(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

interface CallResult {
  status: number;
  message: string;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function grpcCall(
  session: http2.ClientHttp2Session,
  path: string,
  messages: Uint8Array[],
  extra: Record<string, string | string[]> = {},
): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":path": path,
      ":method": "POST",
      "content-type": "application/grpc",
      ...extra,
    });
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => headers = h);
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("trailers", (t) => headers = { ...headers, ...t });
    req.on("end", () =>
      resolve({
        status: Number(headers["grpc-status"]),
        message: decodeURIComponent(String(headers["grpc-message"] ?? "")),
        headers,
        body: Buffer.concat(chunks),
      }));
    req.on("error", reject);
    (async () => {
      for (const m of messages) {
        if (!req.write(frameMessage(m))) await new Promise((r) => req.once("drain", r));
      }
      req.end();
    })();
  });
}

/** Splits a gRPC response body into messages. */
function messagesOf(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < body.length;) {
    const len = body.readUInt32BE(off + 1);
    out.push(body.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  return out;
}

Deno.test("serveGrpc() serves streaming calls: raw repeated headers, large bodies both ways, statuses", async () => {
  const [serverEnd, clientEnd] = pipePair();
  const handlers = new Map<string, Handler>([
    ["/test.Svc/Headers", async (call) => {
      await call.recv();
      await call.send(new TextEncoder().encode(JSON.stringify(call.headers.get("followpaths"))));
    }],
    ["/test.Svc/Echo", async (call) => {
      // Echo every message back, hashing as we go.
      const h = createHash("sha256");
      for (;;) {
        const m = await call.recv();
        if (m === null) break;
        h.update(m);
        await call.send(m);
      }
      await call.send(new TextEncoder().encode(h.digest("hex")));
    }],
    ["/test.Svc/Big", async (call) => {
      await call.recv();
      for (let i = 0; i < 40; i++) {
        const buf = Buffer.alloc(5 + (256 << 10), i);
        await call.sendFramed(buf);
      }
    }],
    [
      "/test.Svc/Fail",
      () => Promise.reject(new GrpcStatusError(Status.NOT_FOUND, "no such thing: é 100%")),
    ],
    ["/test.Svc/Throws", () => {
      throw new GrpcStatusError(Status.INVALID_ARGUMENT, "thrown before any promise");
    }],
  ]);
  const server = serveGrpc(serverEnd, handlers);
  const session = http2.connect("http://localhost", { createConnection: () => clientEnd as never });
  try {
    const hdr = await grpcCall(session, "/test.Svc/Headers", [new Uint8Array()], {
      "followpaths": ["a, b", "c"],
    });
    assert.equal(hdr.status, 0);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(messagesOf(hdr.body)[0])), ["a, b", "c"]);

    // 24 MiB each way, more than every flow-control window.
    const msgs = Array.from({ length: 24 }, (_, i) => new Uint8Array(1 << 20).fill(i));
    const echo = await grpcCall(session, "/test.Svc/Echo", msgs);
    assert.equal(echo.status, 0);
    const back = messagesOf(echo.body);
    assert.equal(back.length, 25);
    const h = createHash("sha256");
    for (const m of msgs) h.update(m);
    assert.equal(new TextDecoder().decode(back[24]), h.digest("hex"));
    assert.ok(
      back.slice(0, 24).every((m, i) =>
        m.length === 1 << 20 && m[0] === i && m[m.length - 1] === i
      ),
    );

    // Concurrent streams.
    const bigs = await Promise.all(
      [1, 2, 3].map(() => grpcCall(session, "/test.Svc/Big", [new Uint8Array()])),
    );
    for (const b of bigs) {
      assert.equal(b.status, 0);
      const ms = messagesOf(b.body);
      assert.equal(ms.length, 40);
      assert.ok(ms.every((m, i) => m.length === 256 << 10 && m[0] === i));
    }

    const fail = await grpcCall(session, "/test.Svc/Fail", [new Uint8Array()]);
    assert.equal(fail.status, Status.NOT_FOUND);
    assert.equal(fail.message, "no such thing: é 100%");

    // A handler that throws synchronously fails its call, not the connection.
    const thrown = await grpcCall(session, "/test.Svc/Throws", [new Uint8Array()]);
    assert.equal(thrown.status, Status.INVALID_ARGUMENT);
    assert.equal(thrown.message, "thrown before any promise");

    const unknown = await grpcCall(session, "/test.Svc/Nope", [new Uint8Array()]);
    assert.equal(unknown.status, Status.UNIMPLEMENTED);
  } finally {
    session.destroy();
    server.close();
    await server.closed;
  }
});

Deno.test("serveGrpc() reassembles frames and messages split at odd byte offsets", async () => {
  const [serverEnd, clientEnd] = pipePair();
  const handlers = new Map<string, Handler>([
    ["/test.Svc/Echo", async (call) => {
      for (;;) {
        const m = await call.recv();
        if (m === null) break;
        await call.send(m);
      }
    }],
  ]);
  // The server gets the client's bytes re-chunked into odd-sized pieces, so that
  // frames and gRPC messages straddle them; its output goes to the client as is.
  const serverSide = new Duplex({
    read() {},
    write(c, e, cb) {
      serverEnd.write(c, e, cb);
    },
    final(cb) {
      serverEnd.end();
      cb();
    },
  });
  serverEnd.on("data", (c: Buffer) => {
    for (let off = 0; off < c.length; off += 7777) serverSide.push(c.subarray(off, off + 7777));
  });
  serverEnd.on("end", () => serverSide.push(null));
  const server = serveGrpc(serverSide, handlers);
  const session = http2.connect("http://localhost", { createConnection: () => clientEnd as never });
  try {
    let seed = 1;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    const sizes = [1, 3, 100, 16384, 20000, 65536, 70000, 1 << 20, 5, 40000];
    const msgs = sizes.map((n) => Uint8Array.from({ length: n }, rand));
    const echo = await grpcCall(session, "/test.Svc/Echo", msgs);
    assert.equal(echo.status, 0);
    const back = messagesOf(echo.body);
    assert.equal(back.length, msgs.length);
    back.forEach((m, i) => assert.ok(Buffer.from(msgs[i]!).equals(m), `message ${i}`));
  } finally {
    session.destroy();
    server.close();
    await server.closed;
  }
});
