/**
 * FileSend/DiffCopy: export results coming back from the daemon
 * (protocol doc §3.9).
 *
 * - `type=local`: the stream carries fsutil packets and we are the
 *   **receiver**. The tree is received into a staging directory (beside
 *   `dest` when `dest` does not exist yet, else a hidden directory inside
 *   it) and only moved into place once the whole transfer has succeeded:
 *   a failed export leaves `dest` untouched. A new `dest` appears with one
 *   rename; an existing one is merged entry by entry with renames (copy
 *   mode: extra files are kept; delete mode: they are removed afterwards).
 * - `tar`/`oci`/`docker`: raw `BytesMessage`s written to a stream.
 *
 * Not reproduced from upstream: xattrs and ownership (files belong to the
 * user running buildctl, which is what upstream's rewrite to the client's
 * own uid/gid amounts to, save for setgid-directory group inheritance).
 *
 * @module
 */

import { basename, cleanPath, dirname, join } from "../path.ts";
import { GrpcStatusError, type Handler, header, type ServerCall, Status } from "./grpc_server.ts";
import { decodeBytesMessage } from "./tunnel.ts";
import { joinChunks } from "./h2_server.ts";
import {
  canRequestData,
  controlPacket,
  decodePacket,
  FileMode,
  isDirMode,
  isSymlinkMode,
  PacketType,
  posixPermBits,
  type Stat,
} from "./fsutil_wire.ts";
import { compareNames } from "./walker.ts";

/** `type=local`: write the exported tree into `dir`. */
export interface LocalExporterTarget {
  kind: "local";
  /** Destination directory (created with mode 0700 if missing). */
  dir: string;
  /** `mode=delete`: make `dir` mirror the result (remove what is not in it). */
  deleteMode?: boolean;
}

/** `type=tar|oci|docker` (tar form): the exporter's bytes go to a stream. */
export interface StreamExporterTarget {
  kind: "stream";
  /**
   * Opens the destination. `metadata` holds the `exporter-md-*` values the
   * daemon sent (e.g. `containerimage.digest`). Resolving `undefined` skips
   * the export (ALREADY_EXISTS, which the daemon treats as success).
   */
  open(metadata: Record<string, string>): Promise<WritableStream<Uint8Array> | undefined>;
}

/** One `--output` as seen by the session. */
export type ExporterTarget = LocalExporterTarget | StreamExporterTarget;

/** The FileSend/DiffCopy handler for `exporters` (indexed by exporter id). */
export function fileSendHandler(exporters: ReadonlyArray<ExporterTarget | undefined>): Handler {
  return async (call) => {
    const raw = header(call, "buildkit-attachable-exporter-id");
    const parsed = raw !== undefined && /^[+-]?\d+$/.test(raw) ? Number(raw) : 0;
    const id = Number.isSafeInteger(parsed) ? parsed : 0;
    const target = exporters[id];
    if (!target) throw new GrpcStatusError(Status.UNKNOWN, `exporter ${id} not found`);
    if (target.kind === "local") {
      if (target.deleteMode && header(call, "buildkit-exporter-multi-platform") !== "1") {
        throw new GrpcStatusError(
          Status.UNKNOWN,
          "local exporter mode=delete requires a BuildKit daemon with multi-platform local export support",
        );
      }
      await receiveToDir(call, target);
      return;
    }
    const md: Record<string, string> = {};
    for (const [k, v] of call.headers) {
      if (k.startsWith("exporter-md-")) md[k.slice("exporter-md-".length)] = v.join(",");
    }
    await receiveToStream(call, target, md);
  };
}

async function receiveToStream(
  call: ServerCall,
  target: StreamExporterTarget,
  md: Record<string, string>,
): Promise<void> {
  const stream = await target.open(md);
  if (!stream) throw new GrpcStatusError(Status.ALREADY_EXISTS, "target already exists");
  const writer = stream.getWriter();
  try {
    for (;;) {
      const msg = await call.recv();
      if (msg === null) break;
      const data = decodeBytesMessage(msg);
      if (data.length > 0) await writer.write(data);
    }
    await writer.close();
  } catch (err) {
    await writer.abort(err).catch(() => {});
    if (err instanceof GrpcStatusError) throw err;
    throw new GrpcStatusError(
      Status.UNKNOWN,
      `failed to write the export: ${(err as Error).message}`,
    );
  }
}

/** Random suffix for staging names. */
function randomSuffix(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(6)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Seconds (with µs precision) for utime from a ns timestamp. */
function nsToSeconds(ns: bigint): number {
  return Number(ns / 1000n) / 1e6;
}

interface DirMeta {
  rel: string;
  stat: Stat;
}

/** Receives a `type=local` export into `target.dir` (staged, then moved into place). */
async function receiveToDir(call: ServerCall, target: LocalExporterTarget): Promise<void> {
  const dest = target.dir;
  const existing = await statOrUndefined(dest);
  if (existing && !existing.isDirectory) {
    throw new GrpcStatusError(
      Status.UNKNOWN,
      `failed to create synctarget dest dir ${dest}: not a directory`,
    );
  }
  let staging: string;
  try {
    if (existing) {
      staging = join(dest, `.buildctl-export-${randomSuffix()}`);
    } else {
      await Deno.mkdir(dirname(dest), { recursive: true, mode: 0o700 });
      staging = join(dirname(dest), `.${basename(dest)}.buildctl-${randomSuffix()}`);
    }
    await Deno.mkdir(staging, { mode: 0o700 });
    await Deno.chmod(staging, 0o700);
  } catch (err) {
    throw new GrpcStatusError(
      Status.UNKNOWN,
      `failed to create synctarget dest dir ${dest}: ${(err as Error).message}`,
    );
  }

  let committed = false;
  try {
    const received = await receiveTree(call, staging, target.deleteMode === true);
    await commit(staging, dest, received, target.deleteMode === true);
    committed = true;
  } catch (err) {
    if (err instanceof GrpcStatusError) throw err;
    throw new GrpcStatusError(Status.UNKNOWN, (err as Error).message ?? String(err));
  } finally {
    if (!committed) await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

/** What was received: the stats of directories, and all relative paths (for delete mode). */
interface ReceivedTree {
  dirs: DirMeta[];
  paths: Set<string> | undefined;
}

/** Order check of fsutil's Validator: parents first, names strictly increasing per dir. */
class OrderValidator {
  #stack: { dir: string; last: string }[] = [{ dir: "", last: "" }];
  #hasLast: boolean[] = [false];

  check(p: string, isDir: boolean): void {
    if (p !== cleanPath(p) || p === ".") throw new Error(`unclean path ${p}: invalid argument`);
    if (p.startsWith("/")) throw new Error(`absolute path ${p}: invalid argument`);
    if (p === ".." || p.startsWith("../")) throw new Error(`escape check ${p}: invalid argument`);
    const slash = p.lastIndexOf("/");
    const dir = slash < 0 ? "" : p.slice(0, slash);
    const base = slash < 0 ? p : p.slice(slash + 1);
    while (this.#stack.length > 1 && this.#stack[this.#stack.length - 1]!.dir !== dir) {
      this.#stack.pop();
      this.#hasLast.pop();
    }
    const top = this.#stack[this.#stack.length - 1]!;
    const i = this.#stack.length - 1;
    if (top.dir !== dir || (this.#hasLast[i] && compareNames(top.last, base) >= 0)) {
      const prev = top.dir ? `${top.dir}/${top.last}` : top.last;
      throw new Error(`changes out of order: "${p}" "${prev}"`);
    }
    top.last = base;
    this.#hasLast[i] = true;
    if (isDir) {
      this.#stack.push({ dir: p, last: "" });
      this.#hasLast.push(false);
    }
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

async function mknod(abs: string, stat: Stat): Promise<void> {
  const perm = (posixPermBits(stat.mode) & 0o7777).toString(8);
  let args: string[];
  if (stat.mode & FileMode.CharDevice) {
    args = [abs, "c", String(stat.devmajor), String(stat.devminor)];
  } else if (stat.mode & FileMode.NamedPipe) args = [abs, "p"];
  else args = [abs, "b", String(stat.devmajor), String(stat.devminor)];
  const out = await new Deno.Command("mknod", {
    args: ["-m", perm, ...args],
    stderr: "piped",
    stdout: "null",
  })
    .output();
  if (!out.success) {
    throw new Error(new TextDecoder().decode(out.stderr).trim() || `mknod exited ${out.code}`);
  }
}

/** File data held in memory (received, not yet written) above which receiving pauses. */
const MAX_BUFFERED = 16 << 20;
/** Files being written at once above which receiving pauses. */
const MAX_BUSY_FILES = 32;
/** Largest single write: chunks that queued up meanwhile are joined up to this size. */
const MAX_WRITE = 1 << 20;

/**
 * What the file writers of one transfer share: the bytes they hold and how
 * many are busy (backpressure for the receive loop), and the first error.
 */
class WriterPool {
  buffered = 0;
  readonly busy = new Set<FileWriter>();
  error: Error | undefined;
  /** Set when the transfer is over (failed or done): writers stop at their next step. */
  stopped = false;
  #waiters: (() => void)[] = [];

  /** Whether the receive loop should wait before taking more messages. */
  get full(): boolean {
    return this.buffered >= MAX_BUFFERED || this.busy.size >= MAX_BUSY_FILES;
  }

  /** Resolves once there is room again (or a writer failed). */
  async room(): Promise<void> {
    while (this.full && !this.error) await new Promise<void>((r) => this.#waiters.push(r));
  }

  /** Resolves once no writer is busy. */
  async drain(): Promise<void> {
    while (this.busy.size > 0) await Promise.all(Array.from(this.busy, (w) => w.idle()));
  }

  fail(err: Error): void {
    this.error ??= err;
    this.notify();
  }

  notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}

/**
 * One requested file. The receive loop hands it DATA chunks and the EOF
 * without waiting; it creates the file on first use, writes the chunks in
 * order (joining those that queued up during the previous write) and after
 * the EOF sets the mtime and mode and closes the file. Several files are
 * written at once, beside the receive loop, so that file system round trips
 * overlap with each other and with receiving.
 */
class FileWriter {
  readonly rel: string;
  readonly abs: string;
  readonly stat: Stat;
  #pool: WriterPool;
  #queue: Uint8Array[] = [];
  #eof = false;
  #finished = false;
  #active = false;
  #running: Promise<void> = Promise.resolve();
  #open: Promise<Deno.FsFile> | undefined;
  #file: Deno.FsFile | undefined;

  constructor(pool: WriterPool, rel: string, abs: string, stat: Stat) {
    this.#pool = pool;
    this.rel = rel;
    this.abs = abs;
    this.stat = stat;
  }

  /** Creates (truncates) the file once; later calls return the same handle. */
  create(): Promise<Deno.FsFile> {
    this.#open ??= Deno.open(this.abs, { write: true, create: true, truncate: true, mode: 0o600 })
      .then(
        (f) => this.#file = f,
        (err) => {
          throw new Error(`failed to create ${this.rel}: ${(err as Error).message}`);
        },
      );
    return this.#open;
  }

  /** Queues a DATA chunk (a view that stays untouched until written). */
  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.#pool.buffered += chunk.length;
    this.#kick();
  }

  /** The EOF packet: the file is complete once the queue is written. */
  end(): void {
    this.#eof = true;
    this.#kick();
  }

  /** Settles when the writer has nothing left to do for now (never rejects). */
  idle(): Promise<void> {
    return this.#running;
  }

  /** Closes the file if the transfer stopped while it was open. */
  closeQuietly(): void {
    try {
      this.#file?.close();
    } catch {
      // already closed
    }
    this.#file = undefined;
  }

  #kick(): void {
    if (this.#active) return;
    this.#active = true;
    this.#pool.busy.add(this);
    this.#running = this.#pump().catch((err) => this.#pool.fail(err as Error));
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        if (this.#pool.stopped || this.#pool.error) return;
        if (this.#queue.length > 0) {
          const file = await this.create();
          let n = this.#queue[0]!.length;
          let count = 1;
          while (count < this.#queue.length && n + this.#queue[count]!.length <= MAX_WRITE) {
            n += this.#queue[count++]!.length;
          }
          const chunks = this.#queue.splice(0, count);
          const data = count === 1 ? chunks[0]! : joinChunks(chunks, n);
          try {
            await writeAll(file, data);
          } catch (err) {
            throw new Error(`failed to write ${this.rel}: ${(err as Error).message}`);
          } finally {
            this.#pool.buffered -= n;
            this.#pool.notify();
          }
          continue;
        }
        if (this.#eof && !this.#finished) {
          this.#finished = true;
          const file = await this.create();
          const t = nsToSeconds(this.stat.modTime);
          try {
            await file.utime(t, t);
            file.close();
            this.#file = undefined;
            await Deno.chmod(this.abs, posixPermBits(this.stat.mode));
          } catch (err) {
            throw new Error(`error setting metadata for ${this.rel}: ${(err as Error).message}`);
          }
        }
        return;
      }
    } finally {
      // Runs in the same turn as the last check above: a chunk pushed later kicks a new pump.
      this.#active = false;
      this.#pool.busy.delete(this);
      this.#pool.notify();
    }
  }
}

/** Runs the receiver side of the fsutil protocol, writing into `root`. */
async function receiveTree(
  call: ServerCall,
  root: string,
  keepPaths: boolean,
): Promise<ReceivedTree> {
  const order = new OrderValidator();
  /** Regular files received so far (hard link targets), with their writer when requested. */
  const files = new Map<string, FileWriter | undefined>();
  /** Requested files whose EOF has not arrived yet, by id. */
  const pending = new Map<number, FileWriter>();
  const pool = new WriterPool();
  const dirs: DirMeta[] = [];
  const paths = keepPaths ? new Set<string>() : undefined;
  let nextId = 0;
  let statsDone = false;
  let finSent = false;

  const finishIfDone = async () => {
    if (!statsDone || pending.size > 0 || finSent) return;
    await pool.drain();
    if (pool.error) throw pool.error;
    // Directory modes and mtimes last, deepest first, once their contents are written.
    for (let i = dirs.length - 1; i >= 0; i--) {
      const d = dirs[i]!;
      const abs = join(root, d.rel);
      try {
        await Deno.chmod(abs, posixPermBits(d.stat.mode));
        await Deno.utime(abs, nsToSeconds(d.stat.modTime), nsToSeconds(d.stat.modTime));
      } catch (err) {
        throw new Error(`error setting dir metadata for ${d.rel}: ${(err as Error).message}`);
      }
    }
    finSent = true;
    await call.sendFramed(controlPacket(PacketType.FIN));
  };

  try {
    for (;;) {
      if (pool.error) throw pool.error;
      if (pool.full) {
        await pool.room();
        if (pool.error) throw pool.error;
      }
      let msg;
      try {
        msg = await call.recv();
      } catch (err) {
        if (finSent) break; // the daemon may cancel instead of closing after FIN
        throw err;
      }
      if (msg === null) {
        if (finSent) break;
        throw new Error("sender closed the stream before the end of the transfer");
      }
      if (finSent) continue;
      const p = decodePacket(msg);
      switch (p.type) {
        case PacketType.ERR:
          throw new Error(`error from sender: ${new TextDecoder().decode(p.data)}`);
        case PacketType.STAT: {
          if (!p.stat) {
            statsDone = true;
            await finishIfDone();
            break;
          }
          const stat = p.stat;
          const id = nextId++;
          const rel = stat.path;
          const isDir = isDirMode(stat.mode);
          order.check(rel, isDir);
          paths?.add(rel);
          const abs = join(root, rel);
          const isLink = isSymlinkMode(stat.mode);
          try {
            if (isDir) {
              await Deno.mkdir(abs, { mode: 0o700 });
              dirs.push({ rel, stat });
            } else if (isLink) {
              await Deno.symlink(stat.linkname, abs);
              await setSymlinkTimes(abs, nsToSeconds(stat.modTime));
            } else if (stat.mode & (FileMode.Device | FileMode.NamedPipe)) {
              await mknod(abs, stat);
              await Deno.utime(abs, nsToSeconds(stat.modTime), nsToSeconds(stat.modTime));
            } else if (stat.linkname !== "") {
              if (!files.has(stat.linkname)) {
                throw new Error(`invalid link ${rel} to unknown path: "${stat.linkname}"`);
              }
              // The target exists once its writer has created it.
              await files.get(stat.linkname)?.create();
              await Deno.link(join(root, stat.linkname), abs);
            } else if (canRequestData(stat.mode)) {
              // Created by its writer when its data arrives.
              const w = new FileWriter(pool, rel, abs, stat);
              files.set(rel, w);
              pending.set(id, w);
              await call.sendFramed(controlPacket(PacketType.REQ, id));
            } else {
              files.set(rel, undefined);
              const f = await Deno.open(abs, {
                write: true,
                create: true,
                truncate: true,
                mode: 0o600,
              });
              f.close();
              await applyFileMeta(abs, stat);
            }
          } catch (err) {
            if ((err as Error).message?.startsWith("invalid link")) throw err;
            throw new Error(`failed to create ${rel}: ${(err as Error).message}`);
          }
          break;
        }
        case PacketType.DATA: {
          const w = pending.get(p.id);
          if (!w) throw new Error(`invalid file request ${p.id}`);
          if (p.data.length > 0) {
            w.push(p.data);
          } else {
            pending.delete(p.id);
            w.end();
            await finishIfDone();
          }
          break;
        }
        default:
          break;
      }
    }
  } finally {
    pool.stopped = true;
    await pool.drain();
    for (const w of files.values()) w?.closeQuietly();
  }
  return { dirs, paths };
}

async function applyFileMeta(abs: string, stat: Stat): Promise<void> {
  try {
    await Deno.chmod(abs, posixPermBits(stat.mode));
    await Deno.utime(abs, nsToSeconds(stat.modTime), nsToSeconds(stat.modTime));
  } catch (err) {
    throw new Error(`error setting metadata for ${stat.path}: ${(err as Error).message}`);
  }
}

/** Moves the staged tree into `dest`: one rename when possible, else a merge. */
async function commit(
  staging: string,
  dest: string,
  tree: ReceivedTree,
  deleteMode: boolean,
): Promise<void> {
  const existing = await lstatOrUndefined(dest);
  if (!existing && dirname(staging) === dirname(dest)) {
    try {
      await Deno.rename(staging, dest);
      return;
    } catch (err) {
      // Another stream (multi-platform) created dest meanwhile: merge instead.
      if (
        !(err instanceof Deno.errors.AlreadyExists) &&
        !/ENOTEMPTY|not empty|exists/i.test(String(err))
      ) {
        throw new Error(`failed to move the export into ${dest}: ${(err as Error).message}`);
      }
    }
  }
  const dirStats = new Map(tree.dirs.map((d) => [d.rel, d.stat]));
  try {
    await mergeDir(staging, dest, "", dirStats);
    if (deleteMode && tree.paths) await removeExtra(dest, "", tree.paths, basename(staging));
  } catch (err) {
    throw new Error(
      `failed to move the export into ${dest} (it may now hold a mix of old and new files): ${
        (err as Error).message
      }`,
    );
  }
  await Deno.remove(staging, { recursive: true }).catch(() => {});
}

async function mergeDir(
  src: string,
  dst: string,
  rel: string,
  dirStats: Map<string, Stat>,
): Promise<void> {
  const names: string[] = [];
  for await (const e of Deno.readDir(src)) names.push(e.name);
  names.sort(compareNames);
  for (const name of names) {
    const s = join(src, name);
    const d = join(dst, name);
    const r = rel ? `${rel}/${name}` : name;
    const sInfo = await Deno.lstat(s);
    const dInfo = await lstatOrUndefined(d);
    if (sInfo.isDirectory && dInfo?.isDirectory) {
      await mergeDir(s, d, r, dirStats);
      const st = dirStats.get(r);
      if (st) {
        await Deno.chmod(d, posixPermBits(st.mode));
        await Deno.utime(d, nsToSeconds(st.modTime), nsToSeconds(st.modTime));
      }
      continue;
    }
    if (dInfo && (dInfo.isDirectory || sInfo.isDirectory)) {
      await Deno.remove(d, { recursive: true });
    }
    await Deno.rename(s, d);
  }
}

async function removeExtra(
  dir: string,
  rel: string,
  keep: Set<string>,
  stagingName: string,
): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (rel === "" && e.name === stagingName) continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    const abs = join(dir, e.name);
    if (!keep.has(r)) await Deno.remove(abs, { recursive: true });
    else if (e.isDirectory) await removeExtra(abs, r, keep, stagingName);
  }
}

/**
 * Sets a symlink's own mtime and atime (best effort). `node:fs/promises` is
 * loaded on first use: its start-up cost is paid only by exports with symlinks.
 */
async function setSymlinkTimes(path: string, seconds: number): Promise<void> {
  const { lutimes } = await import("node:fs/promises");
  await lutimes(path, seconds, seconds).catch(() => {});
}
