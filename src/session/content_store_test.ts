import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { GrpcStatusError, type ServerCall, Status } from "./grpc_server.ts";
import {
  ContentMethods,
  contentStoreHandlers,
  READ_CHUNK,
  STORE_ID_HEADER,
} from "./content_store.ts";
import {
  AbortRequest,
  DeleteContentRequest,
  InfoRequest,
  InfoResponse,
  ListContentRequest,
  ListContentResponse,
  ListStatusesRequest,
  ListStatusesResponse,
  ReadContentRequest,
  ReadContentResponse,
  StatusRequest,
  StatusResponse,
  UpdateRequest,
  WriteAction,
  WriteContentRequest,
  WriteContentResponse,
} from "../gen/github.com/containerd/containerd/api/services/content/v1/content.ts";

const sha = (b: Uint8Array | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

interface FakeCall {
  call: ServerCall;
  /** Response messages (without the gRPC prefix). */
  sent: Buffer[];
  /** Queues a request message (null = half-close). */
  push(msg: Uint8Array | null): void;
  abort(): void;
}

/** A ServerCall driven by the test: requests are queued, responses collected. */
function fakeCall(
  path: string,
  storeId: string | undefined,
  msgs: (Uint8Array | null)[] = [],
): FakeCall {
  const queue = [...msgs];
  let waiter: (() => void) | undefined;
  const ac = new AbortController();
  const sent: Buffer[] = [];
  const headers = new Map<string, string[]>();
  if (storeId !== undefined) headers.set(STORE_ID_HEADER, [storeId]);
  const call: ServerCall = {
    path,
    headers,
    signal: ac.signal,
    async recv() {
      while (queue.length === 0) await new Promise<void>((r) => waiter = r);
      const m = queue.shift()!;
      return m === null ? null : Buffer.from(m);
    },
    send(m) {
      if (ac.signal.aborted) return Promise.reject(ac.signal.reason);
      sent.push(Buffer.from(m));
      return Promise.resolve();
    },
    sendFramed(frame) {
      if (ac.signal.aborted) return Promise.reject(ac.signal.reason);
      sent.push(Buffer.from(frame.subarray(5)));
      return Promise.resolve();
    },
    sendFramedTracked(frame) {
      const ready = this.sendFramed(frame);
      return { ready, flushed: ready.catch(() => {}) };
    },
  };
  return {
    call,
    sent,
    push(m) {
      queue.push(m);
      const w = waiter;
      waiter = undefined;
      w?.();
    },
    abort: () => ac.abort(new GrpcStatusError(Status.CANCELLED, "cancelled")),
  };
}

async function withStore(
  fn: (dir: string, handlers: ReturnType<typeof contentStoreHandlers>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "content-store-test-" });
  try {
    await fn(dir, contentStoreHandlers(new Map([["local:" + dir, dir], ["export", dir]])));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const writeReq = (r: Partial<WriteContentRequest>) =>
  WriteContentRequest.encode(WriteContentRequest.fromPartial(r)).finish();

/** Writes a blob through the Write handler in `chunk`-sized WRITEs, then COMMIT. */
async function writeBlob(
  handlers: ReturnType<typeof contentStoreHandlers>,
  storeId: string,
  data: Uint8Array,
  opts: { ref?: string; chunk?: number; expected?: string } = {},
): Promise<WriteContentResponse[]> {
  const ref = opts.ref ?? `ref-${crypto.randomUUID()}`;
  const expected = opts.expected ?? sha(data);
  const msgs: Uint8Array[] = [
    writeReq({ action: WriteAction.STAT, ref, total: BigInt(data.length), expected }),
  ];
  const chunk = opts.chunk ?? 1000;
  let off = 0;
  for (; off + chunk < data.length; off += chunk) {
    msgs.push(
      writeReq({
        action: WriteAction.WRITE,
        offset: BigInt(off),
        data: Buffer.from(data.subarray(off, off + chunk)),
      }),
    );
  }
  msgs.push(
    writeReq({
      action: WriteAction.COMMIT,
      offset: BigInt(off),
      data: Buffer.from(data.subarray(off)),
      total: BigInt(data.length),
      expected,
    }),
  );
  const f = fakeCall(ContentMethods.write, storeId, msgs);
  await handlers.get(ContentMethods.write)!(f.call);
  return f.sent.map((b) => WriteContentResponse.decode(b));
}

function expectStatus(code: number, re?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof GrpcStatusError, `not a GrpcStatusError: ${err}`);
    assert.equal(err.code, code, `code ${err.code}: ${err.message}`);
    if (re) assert.match(err.message, re);
    return true;
  };
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

Deno.test("Write STAT/WRITE/COMMIT commits a read-only blob at blobs/sha256/<hex> and cleans the ingest", async () => {
  await withStore(async (dir, h) => {
    const data = randomBytes(2500);
    const resps = await writeBlob(h, "local:" + dir, data);
    assert.equal(resps.length, 4);
    assert.equal(resps[0]!.action, WriteAction.STAT);
    assert.equal(resps[0]!.offset, 0n);
    assert.equal(resps[0]!.total, 2500n);
    assert.equal(resps[1]!.offset, 1000n);
    assert.equal(resps[2]!.offset, 2000n);
    const last = resps.at(-1)!;
    assert.equal(last.action, WriteAction.COMMIT);
    assert.equal(last.offset, 2500n);
    assert.equal(last.digest, sha(data));
    const p = join(dir, "blobs", "sha256", sha(data).slice(7));
    assert.deepEqual(await Deno.readFile(p), data);
    assert.equal((await Deno.stat(p)).mode! & 0o777, 0o444);
    assert.equal((await Deno.stat(join(dir, "blobs"))).mode! & 0o777, 0o755);
    assert.equal((await Deno.stat(join(dir, "ingest"))).mode! & 0o777, 0o777);
    const ingest = [];
    for await (const e of Deno.readDir(join(dir, "ingest"))) ingest.push(e.name);
    assert.deepEqual(ingest, []);

    // The same blob again: ALREADY_EXISTS from the first message (daemon treats it as done).
    await assert.rejects(
      () => writeBlob(h, "export", data),
      expectStatus(Status.ALREADY_EXISTS, /exists/),
    );
  });
});

Deno.test("Write rejects a wrong digest or size with FAILED_PRECONDITION and keeps the ingest", async () => {
  await withStore(async (dir, h) => {
    const data = randomBytes(100);
    await assert.rejects(
      () => writeBlob(h, "export", data, { ref: "r1", expected: sha("other") }),
      expectStatus(Status.FAILED_PRECONDITION, /unexpected commit digest/),
    );
    await assert.rejects(
      () => Deno.stat(join(dir, "blobs", "sha256", sha(data).slice(7))),
      Deno.errors.NotFound,
    );
    const f = fakeCall(ContentMethods.status, "export", [
      StatusRequest.encode({ ref: "r1" }).finish(),
    ]);
    await h.get(ContentMethods.status)!(f.call);
    const st = StatusResponse.decode(f.sent[0]!).status!;
    assert.equal(st.ref, "r1");
    assert.equal(st.offset, 100n);
    assert.equal(st.total, 100n);

    // Size mismatch.
    const g = fakeCall(ContentMethods.write, "export", [
      writeReq({ action: WriteAction.STAT, ref: "r2" }),
      writeReq({ action: WriteAction.COMMIT, data: Buffer.from("abc"), total: 4n }),
    ]);
    await assert.rejects(
      () => h.get(ContentMethods.write)!(g.call),
      expectStatus(Status.FAILED_PRECONDITION, /unexpected commit size 3, expected 4/),
    );
  });
});

Deno.test("Write resumes an interrupted ingest, truncates on offset 0, rejects a gap, locks the ref", async () => {
  await withStore(async (_dir, h) => {
    const data = randomBytes(3000);
    const write = h.get(ContentMethods.write)!;
    // First stream: 1000 bytes, then the daemon half-closes.
    const a = fakeCall(ContentMethods.write, "export", [
      writeReq({ action: WriteAction.STAT, ref: "resume", total: 3000n }),
      writeReq({ action: WriteAction.WRITE, data: Buffer.from(data.subarray(0, 1000)) }),
      null,
    ]);
    await write(a.call);
    // Second stream: STAT reports the offset and the digest so far.
    const b = fakeCall(ContentMethods.write, "export", [
      writeReq({ action: WriteAction.STAT, ref: "resume", total: 3000n }),
    ]);
    const running = write(b.call);
    await new Promise((r) => setTimeout(r, 20));
    const stat = WriteContentResponse.decode(b.sent[0]!);
    assert.equal(stat.offset, 1000n);
    assert.equal(stat.total, 3000n);
    assert.equal(stat.digest, sha(data.subarray(0, 1000)));
    // The ref is locked while b is open.
    const c = fakeCall(ContentMethods.write, "export", [
      writeReq({ action: WriteAction.STAT, ref: "resume" }),
    ]);
    await assert.rejects(() => write(c.call), expectStatus(Status.UNAVAILABLE, /locked/));
    // A gap is refused.
    b.push(writeReq({ action: WriteAction.WRITE, offset: 1500n, data: Buffer.from("x") }));
    await assert.rejects(() => running, expectStatus(11, /must occur at current offset 1000/));

    // Third stream: offset 0 restarts the ingest.
    const d = fakeCall(ContentMethods.write, "export", [
      writeReq({ action: WriteAction.STAT, ref: "resume" }),
      writeReq({
        action: WriteAction.WRITE,
        offset: 0n,
        data: Buffer.from(data.subarray(0, 2000)),
      }),
      writeReq({
        action: WriteAction.COMMIT,
        offset: 2000n,
        data: Buffer.from(data.subarray(2000)),
        expected: sha(data),
      }),
    ]);
    await write(d.call);
    const resps = d.sent.map((m) => WriteContentResponse.decode(m));
    assert.equal(resps[0]!.offset, 1000n);
    assert.equal(resps[1]!.offset, 2000n);
    assert.equal(resps[2]!.digest, sha(data));

    const info = fakeCall(ContentMethods.info, "export", [
      InfoRequest.encode({ digest: sha(data) }).finish(),
    ]);
    await h.get(ContentMethods.info)!(info.call);
    assert.equal(InfoResponse.decode(info.sent[0]!).info!.size, 3000n);
  });
});

Deno.test("Read streams ≤1 MiB chunks, honours offset/size, reports range and missing blobs", async () => {
  await withStore(async (_dir, h) => {
    const data = randomBytes(3 * READ_CHUNK + 12345);
    await writeBlob(h, "export", data, { chunk: 1 << 20 });
    const read = async (offset: bigint, size: bigint) => {
      const f = fakeCall(ContentMethods.read, "export", [
        ReadContentRequest.encode({ digest: sha(data), offset, size }).finish(),
      ]);
      await h.get(ContentMethods.read)!(f.call);
      return f.sent.map((m) => ReadContentResponse.decode(m));
    };
    const all = await read(0n, 0n);
    assert.equal(all.length, 4);
    assert.ok(all.every((r) => r.data.length <= READ_CHUNK));
    assert.deepEqual(all.map((r) => r.offset), [0n, 1n << 20n, 2n << 20n, 3n << 20n]);
    assert.ok(Buffer.concat(all.map((r) => r.data)).equals(Buffer.from(data)));

    const part = await read(100n, 50n);
    assert.equal(part.length, 1);
    assert.deepStrictEqual(new Uint8Array(part[0]!.data), data.slice(100, 150));
    const tail = await read(BigInt(data.length - 10), 1000n);
    assert.deepStrictEqual(new Uint8Array(tail[0]!.data), data.slice(data.length - 10));
    assert.deepEqual(await read(BigInt(data.length), 0n), []);
    await assert.rejects(
      () => read(BigInt(data.length + 1), 0n),
      expectStatus(11, /read past object length/),
    );

    const missing = fakeCall(ContentMethods.read, "export", [
      ReadContentRequest.encode({ digest: sha("nope"), offset: 0n, size: 0n }).finish(),
    ]);
    await assert.rejects(
      () => h.get(ContentMethods.read)!(missing.call),
      expectStatus(Status.NOT_FOUND, /content sha256:.*: not found/),
    );
    const bad = fakeCall(ContentMethods.read, "export", [
      ReadContentRequest.encode({ digest: "sha256:zz", offset: 0n, size: 0n }).finish(),
    ]);
    await assert.rejects(
      () => h.get(ContentMethods.read)!(bad.call),
      expectStatus(Status.INVALID_ARGUMENT),
    );

    // A cancelled read stops early.
    const c = fakeCall(ContentMethods.read, "export", [
      ReadContentRequest.encode({ digest: sha(data), offset: 0n, size: 0n }).finish(),
    ]);
    c.abort();
    await h.get(ContentMethods.read)!(c.call);
    assert.equal(c.sent.length, 0);
  });
});

Deno.test("store selection by buildkit-attachable-store-id, as upstream's attachable", async () => {
  await withStore(async (_dir, h) => {
    const req = InfoRequest.encode({ digest: sha("x") }).finish();
    const none = fakeCall(ContentMethods.info, undefined, [req]);
    await assert.rejects(
      () => h.get(ContentMethods.info)!(none.call),
      expectStatus(
        Status.INVALID_ARGUMENT,
        /request lacks metadata "buildkit-attachable-store-id"/,
      ),
    );
    const unknown = fakeCall(ContentMethods.info, "local:/elsewhere", [req]);
    await assert.rejects(
      () => h.get(ContentMethods.info)!(unknown.call),
      expectStatus(Status.NOT_FOUND, /unknown store local:\/elsewhere/),
    );
    const missing = fakeCall(ContentMethods.info, "export", [req]);
    await assert.rejects(
      () => h.get(ContentMethods.info)!(missing.call),
      expectStatus(Status.NOT_FOUND),
    );
    const invalid = fakeCall(ContentMethods.info, "export", [
      InfoRequest.encode({ digest: "x" }).finish(),
    ]);
    await assert.rejects(
      () => h.get(ContentMethods.info)!(invalid.call),
      expectStatus(Status.INVALID_ARGUMENT, /"x" failed validation/),
    );
    assert.deepEqual([...h.keys()].sort(), Object.values(ContentMethods).sort());
  });
});

Deno.test("List (batches, digest filter), Delete, Abort, ListStatuses, Update", async () => {
  await withStore(async (dir, h) => {
    const blobs = [];
    for (let i = 0; i < 105; i++) {
      const d = new TextEncoder().encode(`blob ${i}`);
      await writeBlob(h, "export", d);
      blobs.push(sha(d));
    }
    const list = async (filters: string[]) => {
      const f = fakeCall(ContentMethods.list, "export", [
        ListContentRequest.encode({ filters }).finish(),
      ]);
      await h.get(ContentMethods.list)!(f.call);
      return f.sent.map((m) => ListContentResponse.decode(m).info);
    };
    const batches = await list([]);
    assert.deepEqual(batches.map((b) => b.length), [100, 5]);
    assert.deepEqual(batches.flat().map((i) => i.digest), [...blobs].sort());
    const one = await list([`digest==${blobs[7]}`]);
    assert.deepEqual(one.flat().map((i) => i.digest), [blobs[7]]);
    await assert.rejects(() => list(["=="]), expectStatus(Status.INVALID_ARGUMENT));

    const del = fakeCall(ContentMethods.delete, "export", [
      DeleteContentRequest.encode({ digest: blobs[0]! }).finish(),
    ]);
    await h.get(ContentMethods.delete)!(del.call);
    assert.equal((await list([])).flat().length, 104);
    // Deleting a missing blob is fine (containerd removes with RemoveAll).
    const again = fakeCall(ContentMethods.delete, "export", [
      DeleteContentRequest.encode({ digest: blobs[0]! }).finish(),
    ]);
    await h.get(ContentMethods.delete)!(again.call);

    // An interrupted ingest shows in ListStatuses until aborted.
    const w = fakeCall(ContentMethods.write, "export", [
      writeReq({ action: WriteAction.WRITE, ref: "pending", data: Buffer.from("abc") }),
      null,
    ]);
    await h.get(ContentMethods.write)!(w.call);
    const statuses = async (filters: string[]) => {
      const f = fakeCall(ContentMethods.listStatuses, "export", [
        ListStatusesRequest.encode({ filters }).finish(),
      ]);
      await h.get(ContentMethods.listStatuses)!(f.call);
      return ListStatusesResponse.decode(f.sent[0]!).statuses;
    };
    assert.deepEqual((await statuses([])).map((s) => [s.ref, s.offset]), [["pending", 3n]]);
    assert.deepEqual(await statuses(["ref==other"]), []);
    const ab = fakeCall(ContentMethods.abort, "export", [
      AbortRequest.encode({ ref: "pending" }).finish(),
    ]);
    await h.get(ContentMethods.abort)!(ab.call);
    assert.deepEqual(await statuses([]), []);
    const st = fakeCall(ContentMethods.status, "export", [
      StatusRequest.encode({ ref: "pending" }).finish(),
    ]);
    await assert.rejects(
      () => h.get(ContentMethods.status)!(st.call),
      expectStatus(Status.NOT_FOUND),
    );

    const up = fakeCall(ContentMethods.update, "export", [
      UpdateRequest.encode({
        info: { digest: blobs[1]!, size: 0n, labels: { a: "b" } },
        updateMask: ["labels"],
      }).finish(),
    ]);
    await assert.rejects(
      () => h.get(ContentMethods.update)!(up.call),
      expectStatus(Status.FAILED_PRECONDITION, /update not supported on immutable content store/),
    );
    void dir;
  });
});
