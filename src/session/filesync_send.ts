/**
 * FileSync/DiffCopy: we are the fsutil **sender** of a `--local` dir
 * (protocol doc §3.2–§3.8). STATs go out in walk order while REQs come in;
 * requested files are streamed in large DATA packets read straight into
 * their send buffers, a few files at a time, with backpressure from the
 * HTTP/2 stream.
 *
 * @module
 */

import { GrpcStatusError, type Handler, type ServerCall, Status } from "./grpc_server.ts";
import {
  canRequestData,
  controlPacket,
  DATA_OFFSET,
  decodePacket,
  frameDataInPlace,
  PacketType,
  statPacket,
} from "./fsutil_wire.ts";
import { compileFilter, walk } from "./walker.ts";

/** What the sender transferred for one local dir name (summed over calls). */
export interface SenderStats {
  /** DiffCopy calls served. */
  calls: number;
  /** STAT entries sent. */
  entries: number;
  /** Files requested by the daemon (REQ packets). */
  files: number;
  /** File content bytes sent. */
  bytes: number;
  /** Relative paths requested, in REQ order (only with `recordPaths`). */
  requested?: string[];
}

/** Test and tuning hooks of the sender. */
export interface SenderOptions {
  /** Record requested paths in {@linkcode SenderStats.requested}. */
  recordPaths?: boolean;
  /** Opens a file for reading (tests inject failures here). Default `Deno.open`. */
  openFile?: (path: string) => Promise<Deno.FsFile>;
  /** DATA payload size (default 1 MiB). */
  chunkSize?: number;
  /** Files sent concurrently (default 4). */
  concurrency?: number;
}

const DEFAULT_CHUNK = 1 << 20;

/** Go `strconv.ParseBool` truthy values. */
function parseBool(v: string | undefined): boolean {
  return v !== undefined && ["1", "t", "T", "TRUE", "true", "True"].includes(v);
}

/** Go `url.QueryUnescape`; invalid input gives "" (as upstream ignores the error). */
export function queryUnescape(s: string): string {
  const bytes: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "+") bytes.push(0x20);
    else if (c === "%") {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return "";
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      const cp = s.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      for (const b of enc.encode(ch)) bytes.push(b);
      i += ch.length - 1;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Header values of `key`, decoded when `<key>-encoded` says so (protocol doc §3.2). */
export function decodedHeader(
  headers: ReadonlyMap<string, readonly string[]>,
  key: string,
): string[] | undefined {
  const values = headers.get(key);
  if (values === undefined) return undefined;
  if (parseBool(headers.get(`${key}-encoded`)?.[0])) return values.map(queryUnescape);
  return [...values];
}

/** The FileSync/DiffCopy handler serving `dirs` (name → host dir). */
export function fileSyncHandler(
  dirs: ReadonlyMap<string, string>,
  stats: Map<string, SenderStats>,
  opts: SenderOptions = {},
): Handler {
  return async (call) => {
    const name = decodedHeader(call.headers, "dir-name")?.[0] ?? "";
    const dir = dirs.get(name);
    if (dir === undefined) {
      throw new GrpcStatusError(Status.NOT_FOUND, `no access allowed to dir "${name}"`);
    }
    let root: string;
    try {
      root = await Deno.realPath(dir);
      const info = await Deno.stat(root);
      if (!info.isDirectory) throw new Error("not a directory");
    } catch (err) {
      throw new GrpcStatusError(
        Status.UNKNOWN,
        `cannot use local dir "${name}" (${dir}): ${(err as Error).message}`,
      );
    }
    let st = stats.get(name);
    if (!st) {
      st = { calls: 0, entries: 0, files: 0, bytes: 0 };
      if (opts.recordPaths) st.requested = [];
      stats.set(name, st);
    }
    st.calls++;
    await sendDiffCopy(
      call,
      root,
      {
        includePatterns: decodedHeader(call.headers, "include-patterns"),
        excludePatterns: decodedHeader(call.headers, "exclude-patterns"),
        followPaths: decodedHeader(call.headers, "followpaths"),
      },
      st,
      opts,
    );
  };
}

interface FileRef {
  id: number;
  rel: string;
  abs: string;
  size: number;
  /** Sockets have no content: sent empty, as upstream does (its open fails). */
  socket: boolean;
}

/** Runs the sender side of the fsutil protocol on `call`. */
async function sendDiffCopy(
  call: ServerCall,
  root: string,
  filterOpts: Parameters<typeof compileFilter>[1],
  st: SenderStats,
  opts: SenderOptions,
): Promise<void> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK;
  const concurrency = opts.concurrency ?? 4;
  const openFile = opts.openFile ?? ((p: string) => Deno.open(p, { read: true }));
  const files = new Map<number, FileRef>();
  let nextId = 0;

  // A failure anywhere ends everything; the first error wins.
  let failure: unknown;
  const abort = new AbortController();
  const fail = (err: unknown) => {
    if (failure === undefined) {
      failure = err;
      abort.abort(err);
      wake();
    }
  };
  call.signal.addEventListener("abort", () => fail(call.signal.reason), { once: true });

  // REQ queue shared by the workers.
  const queue: FileRef[] = [];
  let waiters: (() => void)[] = [];
  let finished = false; // FIN received
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };

  const sendErr = async (message: string) => {
    try {
      await call.sendFramed(controlPacket(PacketType.ERR, 0, new TextEncoder().encode(message)));
    } catch { /* the call is gone */ }
  };

  const walker = (async () => {
    const filter = await compileFilter(root, filterOpts);
    await walk(root, filter, async (stat, abs, info) => {
      if (failure !== undefined) throw failure;
      const id = nextId++;
      if (canRequestData(stat.mode)) {
        files.set(id, {
          id,
          rel: stat.path,
          abs,
          size: Number(stat.size),
          socket: info.isSocket === true,
        });
      }
      st.entries++;
      await call.sendFramed(statPacket(stat));
    }, { signal: abort.signal });
    await call.sendFramed(statPacket(undefined));
  })().catch(async (err) => {
    if (failure === undefined) await sendErr((err as Error).message ?? String(err));
    fail(err);
  });

  /**
   * A worker's two send buffers: one is filled from the file while the other
   * waits to be copied into HTTP/2 frames; each is reused once copied.
   */
  interface Slot {
    buf: Uint8Array | undefined;
    copied: Promise<void>;
  }

  const sendFile = async (ref: FileRef, slots: Slot[]) => {
    const id = ref.id;
    if (opts.recordPaths) st.requested?.push(ref.rel);
    st.files++;
    let file: Deno.FsFile | undefined;
    try {
      if (!ref.socket) {
        file = await openFile(ref.abs);
        let total = 0;
        for (let k = 0;; k ^= 1) {
          if (failure !== undefined) throw failure;
          const slot = slots[k]!;
          await slot.copied;
          const buf = slot.buf ??= new Uint8Array(DATA_OFFSET + chunkSize);
          const n = await file.read(buf.subarray(DATA_OFFSET));
          if (n === null || n === 0) break;
          total += n;
          st.bytes += n;
          const sent = call.sendFramedTracked(frameDataInPlace(buf, id, n));
          slot.copied = sent.flushed;
          await sent.ready;
          // A short read that reaches the size announced in the STAT is the end: saves a read.
          if (n < chunkSize && total >= ref.size) break;
        }
      }
    } catch (err) {
      if (err === failure) throw err;
      throw new Error(`failed to read ${ref.abs}: ${(err as Error).message}`, { cause: err });
    } finally {
      file?.close();
    }
    await call.sendFramed(frameDataInPlace(new Uint8Array(DATA_OFFSET), id, 0));
  };

  const worker = async () => {
    const slots: Slot[] = [{ buf: undefined, copied: Promise.resolve() }, {
      buf: undefined,
      copied: Promise.resolve(),
    }];
    for (;;) {
      if (failure !== undefined) return;
      const ref = queue.shift();
      if (ref === undefined) {
        if (finished) return;
        await new Promise<void>((r) => waiters.push(r));
        continue;
      }
      try {
        await sendFile(ref, slots);
      } catch (err) {
        if (failure === undefined) await sendErr((err as Error).message ?? String(err));
        fail(err);
        return;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);

  // The receive loop: REQ, FIN, ERR.
  const receiver = (async () => {
    while (failure === undefined) {
      const msg = await call.recv();
      if (msg === null) throw new Error("receiver closed the stream before FIN");
      const p = decodePacket(msg);
      if (p.type === PacketType.ERR) {
        throw new Error(`error from receiver: ${new TextDecoder().decode(p.data)}`);
      } else if (p.type === PacketType.REQ) {
        const ref = files.get(p.id);
        if (!ref) throw new Error(`invalid file id ${p.id}`);
        files.delete(p.id);
        queue.push(ref);
        wake();
      } else if (p.type === PacketType.FIN) {
        // The receiver has everything it asked for: answer and finish.
        finished = true;
        wake();
        await call.sendFramed(controlPacket(PacketType.FIN));
        return;
      }
    }
  })().catch((err) => fail(err));

  // On failure, do not wait for the daemon to react to our ERR: the receive
  // loop may be blocked in recv() until the call ends.
  const failed = new Promise<void>((resolve) => {
    if (abort.signal.aborted) resolve();
    else abort.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  await Promise.race([receiver, failed]);
  if (failure === undefined) await Promise.all([walker, ...workers]);
  if (failure !== undefined) {
    if (failure instanceof GrpcStatusError) throw failure;
    throw new GrpcStatusError(Status.UNKNOWN, (failure as Error).message ?? String(failure));
  }
}
