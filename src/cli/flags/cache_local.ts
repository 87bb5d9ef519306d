/**
 * Client-side work for local cache directories and OCI-layout outputs, as
 * upstream's `client.Solve` does it (protocol doc §3.9, §3.10, §5.4):
 *
 * - before the solve: create `--export-cache type=local` destinations and
 *   oci/docker `tar=false` output directories, resolve `--import-cache
 *   type=local` tags to digests from `<src>/index.json` (dropping, with a
 *   warning, imports that cannot be used), and collect the content stores
 *   the session must serve (store id → directory);
 * - after a successful solve: record `cache.manifest` in each local cache's
 *   `index.json` (under `tag`, default `latest`), record the image from
 *   `containerimage.descriptor` in each OCI-layout output, then prune
 *   unreferenced blobs of `reset=true` caches.
 *
 * Store ids and warning texts use the directories exactly as given on the
 * command line (upstream does not make them absolute).
 *
 * @module
 */

import { dirname } from "../../path.ts";
import { BuildctlError } from "../../errors.ts";
import type { LogEntry } from "../format/logrus.ts";
import type { CacheEntry } from "./build.ts";
import {
  blobPath,
  digestError,
  getTagged,
  imageName,
  imageTag,
  type NameOrTag,
  parseDescriptorJson,
  pruneUnreferenced,
  putIndex,
} from "../../session/oci_index.ts";

/** Store id of the oci/docker `tar=false` output (upstream supports one such output). */
export const EXPORT_STORE_ID = "export";
/** Exporter-response key of the local cache manifest descriptor (JSON). */
export const CACHE_MANIFEST_KEY = "cache.manifest";
/** Exporter-response key of the image descriptor (base64 JSON). */
export const IMAGE_DESCRIPTOR_KEY = "containerimage.descriptor";
/** Exporter-response key of the image name(s) (comma-separated). */
export const IMAGE_NAME_KEY = "image.name";

/** Store id of a local cache directory. */
export const localStoreId = (dir: string): string => `local:${dir}`;

/** Go's strconv.ParseBool. */
function parseGoBool(v: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}

function errnoText(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    return "permission denied";
  }
  if (err instanceof Deno.errors.AlreadyExists) return "file exists";
  if (err instanceof Deno.errors.NotADirectory) return "not a directory";
  return err instanceof Error ? err.message : String(err);
}

/** `os.MkdirAll(dir, 0755)` with upstream's umask 0: created directories get exactly 0755. */
export async function mkdirAll0755(dir: string): Promise<void> {
  try {
    const st = await Deno.stat(dir);
    if (st.isDirectory) return;
    throw new BuildctlError(`mkdir ${dir}: not a directory`);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      if (err instanceof BuildctlError) throw err;
      throw new BuildctlError(`stat ${dir}: ${errnoText(err)}`, { cause: err });
    }
  }
  const parent = dirname(dir);
  if (parent !== dir) await mkdirAll0755(parent);
  try {
    await Deno.mkdir(dir, { mode: 0o755 });
    await Deno.chmod(dir, 0o755);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return;
    throw new BuildctlError(`mkdir ${dir}: ${errnoText(err)}`, { cause: err });
  }
}

/** What {@linkcode prepareCacheExports} found. */
export interface PreparedCacheExports {
  /** Content stores to serve: `local:<dest>` → dest. */
  stores: Map<string, string>;
}

/**
 * Creates the destination of every `type=local` cache export (mode 0755) and
 * checks `reset`. The entries themselves are sent unchanged.
 * @throws {BuildctlError} for an invalid `reset` or an uncreatable `dest`.
 */
export async function prepareCacheExports(
  entries: readonly CacheEntry[],
): Promise<PreparedCacheExports> {
  const stores = new Map<string, string>();
  for (const e of entries) {
    if (e.type !== "local") continue;
    const dest = e.attrs["dest"] ?? "";
    if (dest === "") throw new BuildctlError("local cache exporter requires dest");
    await mkdirAll0755(dest);
    stores.set(localStoreId(dest), dest);
    const reset = e.attrs["reset"];
    if (reset !== undefined && parseGoBool(reset) === undefined) {
      throw new BuildctlError(
        `failed to parse reset attribute: strconv.ParseBool: parsing ${
          JSON.stringify(reset)
        }: invalid syntax`,
      );
    }
  }
  return { stores };
}

/** What {@linkcode prepareCacheImports} decided. */
export interface PreparedCacheImports {
  /**
   * The imports to send, in order: local ones that cannot be used are
   * dropped; local ones resolved from a tag carry `attrs.digest`. Use these
   * both for `SolveRequest.Cache.Imports` and for the frontend attribute
   * `cache-imports`.
   */
  entries: CacheEntry[];
  /** Content stores to serve: `local:<src>` → src. */
  stores: Map<string, string>;
  /** Warnings to print (upstream logs them with logrus, before the build starts). */
  warnings: LogEntry[];
}

const warn = (msg: string): LogEntry => ({ level: "warning", msg });

/**
 * Resolves local cache imports as upstream: `tag` (default `latest`) is
 * looked up in `<src>/index.json` unless `digest` is given, and the blob must
 * exist. A missing `src` directory is created (as upstream's store does).
 * @throws {BuildctlError} when a local import has neither digest nor a non-empty tag.
 */
export async function prepareCacheImports(
  entries: readonly CacheEntry[],
): Promise<PreparedCacheImports> {
  const out: CacheEntry[] = [];
  const stores = new Map<string, string>();
  const warnings: LogEntry[] = [];
  for (const e of entries) {
    if (e.type !== "local") {
      out.push(e);
      continue;
    }
    const src = e.attrs["src"] ?? "";
    if (src === "") throw new BuildctlError("local cache importer requires src");
    const problem = await openStoreDir(src);
    if (problem) {
      warnings.push(warn(`local cache import at ${src} not found due to err: ${problem}`));
      continue;
    }
    const attrs = { ...e.attrs };
    let digest = attrs["digest"] ?? "";
    if (digest === "") {
      const tag = attrs["tag"] ?? "latest";
      if (tag === "") {
        throw new BuildctlError(
          'local cache importer requires either explicit digest, "latest" tag or custom tag on index.json',
        );
      }
      let desc;
      try {
        desc = await getTagged(src, tag);
      } catch (err) {
        warnings.push(
          warn(`local cache import at ${src} skipped due to err: ${(err as Error).message}`),
        );
        continue;
      }
      if (!desc) {
        warnings.push(warn(`local cache import at ${src} skipped: no digest found for tag ${tag}`));
        continue;
      }
      digest = desc.digest;
      attrs["digest"] = digest;
    }
    const unavailable = await blobUnavailable(src, digest);
    if (unavailable) {
      warnings.push(
        warn(`local cache import at ${src} skipped: digest ${digest} unavailable: ${unavailable}`),
      );
      continue;
    }
    stores.set(localStoreId(src), src);
    out.push({ ...e, attrs });
  }
  return { entries: out, stores, warnings };
}

/** containerd's `NewStore(dir)`: creates a missing directory; returns its error text, if any. */
async function openStoreDir(dir: string): Promise<string | undefined> {
  try {
    await Deno.stat(dir);
    return undefined;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      return `failed to stat ${JSON.stringify(dir)}: stat ${dir}: ${errnoText(err)}`;
    }
  }
  try {
    await mkdirAll0755(dir);
    return undefined;
  } catch (err) {
    return `failed to mkdir ${JSON.stringify(dir)}: ${(err as Error).message}`;
  }
}

/** Why a blob cannot be used (containerd's Info error text), or undefined when it exists. */
async function blobUnavailable(dir: string, digest: string): Promise<string | undefined> {
  const bad = digestError(digest);
  if (bad) {
    return `calculating blob info path: cannot calculate blob path from invalid digest: ${bad}: invalid argument`;
  }
  const p = blobPath(dir, digest);
  try {
    await Deno.stat(p);
    return undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return `content ${digest}: not found`;
    return `stat ${p}: ${errnoText(err)}`;
  }
}

/**
 * Prepares an oci/docker `tar=false` output directory: creates it (0755)
 * and adds the `export` store to `stores`.
 * @throws {BuildctlError} when another output already uses the `export` store.
 */
export async function prepareOciDirExport(
  dest: string,
  stores: Map<string, string>,
): Promise<void> {
  if (stores.has(EXPORT_STORE_ID)) {
    throw new BuildctlError(`oci store key ${JSON.stringify(EXPORT_STORE_ID)} already exists`);
  }
  await mkdirAll0755(dest);
  stores.set(EXPORT_STORE_ID, dest);
}

/**
 * Records the exported image in `<dest>/index.json`: the descriptor from
 * `containerimage.descriptor` (base64 JSON) under each name of `image.name`
 * (comma-separated), or under tag `latest`. Nothing happens without a
 * descriptor.
 * @throws {BuildctlError} for an undecodable descriptor or an unwritable index.
 */
export async function finishOciDirExport(
  dest: string,
  exporterResponse: Readonly<Record<string, string>>,
): Promise<void> {
  const b64 = exporterResponse[IMAGE_DESCRIPTOR_KEY] ?? "";
  if (b64 === "") return;
  const desc = decodeImageDescriptor(b64);
  const nameList = exporterResponse[IMAGE_NAME_KEY];
  const names: NameOrTag[] = nameList === undefined
    ? [imageTag("latest")]
    : nameList.split(",").map(imageName);
  try {
    await putIndex(dest, desc, names);
  } catch (err) {
    throw new BuildctlError((err as Error).message, { cause: err });
  }
}

function decodeImageDescriptor(b64: string) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    const bad = b64.search(/[^A-Za-z0-9+/=]/);
    throw new BuildctlError(
      `illegal base64 data at input byte ${bad >= 0 ? bad : b64.length}`,
    );
  }
  const text = new TextDecoder().decode(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
  try {
    return parseDescriptorJson(text);
  } catch (err) {
    throw new BuildctlError((err as Error).message, { cause: err });
  }
}

/** Options of {@linkcode finishCacheExports}. */
export interface FinishExportsOptions {
  /** oci/docker `tar=false` output directories, updated between cache indexes and resets (upstream's order). */
  ociDirs?: readonly string[];
}

/** What {@linkcode finishCacheExports} has to report. */
export interface FinishedExports {
  /** Warnings to print (failed resets). */
  warnings: LogEntry[];
}

/**
 * After a successful solve, in upstream's order: adds `cache.manifest` to
 * the `index.json` of each local cache export (tag `attrs.tag`, default
 * `latest`; one update per directory, the last entry's tag wins), updates
 * each OCI-layout output (`opts.ociDirs`, see {@linkcode finishOciDirExport}),
 * then deletes unreferenced blobs of each `reset=true` cache (failures are
 * warnings).
 * @throws {BuildctlError} for an undecodable descriptor or an unwritable index.
 */
export async function finishCacheExports(
  entries: readonly CacheEntry[],
  exporterResponse: Readonly<Record<string, string>>,
  opts: FinishExportsOptions = {},
): Promise<FinishedExports> {
  const locals = entries.filter((e) => e.type === "local" && (e.attrs["dest"] ?? "") !== "");
  const manifestJson = exporterResponse[CACHE_MANIFEST_KEY] ?? "";
  if (manifestJson !== "") {
    let desc;
    try {
      desc = parseDescriptorJson(manifestJson);
    } catch (err) {
      throw new BuildctlError((err as Error).message, { cause: err });
    }
    const tags = new Map<string, string>();
    for (const e of locals) tags.set(e.attrs["dest"]!, e.attrs["tag"] ?? "latest");
    for (const [dir, tag] of tags) {
      try {
        await putIndex(dir, desc, [imageTag(tag)]);
      } catch (err) {
        throw new BuildctlError((err as Error).message, { cause: err });
      }
    }
  }
  for (const dir of opts.ociDirs ?? []) await finishOciDirExport(dir, exporterResponse);

  const warnings: LogEntry[] = [];
  for (const e of locals) {
    if (parseGoBool(e.attrs["reset"] ?? "") !== true) continue;
    const dir = e.attrs["dest"]!;
    try {
      const res = await pruneUnreferenced(dir);
      for (const f of res.failures) {
        warnings.push({
          level: "warning",
          msg: `reset: failed to delete blob ${f.digest}`,
          fields: { error: f.error },
        });
      }
    } catch (err) {
      warnings.push({
        level: "warning",
        msg: "failed to reset cache store",
        fields: { error: (err as Error).message },
      });
    }
  }
  return { warnings };
}
