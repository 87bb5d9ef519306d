import assert from "node:assert/strict";
import {
  closeFd,
  FdStream,
  listenUnix,
  readNonblock,
  SOCK,
  socketPair,
  waitFd,
  writeNonblock,
} from "./mod.ts";
import { libc } from "./_libc.ts";

/** `n` bytes of a pattern that shifts with `seed` (so misplaced or stale bytes show). */
function pattern(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed + (i >>> 12)) & 0xff;
  return out;
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

/** Reads an O_NONBLOCK fd until EOF (copies every chunk). */
async function drainFd(fd: number, pauseMs = 0): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 << 10);
  for (;;) {
    const n = readNonblock(fd, buf);
    if (n === 0) break;
    if (n === null) {
      await waitFd(fd, 1, 5000);
      continue;
    }
    chunks.push(buf.slice(0, n));
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
  return concat(chunks);
}

/** Writes all of `bytes` to an O_NONBLOCK fd, then half-closes it. */
async function feedFd(fd: number, bytes: Uint8Array<ArrayBuffer>): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    const n = writeNonblock(fd, bytes.subarray(off));
    if (n === null) await waitFd(fd, 4, 5000);
    else off += n;
  }
  libc().shutdown(fd, SOCK.SHUT_WR);
}

Deno.test("FdStream reads nothing before resume(), then moves bytes both ways and half-closes", async () => {
  const [a, b] = socketPair();
  assert.equal(writeNonblock(b, new TextEncoder().encode("early")), 5);
  const s = new FdStream(a);
  const got: Uint8Array[] = [];
  s.ondata = (c) => got.push(c.slice());
  const ended = new Promise<void>((resolve) => s.onend = resolve);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(got.length, 0, "nothing is read before resume()");
  s.resume();
  assert.equal(writeNonblock(b, new TextEncoder().encode(" late")), 5);
  libc().shutdown(b, SOCK.SHUT_WR);
  await ended;
  assert.equal(new TextDecoder().decode(concat(got)), "early late");
  assert.equal(s.write(new TextEncoder().encode("reply")), true);
  const finished = new Promise<void>((resolve) => s.end(resolve));
  assert.equal(s.write(new Uint8Array(1)), false, "writes after end() are dropped");
  await finished;
  assert.equal(new TextDecoder().decode(await drainFd(b)), "reply");
  s.destroy();
  await s.closed;
  assert.equal(s.destroyed, true);
  closeFd(b);
});

Deno.test("FdStream.write() queues what the kernel refuses, keeps order and reports drain", async () => {
  const [a, b] = socketPair();
  const s = new FdStream(a, { highWaterMark: 16 << 10 });
  const parts = [pattern(3 << 20, 1), pattern(1000, 2), pattern(1 << 20, 3)];
  const scratch = new Uint8Array(3 << 20);
  let sawFalse = false;
  for (const p of parts) {
    // The caller's bytes may be reused as soon as write() returns: the stream must have copied.
    scratch.set(p);
    if (!s.write(scratch.subarray(0, p.length))) sawFalse = true;
    scratch.fill(0xee);
  }
  assert.equal(sawFalse, true, "the socket buffer cannot take 4 MiB at once");
  assert.ok(s.writableLength > 0);
  const drained = new Promise<void>((resolve) => s.ondrain = resolve);
  const received = drainFd(b, 1);
  await drained;
  s.end(() => s.destroy());
  assert.deepEqual(await received, concat(parts));
  await s.closed;
  closeFd(b);
});

Deno.test("FdStream pause() stops ondata until resume()", async () => {
  const [a, b] = socketPair();
  const s = new FdStream(a);
  const got: Uint8Array[] = [];
  s.ondata = (c) => {
    got.push(c.slice());
    s.pause();
  };
  s.resume();
  writeNonblock(b, new Uint8Array([1, 2, 3]));
  while (got.length === 0) await new Promise((r) => setTimeout(r, 5));
  writeNonblock(b, new Uint8Array([4, 5]));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(got.length, 1, "paused: no further ondata");
  s.resume();
  while (concat(got).length < 5) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(concat(got), new Uint8Array([1, 2, 3, 4, 5]));
  s.destroy();
  await s.closed;
  closeFd(b);
});

Deno.test("FdStreams sharing the read buffer relay concurrently without mixing bytes", async () => {
  const pairs = [0, 1, 2].map(() => [socketPair(), socketPair()] as const);
  const relays = pairs.map(([[inA], [outA]]) => {
    const src = new FdStream(inA);
    const dst = new FdStream(outA, { highWaterMark: 1 });
    src.ondata = (c) => {
      if (!dst.write(c)) src.pause();
    };
    dst.ondrain = () => src.resume();
    src.onend = () => dst.end(() => dst.destroy());
    src.resume();
    return { src, dst };
  });
  const sizes = [5 << 20, 3 << 20, (4 << 20) + 12345];
  const results = await Promise.all(pairs.map(([[, inB], [, outB]], i) => {
    const data = pattern(sizes[i]!, i * 7);
    return Promise.all([feedFd(inB, data), drainFd(outB)]).then(([, got]) => ({ data, got }));
  }));
  for (const { data, got } of results) {
    assert.equal(got.length, data.length);
    assert.deepEqual(got, data);
  }
  for (const { src, dst } of relays) {
    src.destroy();
    await Promise.all([src.closed, dst.closed]);
  }
  for (const [[, inB], [, outB]] of pairs) {
    closeFd(inB);
    closeFd(outB);
  }
});

Deno.test("FdStream.write() to a closed peer destroys the stream with EPIPE, no SIGPIPE", async () => {
  const [a, b] = socketPair();
  const s = new FdStream(a, { sendBufferBytes: 1 << 20 });
  closeFd(b);
  assert.equal(s.write(new Uint8Array(10)), false);
  await s.closed;
  assert.equal(s.destroyed, true);
  assert.match(String(s.error), /EPIPE/);
});

Deno.test("FdStream sendBufferBytes sets SO_SNDBUF", () => {
  const [a, b] = socketPair();
  // 96 KiB is below any sane net.core.wmem_max, so the request is not capped
  const s = new FdStream(a, { sendBufferBytes: 96 << 10 });
  const value = new Uint8Array(4);
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, 4, true);
  assert.equal(libc().getsockopt(a, SOCK.SOL_SOCKET, SOCK.SO_SNDBUF, value, len), 0);
  // the kernel doubles the request (for its bookkeeping)
  assert.equal(new DataView(value.buffer).getInt32(0, true), 2 * (96 << 10));
  s.destroy();
  closeFd(b);
  return s.closed;
});

Deno.test("FdStreams sharing the read buffer never see another connection's bytes (8 writer processes at once)", async () => {
  // Eight separate processes write 24 MiB each, every byte of connection k equal to k, all at
  // once, while each chunk is checked byte by byte inside its callback. If the runtime ever read
  // into the shared buffer for one socket before another socket's callback had returned, a
  // callback would see foreign bytes. Separate processes keep all sockets readable together.
  const dir = await Deno.makeTempDir({ prefix: "fdstream-" });
  const path = `${dir}/s.sock`;
  const listener = listenUnix(path, 0o600);
  const N = 8;
  const SIZE = 24 << 20;
  const writer = "import socket,sys\n" +
    "k=int(sys.argv[2]); s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n" +
    "s.sendall(bytes([k])); b=bytes([k])*(1<<20)\n" +
    `for _ in range(${SIZE >> 20}): s.sendall(b)\n` +
    "s.close()\n";
  const children: Deno.ChildProcess[] = [];
  const results: Promise<{ id: number; bytes: number; foreign: number }>[] = [];
  try {
    for (let k = 1; k <= N; k++) {
      children.push(
        new Deno.Command("python3", { args: ["-c", writer, path, String(k)], stdout: "null" })
          .spawn(),
      );
    }
    for (let i = 0; i < N; i++) {
      const { fd } = await listener.accept();
      const s = new FdStream(fd);
      results.push(
        new Promise((resolve) => {
          let id = -1;
          let bytes = 0;
          let foreign = 0;
          s.ondata = (chunk) => {
            if (id < 0) id = chunk[0]!;
            for (let j = 0; j < chunk.length; j++) if (chunk[j] !== id) foreign++;
            bytes += chunk.length;
          };
          s.onend = () => {
            s.destroy();
            resolve({ id, bytes, foreign });
          };
          s.resume();
        }),
      );
    }
    const got = await Promise.all(results);
    for (const c of children) assert.equal((await c.status).code, 0);
    assert.deepEqual(got.map((r) => r.id).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8]);
    for (const r of got) {
      assert.equal(r.foreign, 0, `connection ${r.id} saw ${r.foreign} foreign bytes`);
      assert.equal(r.bytes, SIZE + 1);
    }
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});
