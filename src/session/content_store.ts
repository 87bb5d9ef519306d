/**
 * The content-store attachable (protocol doc §3.10): containerd's
 * `containerd.services.content.v1.Content` service, served inside the
 * session, backed by local OCI-layout directories. The daemon picks the
 * store with the request header `buildkit-attachable-store-id`
 * (`local:<dir>` for local cache import/export, `export` for oci/docker
 * `tar=false` outputs).
 *
 * On-disk behaviour follows containerd's local content store, which
 * upstream buildctl uses: committed blobs at `blobs/<alg>/<hex>` (read-only,
 * mode 0444), in-flight writes under `ingest/<sha256(ref)>/` (`data`, `ref`,
 * `startedat`, `updatedat`, `total`), committed by an atomic rename after the
 * size and digest are verified. Blobs are streamed, never held in memory.
 * Modes are set explicitly to what upstream produces (it runs with umask 0).
 * Labels are not stored (upstream's store has no label store), so `Update`
 * fails with FAILED_PRECONDITION as upstream.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";
import { dirname, join } from "../path.ts";
import { GrpcStatusError, type Handler, type ServerCall, Status } from "./grpc_server.ts";
import { blobPath as layoutBlobPath, digestAlgorithmAvailable, digestError } from "./oci_index.ts";
import {
  AbortRequest,
  DeleteContentRequest,
  type Info,
  InfoRequest,
  InfoResponse,
  ListContentRequest,
  ListContentResponse,
  ListStatusesRequest,
  ListStatusesResponse,
  ReadContentRequest,
  type Status as IngestStatus,
  StatusRequest,
  StatusResponse,
  UpdateRequest,
  WriteAction,
  WriteContentRequest,
  WriteContentResponse,
} from "../gen/github.com/containerd/containerd/api/services/content/v1/content.ts";
import type { Timestamp } from "../gen/google/protobuf/timestamp.ts";

/** The request header naming the store. */
export const STORE_ID_HEADER = "buildkit-attachable-store-id";

const SERVICE = "/containerd.services.content.v1.Content";
/** Method paths of the Content service (exact, as advertised to the daemon). */
export const ContentMethods = {
  info: `${SERVICE}/Info`,
  update: `${SERVICE}/Update`,
  list: `${SERVICE}/List`,
  delete: `${SERVICE}/Delete`,
  read: `${SERVICE}/Read`,
  status: `${SERVICE}/Status`,
  listStatuses: `${SERVICE}/ListStatuses`,
  write: `${SERVICE}/Write`,
  abort: `${SERVICE}/Abort`,
} as const;

/** gRPC codes not in the session's table. */
const OUT_OF_RANGE = 11;
const DATA_LOSS = 15;

/** Largest `data` chunk of one ReadContentResponse (containerd uses 1 MiB buffers). */
export const READ_CHUNK = 1 << 20;
/** List batches (as containerd). */
const LIST_BATCH = 100;
/** Buffer size for re-hashing an ingest on resume. */
const HASH_CHUNK = 1 << 20;

const EMPTY = new Uint8Array();

const notFound = (msg: string) => new GrpcStatusError(Status.NOT_FOUND, `${msg}: not found`);
const invalid = (msg: string) =>
  new GrpcStatusError(Status.INVALID_ARGUMENT, `${msg}: invalid argument`);
const alreadyExists = (msg: string) =>
  new GrpcStatusError(Status.ALREADY_EXISTS, `${msg}: already exists`);
const precondition = (msg: string) =>
  new GrpcStatusError(Status.FAILED_PRECONDITION, `${msg}: failed precondition`);

/** Go-style text for a file-system error on `path` (`stat <path>: no such file or directory`). */
function fsError(op: string, path: string, err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return `${op} ${path}: no such file or directory`;
  if (err instanceof Deno.errors.PermissionDenied) return `${op} ${path}: permission denied`;
  return `${op} ${path}: ${err instanceof Error ? err.message : String(err)}`;
}

/** Wraps non-gRPC errors as UNKNOWN with a Go-like message. */
function asStatus(err: unknown, op: string, path: string): GrpcStatusError {
  if (err instanceof GrpcStatusError) return err;
  return new GrpcStatusError(Status.UNKNOWN, fsError(op, path, err), { cause: err });
}

/** A Date as a protobuf Timestamp. */
export function toTimestamp(d: Date): Timestamp {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 };
}

function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/** Creates `path` (and missing parents) with exactly `mode`, whatever the umask. */
async function mkdirAllMode(path: string, mode: number): Promise<void> {
  try {
    const st = await Deno.stat(path);
    if (st.isDirectory) return;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const parent = dirname(path);
  if (parent !== path) await mkdirAllMode(parent, mode);
  try {
    await Deno.mkdir(path, { mode });
    await Deno.chmod(path, mode);
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
}

/** Writes a whole buffer to a file. */
async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

/** Reads until `buf` is full or EOF; returns the count. */
async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let off = 0;
  while (off < buf.length) {
    const n = await file.read(buf.subarray(off));
    if (n === null) break;
    off += n;
  }
  return off;
}

/** Small files of an ingest are replaced via a temp file (as containerd's writeToCompletion). */
async function writeSmallFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, text, { mode: 0o666 });
  await Deno.chmod(tmp, 0o666);
  await Deno.rename(tmp, path);
}

function formatTime(d: Date): string {
  return d.toISOString();
}

async function readTime(path: string): Promise<Date> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw notFound(fsError("open", path, err));
    throw err;
  }
  const t = Date.parse(text.trim());
  if (Number.isNaN(t)) throw new Error(`could not parse timestamp file ${path}`);
  return new Date(t);
}

/** Metadata of a committed blob. */
export interface BlobInfo {
  digest: string;
  size: number;
  createdAt: Date;
  updatedAt: Date;
}

/** Progress of an ingest. */
export interface IngestState {
  ref: string;
  offset: number;
  total: number;
  startedAt: Date;
  updatedAt: Date;
}

/** Hash of `alg` (sha256, sha384 or sha512). */
function newHash(alg: string): Hash {
  return createHash(alg);
}

/** One containerd-style local content store rooted at an OCI layout directory. */
export class LocalContentStore {
  /** The layout directory. */
  readonly root: string;
  /** Refs with an open writer (containerd's in-process ref locks). */
  readonly #locks = new Map<string, Date>();

  constructor(root: string) {
    this.root = root;
  }

  /** `blobs/<alg>/<hex>`. @throws {GrpcStatusError} INVALID_ARGUMENT for a bad digest. */
  blobPath(digest: string): string {
    const err = digestError(digest);
    if (err) {
      throw invalid(`cannot calculate blob path from invalid digest: ${err}`);
    }
    return layoutBlobPath(this.root, digest);
  }

  /** The ingest directory of `ref`. */
  ingestRoot(ref: string): string {
    return join(this.root, "ingest", sha256Hex(ref));
  }

  /** Metadata of a committed blob. @throws {GrpcStatusError} NOT_FOUND. */
  async info(digest: string): Promise<BlobInfo> {
    const p = this.blobPath(digest);
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(p);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw notFound(`content ${digest}`);
      throw asStatus(err, "stat", p);
    }
    return blobInfo(digest, st);
  }

  /** Whether a committed blob exists (false for invalid digests, as containerd's Info). */
  async has(digest: string): Promise<boolean> {
    try {
      await this.info(digest);
      return true;
    } catch {
      return false;
    }
  }

  /** Removes a committed blob (no error when absent, as containerd's RemoveAll). */
  async delete(digest: string): Promise<void> {
    const p = this.blobPath(digest);
    try {
      await Deno.remove(p, { recursive: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw asStatus(err, "unlinkat", p);
    }
  }

  /** Every committed blob, in lexical path order. */
  async *walk(): AsyncGenerator<BlobInfo> {
    const root = join(this.root, "blobs");
    let algs: string[];
    try {
      algs = await sortedNames(root, (e) => e.isDirectory && digestAlgorithmAvailable(e.name));
    } catch (err) {
      throw asStatus(err, "lstat", root);
    }
    for (const alg of algs) {
      const dir = join(root, alg);
      for (const name of await sortedNames(dir, (e) => !e.isDirectory)) {
        let st: Deno.FileInfo;
        try {
          st = await Deno.stat(join(dir, name));
        } catch (err) {
          if (err instanceof Deno.errors.NotFound) continue;
          throw asStatus(err, "lstat", join(dir, name));
        }
        yield blobInfo(`${alg}:${name}`, st);
      }
    }
  }

  /** Progress of an ingest from its files. @throws {GrpcStatusError} NOT_FOUND. */
  async statusAt(ingestPath: string): Promise<IngestState> {
    const dp = join(ingestPath, "data");
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(dp);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw notFound(fsError("stat", dp, err));
      throw asStatus(err, "stat", dp);
    }
    let ref: string;
    const rp = join(ingestPath, "ref");
    try {
      ref = await Deno.readTextFile(rp);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw notFound(fsError("open", rp, err));
      throw asStatus(err, "open", rp);
    }
    const startedAt = await readTime(join(ingestPath, "startedat"));
    let updatedAt = await readTime(join(ingestPath, "updatedat"));
    if (st.mtime && st.mtime > updatedAt) updatedAt = st.mtime;
    let total = 0;
    try {
      const t = Number.parseInt(await Deno.readTextFile(join(ingestPath, "total")), 10);
      if (Number.isFinite(t)) total = t;
    } catch { /* no total */ }
    return { ref, offset: st.size, total, startedAt, updatedAt };
  }

  /** Progress of the ingest of `ref`. */
  status(ref: string): Promise<IngestState> {
    return this.statusAt(this.ingestRoot(ref));
  }

  /** Progress of every ingest. */
  async listStatuses(): Promise<IngestState[]> {
    const dir = join(this.root, "ingest");
    let names: string[];
    try {
      names = await sortedNames(dir, () => true);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw asStatus(err, "open", dir);
    }
    const out: IngestState[] = [];
    for (const n of names) {
      try {
        out.push(await this.statusAt(join(dir, n)));
      } catch (err) {
        if (err instanceof GrpcStatusError && err.code === Status.NOT_FOUND) continue;
        throw err;
      }
    }
    return out;
  }

  /** Drops the ingest of `ref` (no error when absent, as containerd). */
  async abort(ref: string): Promise<void> {
    const p = this.ingestRoot(ref);
    try {
      await Deno.remove(p, { recursive: true });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw asStatus(err, "unlinkat", p);
    }
  }

  /**
   * Opens (or resumes) the ingest of `ref`. The ref stays locked until the
   * writer is committed or closed.
   * @throws {GrpcStatusError} UNAVAILABLE when the ref is being written, ALREADY_EXISTS when `expected` is committed.
   */
  async writer(ref: string, total: number, expected: string): Promise<IngestWriter> {
    if (ref === "") throw invalid("ref must not be empty");
    const since = this.#locks.get(ref);
    if (since) {
      const held = ((Date.now() - since.getTime()) / 1000).toFixed(3);
      throw new GrpcStatusError(
        Status.UNAVAILABLE,
        `ref ${ref} locked for ${held}s (since ${since.toISOString()}): unavailable`,
      );
    }
    this.#locks.set(ref, new Date());
    try {
      return await this.#openWriter(ref, total, expected);
    } catch (err) {
      this.#locks.delete(ref);
      throw err;
    }
  }

  /** Releases the lock on `ref`. */
  unlock(ref: string): void {
    this.#locks.delete(ref);
  }

  async #openWriter(ref: string, total: number, expected: string): Promise<IngestWriter> {
    if (expected !== "") {
      let p: string;
      try {
        p = this.blobPath(expected);
      } catch (err) {
        throw invalid(
          `calculating expected blob path for writer: ${
            (err as Error).message.replace(/: invalid argument$/, "")
          }`,
        );
      }
      try {
        await Deno.stat(p);
        throw alreadyExists(`content ${expected}`);
      } catch (err) {
        if (err instanceof GrpcStatusError) throw err;
      }
    }
    const path = this.ingestRoot(ref);
    const dataPath = join(path, "data");
    let alg = "sha256";
    if (expected !== "") {
      const a = expected.slice(0, expected.indexOf(":"));
      if (digestAlgorithmAvailable(a)) alg = a;
    }
    let hash = newHash(alg);
    let offset = 0;
    let startedAt: Date | undefined;
    let updatedAt: Date | undefined;

    await mkdirAllMode(join(this.root, "ingest"), 0o777);
    let resumed = false;
    try {
      await Deno.mkdir(path, { mode: 0o755 });
      await Deno.chmod(path, 0o755);
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw asStatus(err, "mkdir", path);
      // An ingest left by an earlier writer: resume it when consistent.
      try {
        const st = await this.statusAt(path);
        if (st.ref !== ref) throw new Error("ref key does not match");
        if (total > 0 && st.total > 0 && total !== st.total) {
          throw new Error("provided total differs from status");
        }
        const h = newHash(alg);
        offset = await hashFile(dataPath, h);
        hash = h;
        startedAt = st.startedAt;
        updatedAt = st.updatedAt;
        total = st.total;
        resumed = true;
      } catch {
        resumed = false;
        offset = 0;
        hash = newHash(alg);
      }
    }
    if (!resumed) {
      startedAt = new Date();
      updatedAt = startedAt;
      await writeSmallFile(join(path, "ref"), ref);
      await writeSmallFile(join(path, "startedat"), formatTime(startedAt));
      await writeSmallFile(join(path, "updatedat"), formatTime(startedAt));
      if (total > 0) await writeSmallFile(join(path, "total"), String(total));
    }
    const file = await Deno.open(dataPath, {
      write: true,
      create: true,
      truncate: !resumed,
      mode: 0o666,
    });
    try {
      await Deno.chmod(dataPath, 0o666);
      await file.seek(offset, Deno.SeekMode.Start);
    } catch (err) {
      file.close();
      throw asStatus(err, "open", dataPath);
    }
    return new IngestWriter(this, {
      file,
      ref,
      path,
      alg,
      hash,
      offset,
      total,
      startedAt: startedAt!,
      updatedAt: updatedAt!,
    });
  }
}

async function sortedNames(dir: string, pick: (e: Deno.DirEntry) => boolean): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (pick(e)) names.push(e.name);
  return names.sort();
}

function blobInfo(digest: string, st: Deno.FileInfo): BlobInfo {
  const created = st.mtime ?? new Date(0);
  return { digest, size: st.size, createdAt: created, updatedAt: st.atime ?? created };
}

async function hashFile(path: string, hash: Hash): Promise<number> {
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(HASH_CHUNK);
    let total = 0;
    for (;;) {
      const n = await f.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      total += n;
    }
    return total;
  } finally {
    f.close();
  }
}

/** An open ingest (containerd's local writer). */
export class IngestWriter {
  readonly ref: string;
  readonly path: string;
  #store: LocalContentStore;
  #file: Deno.FsFile | null;
  #alg: string;
  #hash: Hash;
  offset: number;
  total: number;
  startedAt: Date;
  updatedAt: Date;

  constructor(
    store: LocalContentStore,
    s: {
      file: Deno.FsFile;
      ref: string;
      path: string;
      alg: string;
      hash: Hash;
      offset: number;
      total: number;
      startedAt: Date;
      updatedAt: Date;
    },
  ) {
    this.#store = store;
    this.#file = s.file;
    this.ref = s.ref;
    this.path = s.path;
    this.#alg = s.alg;
    this.#hash = s.hash;
    this.offset = s.offset;
    this.total = s.total;
    this.startedAt = s.startedAt;
    this.updatedAt = s.updatedAt;
  }

  /** Digest of what has been written so far. */
  digest(): string {
    return `${this.#alg}:${this.#hash.copy().digest("hex")}`;
  }

  #open(): Deno.FsFile {
    if (!this.#file) throw precondition("cannot write on closed writer");
    return this.#file;
  }

  /** Appends `data`. */
  async write(data: Uint8Array): Promise<void> {
    const f = this.#open();
    await writeAll(f, data);
    this.#hash.update(data);
    this.offset += data.length;
    this.updatedAt = new Date();
  }

  /** Restarts the ingest from zero. */
  async truncate(): Promise<void> {
    const f = this.#open();
    await f.truncate(0);
    await f.seek(0, Deno.SeekMode.Start);
    this.offset = 0;
    this.#hash = newHash(this.#alg);
  }

  /**
   * Verifies size (when `size > 0`) and digest (when `expected` is set) and
   * moves the data into `blobs/` (read-only). The ref is unlocked whatever
   * the outcome.
   */
  async commit(size: number, expected: string): Promise<string> {
    try {
      const file = this.#file;
      this.#file = null;
      if (!file) throw precondition("cannot commit on closed writer");
      let st: Deno.FileInfo;
      try {
        await file.sync();
        st = await file.stat();
      } finally {
        file.close();
      }
      if (size > 0 && size !== st.size) {
        throw precondition(`unexpected commit size ${st.size}, expected ${size}`);
      }
      const data = join(this.path, "data");
      let dgst = this.digest();
      if (expected !== "") {
        const alg = expected.slice(0, Math.max(0, expected.indexOf(":")));
        if (alg !== this.#alg && digestAlgorithmAvailable(alg)) {
          const h = newHash(alg);
          await hashFile(data, h);
          this.#alg = alg;
          this.#hash = h;
          dgst = this.digest();
        }
        if (expected !== dgst) {
          throw precondition(`unexpected commit digest ${dgst}, expected ${expected}`);
        }
      }
      const target = this.#store.blobPath(dgst);
      await mkdirAllMode(dirname(target), 0o755);
      let exists = false;
      try {
        await Deno.lstat(target);
        exists = true;
      } catch { /* not there yet */ }
      if (exists) {
        await Deno.remove(this.path, { recursive: true }).catch(() => {});
        throw alreadyExists(`content ${dgst}`);
      }
      try {
        await Deno.rename(data, target);
      } catch (err) {
        throw asStatus(err, "rename", data);
      }
      const now = new Date();
      await Deno.utime(target, now, now).catch(() => {});
      await Deno.remove(this.path, { recursive: true }).catch(() => {});
      await Deno.chmod(target, (st.mode ?? 0o666) & 0o777 & ~0o333).catch(() => {});
      return dgst;
    } finally {
      this.#store.unlock(this.ref);
    }
  }

  /** Closes an uncommitted writer, keeping the ingest for a later resume. Idempotent. */
  async close(): Promise<void> {
    const file = this.#file;
    if (!file) return;
    this.#file = null;
    try {
      await file.sync().catch(() => {});
      file.close();
      await writeSmallFile(join(this.path, "updatedat"), formatTime(this.updatedAt)).catch(
        () => {},
      );
    } finally {
      this.#store.unlock(this.ref);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Filters (containerd's filter syntax, the parts that can match here)

type Field = (path: string[]) => string | undefined;
type Matcher = (field: Field) => boolean;

/** Parses containerd filters (any one matching suffices; none matches all). */
export function parseFilters(filters: readonly string[]): Matcher {
  if (filters.length === 0) return () => true;
  const parsed = filters.map((f) => {
    try {
      return parseFilter(f);
    } catch (err) {
      throw invalid((err as Error).message);
    }
  });
  return (field) => parsed.some((m) => m(field));
}

function parseFilter(s: string): Matcher {
  if (s === "") return () => true;
  let i = 0;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i]!)) i++;
  };
  const quoted = (): string => {
    const q = s[i]!;
    let j = i + 1;
    let out = "";
    while (j < s.length && s[j] !== q) {
      if (s[j] === "\\" && j + 1 < s.length) {
        out += s[j + 1];
        j += 2;
      } else out += s[j++];
    }
    if (j >= s.length) throw new Error(`filters: parse error: [${s}]: unterminated quote`);
    i = j + 1;
    return out;
  };
  const selectors: Matcher[] = [];
  for (;;) {
    ws();
    const path: string[] = [];
    for (;;) {
      if (s[i] === '"' || s[i] === "'" || s[i] === "/") path.push(quoted());
      else {
        const m = /^[A-Za-z][A-Za-z0-9_]*/.exec(s.slice(i));
        if (!m) throw new Error(`filters: parse error: [${s} >|${s.slice(i)}|<]: expected field`);
        path.push(m[0]);
        i += m[0].length;
      }
      if (s[i] === ".") i++;
      else break;
    }
    ws();
    let op = "";
    let value = "";
    const two = s.slice(i, i + 2);
    if (two === "==" || two === "!=" || two === "~=") {
      op = two;
      i += 2;
      ws();
      if (s[i] === '"' || s[i] === "'" || s[i] === "/") value = quoted();
      else {
        const m = /^[^\s,]+/.exec(s.slice(i));
        if (!m) throw new Error(`filters: parse error: [${s}]: expected value`);
        value = m[0];
        i += m[0].length;
      }
    }
    let re: RegExp | undefined;
    if (op === "~=") {
      try {
        re = new RegExp(value);
      } catch {
        throw new Error(`filters: parse error: [${s}]: invalid regexp`);
      }
    }
    selectors.push((field) => {
      const v = field(path);
      if (op === "") return v !== undefined;
      if (op === "==") return v !== undefined && v === value;
      if (op === "!=") return (v ?? "") !== value;
      return re!.test(v ?? "");
    });
    ws();
    if (i >= s.length) break;
    if (s[i] !== ",") throw new Error(`filters: parse error: [${s}]: expected comma`);
    i++;
  }
  return (field) => selectors.every((m) => m(field));
}

// ---------------------------------------------------------------------------------------------
// Handlers

function infoToProto(i: BlobInfo): Info {
  return {
    digest: i.digest,
    size: BigInt(i.size),
    createdAt: toTimestamp(i.createdAt),
    updatedAt: toTimestamp(i.updatedAt),
    labels: {},
  };
}

function statusToProto(s: IngestState): IngestStatus {
  return {
    startedAt: toTimestamp(s.startedAt),
    updatedAt: toTimestamp(s.updatedAt),
    ref: s.ref,
    offset: BigInt(s.offset),
    total: BigInt(s.total),
    expected: "",
  };
}

/** Encodes a ReadContentResponse around `size` bytes of room for data, in a gRPC frame. */
function readFrame(offset: number, size: number): { frame: Buffer; dataAt: number } {
  const head: number[] = [];
  const varint = (n: number) => {
    while (n > 0x7f) {
      head.push((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    head.push(n);
  };
  if (offset > 0) {
    head.push(0x08);
    varint(offset);
  }
  head.push(0x12);
  varint(size);
  const frame = Buffer.allocUnsafe(5 + head.length + size);
  frame.set(head, 5);
  return { frame, dataAt: 5 + head.length };
}

/**
 * The Content service handlers, keyed by method path, for the given stores
 * (store id → OCI layout directory). Ids that name the same directory share
 * one store (and its ref locks).
 */
export function contentStoreHandlers(
  stores: ReadonlyMap<string, string>,
): Map<string, Handler> {
  const byDir = new Map<string, LocalContentStore>();
  const byId = new Map<string, LocalContentStore>();
  for (const [id, dir] of stores) {
    let s = byDir.get(dir);
    if (!s) byDir.set(dir, s = new LocalContentStore(dir));
    byId.set(id, s);
  }

  const choose = (call: ServerCall): LocalContentStore => {
    const values = call.headers.get(STORE_ID_HEADER);
    if (!values || values.length === 0) {
      throw invalid(`request lacks metadata "${STORE_ID_HEADER}"`);
    }
    const s = byId.get(values[0]!);
    if (!s) throw notFound(`unknown store ${values[0]}`);
    return s;
  };

  const recvOne = async (call: ServerCall): Promise<Uint8Array> => (await call.recv()) ?? EMPTY;

  const handlers = new Map<string, Handler>();

  handlers.set(ContentMethods.info, async (call) => {
    const req = InfoRequest.decode(await recvOne(call));
    if (digestError(req.digest)) {
      throw new GrpcStatusError(
        Status.INVALID_ARGUMENT,
        `${JSON.stringify(req.digest)} failed validation`,
      );
    }
    const info = await choose(call).info(req.digest);
    await call.send(InfoResponse.encode({ info: infoToProto(info) }).finish());
  });

  handlers.set(ContentMethods.update, async (call) => {
    const req = UpdateRequest.decode(await recvOne(call));
    const digest = req.info?.digest ?? "";
    if (digestError(digest)) {
      throw new GrpcStatusError(
        Status.INVALID_ARGUMENT,
        `${JSON.stringify(digest)} failed validation`,
      );
    }
    choose(call);
    throw precondition("update not supported on immutable content store");
  });

  handlers.set(ContentMethods.list, async (call) => {
    const req = ListContentRequest.decode(await recvOne(call));
    const store = choose(call);
    const match = parseFilters(req.filters);
    let batch: Info[] = [];
    for await (const info of store.walk()) {
      const ok = match((path) =>
        path.length === 1 && path[0] === "digest" ? info.digest : undefined
      );
      if (!ok) continue;
      batch.push(infoToProto(info));
      if (batch.length >= LIST_BATCH) {
        await call.send(ListContentResponse.encode({ info: batch }).finish());
        batch = [];
      }
    }
    if (batch.length > 0) await call.send(ListContentResponse.encode({ info: batch }).finish());
  });

  handlers.set(ContentMethods.delete, async (call) => {
    const req = DeleteContentRequest.decode(await recvOne(call));
    const err = digestError(req.digest);
    if (err) throw new GrpcStatusError(Status.INVALID_ARGUMENT, err);
    await choose(call).delete(req.digest);
    await call.send(EMPTY);
  });

  handlers.set(ContentMethods.read, async (call) => {
    const req = ReadContentRequest.decode(await recvOne(call));
    const err = digestError(req.digest);
    if (err) throw new GrpcStatusError(Status.INVALID_ARGUMENT, `${req.digest}: ${err}`);
    const store = choose(call);
    const info = await store.info(req.digest);
    const path = store.blobPath(req.digest);
    const offset = Math.max(0, Number(req.offset));
    let size = Number(req.size);
    if (offset > info.size) {
      throw new GrpcStatusError(OUT_OF_RANGE, `read past object length ${info.size} bytes`);
    }
    if (size <= 0 || offset + size > info.size) size = info.size - offset;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw notFound(`blob ${req.digest} expected at ${path}: ${fsError("open", path, e)}`);
      }
      throw asStatus(e, "open", path);
    }
    try {
      if (offset > 0) await file.seek(offset, Deno.SeekMode.Start);
      // As containerd, each response's offset counts from the start of the requested range.
      let sent = 0;
      while (sent < size) {
        if (call.signal.aborted) return;
        const n = Math.min(READ_CHUNK, size - sent);
        const { frame, dataAt } = readFrame(sent, n);
        const got = await readFull(file, frame.subarray(dataAt));
        if (got < n) throw new GrpcStatusError(Status.UNKNOWN, "unexpected EOF");
        await call.sendFramed(frame);
        sent += n;
      }
    } finally {
      file.close();
    }
  });

  handlers.set(ContentMethods.status, async (call) => {
    const req = StatusRequest.decode(await recvOne(call));
    const store = choose(call);
    let st: IngestState;
    try {
      st = await store.status(req.ref);
    } catch (err) {
      const e = asStatus(err, "stat", store.ingestRoot(req.ref));
      throw new GrpcStatusError(
        e.code,
        `could not get status for ref ${JSON.stringify(req.ref)}: ${e.message}`,
      );
    }
    await call.send(StatusResponse.encode({ status: statusToProto(st) }).finish());
  });

  handlers.set(ContentMethods.listStatuses, async (call) => {
    const req = ListStatusesRequest.decode(await recvOne(call));
    const store = choose(call);
    const match = parseFilters(req.filters);
    const statuses = (await store.listStatuses()).filter((s) =>
      match((path) => path.length === 1 && path[0] === "ref" ? s.ref : undefined)
    );
    await call.send(
      ListStatusesResponse.encode({ statuses: statuses.map(statusToProto) }).finish(),
    );
  });

  handlers.set(ContentMethods.abort, async (call) => {
    const req = AbortRequest.decode(await recvOne(call));
    await choose(call).abort(req.ref);
    await call.send(EMPTY);
  });

  handlers.set(ContentMethods.write, (call) => serveWrite(call, choose));

  return handlers;
}

/** The Write stream, following containerd's content server step by step. */
async function serveWrite(
  call: ServerCall,
  choose: (call: ServerCall) => LocalContentStore,
): Promise<void> {
  const first = await call.recv();
  if (first === null) throw new GrpcStatusError(Status.UNKNOWN, "EOF");
  let req = WriteContentRequest.decode(first);
  const ref = req.ref;
  if (ref === "") {
    throw new GrpcStatusError(Status.INVALID_ARGUMENT, "first message must have a reference");
  }
  let total = Number(req.total);
  let expected = req.expected;
  const store = choose(call);
  const wr = await store.writer(ref, total, expected);
  // One response message, reused across the stream as containerd does.
  const msg: WriteContentResponse = {
    action: WriteAction.STAT,
    startedAt: undefined,
    updatedAt: undefined,
    offset: 0n,
    total: 0n,
    digest: "",
  };
  try {
    for (;;) {
      msg.action = req.action;
      msg.offset = BigInt(wr.offset);
      if (req.expected !== "") {
        expected = req.expected;
        if (await store.has(expected)) {
          await wr.close();
          await store.abort(ref).catch(() => {});
          throw new GrpcStatusError(
            Status.ALREADY_EXISTS,
            `blob with expected digest ${req.expected} exists`,
          );
        }
      }
      if (req.total > 0n) total = Number(req.total);

      if (req.action === WriteAction.STAT) {
        msg.digest = wr.digest();
        msg.startedAt = toTimestamp(wr.startedAt);
        msg.updatedAt = toTimestamp(wr.updatedAt);
        msg.total = BigInt(total);
      } else if (req.action === WriteAction.WRITE || req.action === WriteAction.COMMIT) {
        const off = Number(req.offset);
        if (off > 0 && off !== wr.offset) {
          throw new GrpcStatusError(
            OUT_OF_RANGE,
            `write @${off} must occur at current offset ${wr.offset}`,
          );
        }
        if (off === 0 && wr.offset > 0) {
          await wr.truncate();
          msg.offset = 0n;
        }
        if (req.data.length > 0) {
          const before = wr.offset;
          await wr.write(req.data);
          const n = wr.offset - before;
          if (n !== req.data.length) {
            throw new GrpcStatusError(DATA_LOSS, `wrote ${n} of ${req.data.length} bytes`);
          }
          msg.offset += BigInt(n);
        }
        if (req.action === WriteAction.COMMIT) await wr.commit(total, expected);
        msg.digest = wr.digest();
      }
      await call.send(WriteContentResponse.encode(msg).finish());
      if (req.action === WriteAction.COMMIT) return;
      const next = await call.recv();
      if (next === null) return;
      req = WriteContentRequest.decode(next);
    }
  } finally {
    await wr.close();
  }
}
