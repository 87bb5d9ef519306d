// The type=local receiver (FileSend/DiffCopy) against a scripted fsutil sender:
// what it writes, how it commits, and that failures leave the destination untouched.

import assert from "node:assert/strict";
import { join } from "node:path";
import type { ServerCall } from "./grpc_server.ts";
import { fileSendHandler } from "./filesync_receive.ts";
import {
  controlPacket,
  decodePacket,
  FileMode,
  PacketType,
  type Stat,
  statPacket,
} from "./fsutil_wire.ts";
import { encodeBytesMessage } from "./tunnel.ts";

interface Entry {
  path: string;
  mode: number;
  content?: string;
  linkname?: string;
  mtimeNs?: bigint;
}

function stat(e: Entry): Stat {
  return {
    path: e.path,
    mode: e.mode >>> 0,
    uid: 0,
    gid: 0,
    size: BigInt(e.content?.length ?? 0),
    modTime: e.mtimeNs ?? 1_700_000_000_123_456_000n,
    linkname: e.linkname ?? "",
    devmajor: 0n,
    devminor: 0n,
    xattrs: {},
  };
}

/** A fake FileSend call whose peer is a scripted fsutil sender. */
function scriptedCall(
  entries: Entry[],
  opts: {
    failAfterStats?: string;
    headers?: Record<string, string>;
    /** Send the data of all requested files only once every STAT has been read. */
    dataAfterStats?: boolean;
    /** Split contents into DATA packets of this size (default: two halves). */
    chunkSize?: number;
  } = {},
): { call: ServerCall; requested: number[]; finReceived: () => boolean } {
  const queue: (Uint8Array | null)[] = [];
  const deferred: Uint8Array[] = [];
  let waiter: (() => void) | undefined;
  const push = (b: Uint8Array | null) => {
    queue.push(b);
    waiter?.();
    waiter = undefined;
  };
  const unframe = (b: Uint8Array) => b.subarray(5);
  for (const e of entries) push(unframe(statPacket(stat(e))));
  if (opts.failAfterStats) {
    push(unframe(controlPacket(PacketType.ERR, 0, new TextEncoder().encode(opts.failAfterStats))));
  } else {
    push(unframe(statPacket(undefined)));
  }
  const requested: number[] = [];
  let fin = false;
  const headers = new Map<string, string[]>(
    Object.entries(opts.headers ?? {}).map(([k, v]) => [k, [v]]),
  );
  const call: ServerCall = {
    path: "/moby.filesync.v1.FileSend/DiffCopy",
    headers,
    signal: new AbortController().signal,
    async recv() {
      if (queue.length === 0 && deferred.length > 0) queue.push(...deferred.splice(0));
      while (queue.length === 0) await new Promise<void>((r) => waiter = r);
      return queue.shift()!;
    },
    send: () => Promise.resolve(),
    sendFramed(buf: Uint8Array) {
      const p = decodePacket(buf.subarray(5));
      if (p.type === PacketType.REQ) {
        requested.push(p.id);
        const content = new TextEncoder().encode(entries[p.id]!.content ?? "");
        const send = opts.dataAfterStats ? (b: Uint8Array) => deferred.push(b) : push;
        // Two DATA packets (or chunkSize ones) when there is content, then the empty EOF packet.
        const size = opts.chunkSize ?? Math.max(1, Math.ceil(content.length / 2));
        for (let off = 0; off < content.length; off += size) {
          send(unframe(controlPacket(PacketType.DATA, p.id, content.subarray(off, off + size))));
        }
        send(unframe(controlPacket(PacketType.DATA, p.id)));
      } else if (p.type === PacketType.FIN) {
        fin = true;
        push(null);
      }
      return Promise.resolve();
    },
    sendFramedTracked(buf: Uint8Array) {
      return { ready: this.sendFramed(buf), flushed: Promise.resolve() };
    },
  };
  return { call, requested, finReceived: () => fin };
}

const DIR = (FileMode.Dir | 0o755) >>> 0;
const TREE: Entry[] = [
  { path: "a", mode: DIR },
  { path: "a/b", mode: DIR },
  { path: "a/b/file.txt", mode: 0o644, content: "hello world" },
  { path: "a/exec", mode: 0o755, content: "#!/bin/sh\n" },
  { path: "a-b", mode: 0o600, content: "" },
  { path: "hard", mode: 0o644, linkname: "a/b/file.txt" },
  { path: "link", mode: (FileMode.Symlink | 0o777) >>> 0, linkname: "a/b/file.txt" },
  { path: "ro", mode: (FileMode.Dir | 0o555) >>> 0 },
  { path: "ro/inside", mode: 0o444, content: "read only" },
];

async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("FileSend type=local: receives a tree into a new directory", async () => {
  const base = await Deno.makeTempDir({ prefix: "recv-" });
  try {
    const dest = join(base, "out", "dest");
    const { call, requested, finReceived } = scriptedCall(TREE);
    await fileSendHandler([{ kind: "local", dir: dest }])(call);
    assert.ok(finReceived());
    assert.deepEqual(requested, [2, 3, 4, 8]); // regular files only, never the hard link
    assert.equal(await Deno.readTextFile(join(dest, "a/b/file.txt")), "hello world");
    assert.equal(await Deno.readTextFile(join(dest, "hard")), "hello world");
    assert.equal(
      (await Deno.lstat(join(dest, "hard"))).ino,
      (await Deno.lstat(join(dest, "a/b/file.txt"))).ino,
    );
    assert.equal(await Deno.readLink(join(dest, "link")), "a/b/file.txt");
    assert.equal((await Deno.stat(join(dest, "a/exec"))).mode! & 0o7777, 0o755);
    assert.equal((await Deno.stat(join(dest, "a-b"))).mode! & 0o7777, 0o600);
    assert.equal((await Deno.stat(join(dest, "ro"))).mode! & 0o7777, 0o555);
    assert.equal(await Deno.readTextFile(join(dest, "ro/inside")), "read only");
    assert.equal((await Deno.stat(join(dest, "a/b/file.txt"))).mtime!.getTime(), 1_700_000_000_123);
    assert.equal((await Deno.stat(join(dest, "a"))).mtime!.getTime(), 1_700_000_000_123);
    // Nothing but the destination in its parent (the staging dir was renamed).
    assert.deepEqual(await listDir(join(base, "out")), ["dest"]);
  } finally {
    await Deno.chmod(join(base, "out", "dest", "ro"), 0o755).catch(() => {});
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("FileSend type=local: data after all STATs, in many packets, with hard links to files not yet written", async () => {
  const base = await Deno.makeTempDir({ prefix: "recv-" });
  try {
    const dest = join(base, "dest");
    const big = Array.from({ length: 5000 }, (_, i) => `line ${i}\n`).join("");
    const entries: Entry[] = [
      { path: "big", mode: 0o640, content: big },
      { path: "empty", mode: 0o444 },
      { path: "hard", mode: 0o640, linkname: "big" },
      { path: "hard-empty", mode: 0o444, linkname: "empty" },
      ...Array.from({ length: 100 }, (_, i) => ({
        path: `small${String(i).padStart(3, "0")}`,
        mode: 0o600,
        content: `file ${i}`.repeat(i),
      })),
    ];
    const { call, finReceived } = scriptedCall(entries, { dataAfterStats: true, chunkSize: 7 });
    await fileSendHandler([{ kind: "local", dir: dest }])(call);
    assert.ok(finReceived());
    assert.equal(await Deno.readTextFile(join(dest, "big")), big);
    assert.equal(await Deno.readTextFile(join(dest, "hard")), big);
    assert.equal(
      (await Deno.lstat(join(dest, "hard"))).ino,
      (await Deno.lstat(join(dest, "big"))).ino,
    );
    assert.equal((await Deno.stat(join(dest, "big"))).mode! & 0o7777, 0o640);
    assert.equal(await Deno.readTextFile(join(dest, "hard-empty")), "");
    assert.equal((await Deno.stat(join(dest, "empty"))).mode! & 0o7777, 0o444);
    assert.equal((await Deno.stat(join(dest, "empty"))).mtime!.getTime(), 1_700_000_000_123);
    for (let i = 0; i < 100; i++) {
      const name = `small${String(i).padStart(3, "0")}`;
      assert.equal(await Deno.readTextFile(join(dest, name)), `file ${i}`.repeat(i));
      assert.equal((await Deno.stat(join(dest, name))).mtime!.getTime(), 1_700_000_000_123);
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("FileSend type=local: a failed write fails the export naming the file, leaving nothing behind", async () => {
  const base = await Deno.makeTempDir({ prefix: "recv-" });
  const realOpen = Deno.open;
  try {
    const dest = join(base, "dest");
    const entries: Entry[] = [
      { path: "a", mode: 0o644, content: "x".repeat(100) },
      { path: "f", mode: 0o644, content: "x".repeat(100) },
    ];
    const { call } = scriptedCall(entries, { dataAfterStats: true });
    // Writes to "f" fail as on a full disk.
    Deno.open = (async (path: string | URL, o?: Deno.OpenOptions) => {
      const file = await realOpen(path, o);
      if (String(path).endsWith("/f")) {
        file.write = () => Promise.reject(new Error("No space left on device (os error 28)"));
      }
      return file;
    }) as typeof Deno.open;
    await assert.rejects(
      fileSendHandler([{ kind: "local", dir: dest }])(call),
      /failed to write f: No space left on device/,
    );
    assert.deepEqual(await listDir(base), []);
  } finally {
    Deno.open = realOpen;
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("FileSend type=local: merges into an existing directory, keeping other files", async () => {
  const dest = await Deno.makeTempDir({ prefix: "recv-merge-" });
  try {
    await Deno.mkdir(join(dest, "a"));
    await Deno.writeTextFile(join(dest, "a/old.txt"), "old");
    await Deno.writeTextFile(join(dest, "a-b"), "will be replaced");
    await Deno.mkdir(join(dest, "link")); // a dir where the result has a symlink
    const { call } = scriptedCall(TREE);
    await fileSendHandler([{ kind: "local", dir: dest }])(call);
    assert.equal(await Deno.readTextFile(join(dest, "a/old.txt")), "old");
    assert.equal(await Deno.readTextFile(join(dest, "a-b")), "");
    assert.equal(await Deno.readLink(join(dest, "link")), "a/b/file.txt");
    assert.deepEqual(await listDir(dest), ["a", "a-b", "hard", "link", "ro"]);
    assert.deepEqual(await listDir(join(dest, "a")), ["b", "exec", "old.txt"]);
  } finally {
    await Deno.chmod(join(dest, "ro"), 0o755).catch(() => {});
    await Deno.remove(dest, { recursive: true });
  }
});

Deno.test("FileSend type=local mode=delete mirrors the result", async () => {
  const dest = await Deno.makeTempDir({ prefix: "recv-del-" });
  try {
    await Deno.mkdir(join(dest, "a"));
    await Deno.writeTextFile(join(dest, "a/old.txt"), "old");
    await Deno.writeTextFile(join(dest, "stale"), "stale");
    const { call } = scriptedCall(TREE, { headers: { "buildkit-exporter-multi-platform": "1" } });
    await fileSendHandler([{ kind: "local", dir: dest, deleteMode: true }])(call);
    assert.deepEqual(await listDir(dest), ["a", "a-b", "hard", "link", "ro"]);
    assert.deepEqual(await listDir(join(dest, "a")), ["b", "exec"]);
  } finally {
    await Deno.chmod(join(dest, "ro"), 0o755).catch(() => {});
    await Deno.remove(dest, { recursive: true });
  }
});

Deno.test("FileSend type=local mode=delete needs the daemon's multi-platform header", async () => {
  const { call } = scriptedCall(TREE);
  await assert.rejects(
    fileSendHandler([{ kind: "local", dir: "/nonexistent", deleteMode: true }])(call),
    /mode=delete requires a BuildKit daemon with multi-platform local export support/,
  );
});

async function assertFailsUntouched(
  entries: Entry[],
  message: RegExp,
  failAfterStats?: string,
): Promise<void> {
  const dest = await Deno.makeTempDir({ prefix: "recv-fail-" });
  try {
    await Deno.writeTextFile(join(dest, "a-b"), "precious");
    const { call } = scriptedCall(entries, { failAfterStats });
    await assert.rejects(fileSendHandler([{ kind: "local", dir: dest }])(call), message);
    assert.deepEqual(await listDir(dest), ["a-b"]);
    assert.equal(await Deno.readTextFile(join(dest, "a-b")), "precious");
  } finally {
    await Deno.remove(dest, { recursive: true });
  }
}

Deno.test("FileSend type=local: a sender error leaves the destination untouched", async () => {
  await assertFailsUntouched(TREE, /error from sender: boom/, "boom");
});

Deno.test("FileSend type=local: out-of-order entries are refused", async () => {
  await assertFailsUntouched(
    [{ path: "b", mode: 0o644, content: "x" }, { path: "a-b", mode: 0o644, content: "y" }],
    /changes out of order/,
  );
  await assertFailsUntouched(
    [{ path: "a/b", mode: 0o644, content: "no parent" }],
    /changes out of order/,
  );
  await assertFailsUntouched(
    [{ path: "a", mode: (FileMode.Symlink | 0o777) >>> 0, linkname: "/etc" }, {
      path: "a/passwd",
      mode: 0o644,
    }],
    /changes out of order/,
  );
});

Deno.test("FileSend type=local: escaping paths and dangling hard links are refused", async () => {
  await assertFailsUntouched(
    [{ path: "../evil", mode: 0o644, content: "x" }],
    /escape check|unclean path/,
  );
  await assertFailsUntouched(
    [{ path: "/abs", mode: 0o644, content: "x" }],
    /absolute path|unclean path/,
  );
  await assertFailsUntouched(
    [{ path: "h", mode: 0o644, linkname: "nowhere" }],
    /invalid link h to unknown path/,
  );
});

Deno.test("FileSend stream target: raw bytes in order, then OK; undefined means ALREADY_EXISTS", async () => {
  const chunks = ["first ", "second ", "third"];
  const queue: (Uint8Array | null)[] = [
    ...chunks.map((c) => encodeBytesMessage(new TextEncoder().encode(c))),
    null,
  ];
  const got: string[] = [];
  let metadata: Record<string, string> = {};
  const call = {
    path: "/moby.filesync.v1.FileSend/DiffCopy",
    headers: new Map([
      ["buildkit-attachable-exporter-id", ["1"]],
      ["exporter-md-containerimage.digest", ["sha256:abc"]],
    ]),
    signal: new AbortController().signal,
    recv: () => Promise.resolve(queue.shift() ?? null),
  } as unknown as ServerCall;
  await fileSendHandler([undefined, {
    kind: "stream",
    open(md) {
      metadata = md;
      return Promise.resolve(
        new WritableStream<Uint8Array>({
          write(c) {
            got.push(new TextDecoder().decode(c));
          },
        }),
      );
    },
  }])(call);
  assert.equal(got.join(""), "first second third");
  assert.deepEqual(metadata, { "containerimage.digest": "sha256:abc" });

  await assert.rejects(
    fileSendHandler([undefined, { kind: "stream", open: () => Promise.resolve(undefined) }])(call),
    (err: { code?: number }) => err.code === 6,
  );
  await assert.rejects(fileSendHandler([])(call), /exporter 1 not found/);
});
