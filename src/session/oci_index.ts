/**
 * OCI image-layout helpers for the client side of the content-store
 * attachable (protocol doc §3.10): reading and updating `index.json`
 * (atomically, under the same `index.json.lock` file upstream uses), tag
 * resolution, and pruning blobs that the index no longer references
 * (`--export-cache type=local,reset=true`).
 *
 * `index.json` is written byte for byte as upstream's Go client writes it
 * (struct field order, sorted annotation keys, Go's JSON string escaping),
 * and unknown fields of existing entries are dropped, as Go's decoder does.
 *
 * @module
 */

import { join } from "../path.ts";

/** The layout's index file name. */
export const INDEX_FILE = "index.json";
/** The layout's version marker file name. */
export const LAYOUT_FILE = "oci-layout";
/** Annotation holding the full image name (containerd). */
export const ANNOTATION_IMAGE_NAME = "io.containerd.image.name";
/** Annotation holding the tag (OCI). */
export const ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name";
/** OCI image index media type. */
export const MEDIA_TYPE_IMAGE_INDEX = "application/vnd.oci.image.index.v1+json";

const MANIFEST_TYPES = new Set([
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
]);
const INDEX_TYPES = new Set([
  MEDIA_TYPE_IMAGE_INDEX,
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);

/** An OCI platform (only the fields Go's image-spec struct knows). */
export interface Platform {
  architecture: string;
  os: string;
  "os.version"?: string;
  "os.features"?: string[];
  variant?: string;
}

/** An OCI content descriptor (only the fields Go's image-spec struct knows). */
export interface Descriptor {
  mediaType?: string;
  artifactType?: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  /** Base64, as in JSON. */
  data?: string;
  platform?: Platform;
}

/** An OCI image index. */
export interface OciIndex {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** A name (full image reference) or a bare tag to record a descriptor under. */
export type NameOrTag = { kind: "name"; value: string } | { kind: "tag"; value: string };

/** `{kind: "name"}` helper. */
export const imageName = (value: string): NameOrTag => ({ kind: "name", value });
/** `{kind: "tag"}` helper. */
export const imageTag = (value: string): NameOrTag => ({ kind: "tag", value });

// ---------------------------------------------------------------------------------------------
// Go-compatible JSON

/** Encodes a string as Go's encoding/json does (HTML-safe escaping). */
export function goJsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c < 0x20) {
      if (c === 0x0a) out += "\\n";
      else if (c === 0x0d) out += "\\r";
      else if (c === 0x09) out += "\\t";
      else if (c === 0x08) out += "\\b";
      else if (c === 0x0c) out += "\\f";
      else out += "\\u00" + c.toString(16).padStart(2, "0");
    } else if (c === 0x3c) out += "\\u003c";
    else if (c === 0x3e) out += "\\u003e";
    else if (c === 0x26) out += "\\u0026";
    else if (c === 0x2028) out += "\\u2028";
    else if (c === 0x2029) out += "\\u2029";
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i]! + s[i + 1]!;
        i++;
      } else out += "\ufffd";
    } else if (c >= 0xdc00 && c <= 0xdfff) out += "\ufffd";
    else out += s[i];
  }
  return out + '"';
}

function goMap(m: Record<string, string>): string {
  const keys = Object.keys(m).sort(byBytes);
  return "{" + keys.map((k) => `${goJsonString(k)}:${goJsonString(m[k]!)}`).join(",") + "}";
}

/** Go sorts map keys by their UTF-8 bytes. */
function byBytes(a: string, b: string): number {
  if (a === b) return 0;
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) if (ea[i] !== eb[i]) return ea[i]! - eb[i]!;
  return ea.length - eb.length;
}

function goStrings(list: string[]): string {
  return "[" + list.map(goJsonString).join(",") + "]";
}

function marshalPlatform(p: Platform): string {
  const parts = [
    `"architecture":${goJsonString(p.architecture)}`,
    `"os":${goJsonString(p.os)}`,
  ];
  if (p["os.version"]) parts.push(`"os.version":${goJsonString(p["os.version"])}`);
  if (p["os.features"]?.length) parts.push(`"os.features":${goStrings(p["os.features"])}`);
  if (p.variant) parts.push(`"variant":${goJsonString(p.variant)}`);
  return "{" + parts.join(",") + "}";
}

/** Marshals a descriptor as Go's `json.Marshal(ocispecs.Descriptor)`. */
export function marshalDescriptor(d: Descriptor): string {
  const parts: string[] = [];
  if (d.mediaType) parts.push(`"mediaType":${goJsonString(d.mediaType)}`);
  if (d.artifactType) parts.push(`"artifactType":${goJsonString(d.artifactType)}`);
  parts.push(`"digest":${goJsonString(d.digest)}`);
  parts.push(`"size":${Math.trunc(d.size)}`);
  if (d.urls?.length) parts.push(`"urls":${goStrings(d.urls)}`);
  if (d.annotations && Object.keys(d.annotations).length > 0) {
    parts.push(`"annotations":${goMap(d.annotations)}`);
  }
  if (d.data) parts.push(`"data":${goJsonString(d.data)}`);
  if (d.platform) parts.push(`"platform":${marshalPlatform(d.platform)}`);
  return "{" + parts.join(",") + "}";
}

/** Marshals an index as Go's `json.Marshal(ocispecs.Index)`. */
export function marshalIndex(idx: OciIndex): string {
  const parts = [`"schemaVersion":${Math.trunc(idx.schemaVersion)}`];
  if (idx.mediaType) parts.push(`"mediaType":${goJsonString(idx.mediaType)}`);
  if (idx.artifactType) parts.push(`"artifactType":${goJsonString(idx.artifactType)}`);
  parts.push(`"manifests":[${idx.manifests.map(marshalDescriptor).join(",")}]`);
  if (idx.subject) parts.push(`"subject":${marshalDescriptor(idx.subject)}`);
  if (idx.annotations && Object.keys(idx.annotations).length > 0) {
    parts.push(`"annotations":${goMap(idx.annotations)}`);
  }
  return "{" + parts.join(",") + "}";
}

class DecodeError extends Error {}

function asObject(v: unknown, what: string): Record<string, unknown> | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new DecodeError(`json: cannot unmarshal ${jsonType(v)} into Go value of type ${what}`);
  }
  return v as Record<string, unknown>;
}

function jsonType(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  return typeof v === "object" ? "object" : typeof v;
}

function optString(v: unknown, field: string): string | undefined {
  if (v === null || v === undefined) return undefined;
  if (typeof v !== "string") {
    throw new DecodeError(
      `json: cannot unmarshal ${jsonType(v)} into Go struct field ${field} of type string`,
    );
  }
  return v;
}

function optStrings(v: unknown, field: string): string[] | undefined {
  if (v === null || v === undefined) return undefined;
  if (!Array.isArray(v)) {
    throw new DecodeError(
      `json: cannot unmarshal ${jsonType(v)} into Go struct field ${field} of type []string`,
    );
  }
  return v.map((s) => optString(s, field) ?? "");
}

function optMap(v: unknown, field: string): Record<string, string> | undefined {
  const o = asObject(v, `map[string]string (field ${field})`);
  if (!o) return undefined;
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) out[k] = optString(val, field) ?? "";
  return out;
}

function optInt(v: unknown, field: string): number {
  if (v === null || v === undefined) return 0;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw new DecodeError(
      `json: cannot unmarshal ${jsonType(v)} into Go struct field ${field} of type int64`,
    );
  }
  return v;
}

function decodePlatform(v: unknown): Platform | undefined {
  const o = asObject(v, "v1.Platform");
  if (!o) return undefined;
  const p: Platform = {
    architecture: optString(o["architecture"], "Platform.architecture") ?? "",
    os: optString(o["os"], "Platform.os") ?? "",
  };
  const ver = optString(o["os.version"], "Platform.os.version");
  if (ver) p["os.version"] = ver;
  const feats = optStrings(o["os.features"], "Platform.os.features");
  if (feats?.length) p["os.features"] = feats;
  const variant = optString(o["variant"], "Platform.variant");
  if (variant) p.variant = variant;
  return p;
}

/** Normalises parsed JSON into a descriptor (dropping unknown fields), as Go's decoder does. */
export function decodeDescriptor(v: unknown): Descriptor {
  const o = asObject(v, "v1.Descriptor") ?? {};
  const d: Descriptor = {
    digest: optString(o["digest"], "Descriptor.digest") ?? "",
    size: optInt(o["size"], "Descriptor.size"),
  };
  const mt = optString(o["mediaType"], "Descriptor.mediaType");
  if (mt) d.mediaType = mt;
  const at = optString(o["artifactType"], "Descriptor.artifactType");
  if (at) d.artifactType = at;
  const urls = optStrings(o["urls"], "Descriptor.urls");
  if (urls?.length) d.urls = urls;
  const ann = optMap(o["annotations"], "Descriptor.annotations");
  if (ann) d.annotations = ann;
  const data = optString(o["data"], "Descriptor.data");
  if (data) d.data = data;
  const platform = decodePlatform(o["platform"]);
  if (platform) d.platform = platform;
  return d;
}

/** Normalises parsed JSON into an index, as Go's decoder does. */
export function decodeIndex(v: unknown): OciIndex {
  const o = asObject(v, "v1.Index") ?? {};
  const manifests = o["manifests"];
  if (manifests !== null && manifests !== undefined && !Array.isArray(manifests)) {
    throw new DecodeError(
      `json: cannot unmarshal ${
        jsonType(manifests)
      } into Go struct field Index.manifests of type []v1.Descriptor`,
    );
  }
  const idx: OciIndex = {
    schemaVersion: optInt(o["schemaVersion"], "Index.schemaVersion"),
    manifests: (manifests as unknown[] | null | undefined ?? []).map(decodeDescriptor),
  };
  const mt = optString(o["mediaType"], "Index.mediaType");
  if (mt) idx.mediaType = mt;
  const at = optString(o["artifactType"], "Index.artifactType");
  if (at) idx.artifactType = at;
  if (o["subject"] !== null && o["subject"] !== undefined) {
    idx.subject = decodeDescriptor(o["subject"]);
  }
  const ann = optMap(o["annotations"], "Index.annotations");
  if (ann) idx.annotations = ann;
  return idx;
}

/** Parses JSON text into a descriptor. @throws {Error} on invalid JSON or types. */
export function parseDescriptorJson(text: string): Descriptor {
  return decodeDescriptor(JSON.parse(text));
}

// ---------------------------------------------------------------------------------------------
// Names

/**
 * The OCI ref name for an image name, as containerd's tar exporter derives
 * it: the tag (or `@digest`) part of `reference.Parse(name)`, or the whole
 * name when it does not parse.
 */
export function ociReferenceName(name: string): string {
  return referenceObject(name) ?? name;
}

/** containerd `reference.Parse(s).Object`, or undefined when Parse fails. */
function referenceObject(s: string): string | undefined {
  if (s.includes("://")) return undefined;
  // net/url rejects ASCII control characters anywhere.
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(s)) return undefined;
  let rest = s;
  const hash = rest.indexOf("#");
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf("?");
  if (q >= 0) rest = rest.slice(0, q);
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const rawPath = slash < 0 ? "" : rest.slice(slash);
  const at = authority.lastIndexOf("@");
  const host = at < 0 ? authority : authority.slice(at + 1);
  if (!validUrlHost(host)) return undefined;
  if (host === "") return undefined; // hostname required
  let path: string;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  const idx = path.search(/[:@]/);
  if (idx < 0) return "";
  const object = path.slice(idx);
  return object.startsWith(":") ? object.slice(1) : object;
}

/** Go net/url host validation (port must be digits; no characters that need escaping). */
function validUrlHost(host: string): boolean {
  let name = host;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end < 0) return false;
    const port = host.slice(end + 1);
    if (port !== "" && !/^:\d*$/.test(port)) return false;
    name = host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0) {
      if (!/^:\d*$/.test(host.slice(colon))) return false;
      name = host.slice(0, colon);
    }
  }
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x80) continue;
    const ch = name[i]!;
    if (/[A-Za-z0-9]/.test(ch)) continue;
    if ("-_.~!$&'()*+,;=:[]<>\"%".includes(ch)) continue;
    return false;
  }
  if (name.includes("%")) {
    try {
      decodeURIComponent(name);
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Adds `desc` to `idx` under `name` (none: appended untagged). Entries with
 * the same ref name and image name are removed first. `desc` is not modified.
 */
export function insertDescriptor(idx: OciIndex, desc: Descriptor, name?: NameOrTag): void {
  const d: Descriptor = { ...desc };
  if (desc.annotations) d.annotations = { ...desc.annotations };
  if (name) {
    d.annotations ??= {};
    const imgName = name.kind === "tag" ? "" : name.value;
    const refName = name.kind === "tag" ? name.value : ociReferenceName(name.value);
    if (imgName !== "") d.annotations[ANNOTATION_IMAGE_NAME] = imgName;
    d.annotations[ANNOTATION_REF_NAME] = refName;
    idx.manifests = idx.manifests.filter((m) =>
      (m.annotations?.[ANNOTATION_REF_NAME] ?? "") !== refName ||
      (m.annotations?.[ANNOTATION_IMAGE_NAME] ?? "") !== imgName
    );
  }
  idx.manifests.push(d);
}

/** The entry tagged `tag`: by image name first, then by OCI ref name (as upstream's `Get`). */
export function findTagged(idx: OciIndex, tag: string): Descriptor | undefined {
  return idx.manifests.find((m) => m.annotations?.[ANNOTATION_IMAGE_NAME] === tag) ??
    idx.manifests.find((m) => m.annotations?.[ANNOTATION_REF_NAME] === tag);
}

// ---------------------------------------------------------------------------------------------
// Files

/** Paths of a layout's index, lock and version files. */
export function layoutPaths(dir: string): { index: string; lock: string; layout: string } {
  const index = join(dir, INDEX_FILE);
  return { index, lock: `${index}.lock`, layout: join(dir, LAYOUT_FILE) };
}

/** Runs `fn` holding a flock on `index.json.lock` (removed afterwards, as upstream). */
async function withLock<T>(dir: string, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
  const { lock } = layoutPaths(dir);
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(lock, { read: true, write: true, create: true, mode: 0o644 });
  } catch (err) {
    // Upstream reads without the lock on a read-only or forbidden directory.
    if (
      !exclusive &&
      (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable ||
        (err as { code?: string }).code === "EROFS" ||
        err instanceof Deno.errors.NotFound)
    ) {
      return await fn();
    }
    throw new Error(`could not lock ${lock}: ${describeError(err)}`, { cause: err });
  }
  try {
    await file.lock(exclusive);
    return await fn();
  } finally {
    try {
      await file.unlock();
    } catch { /* closing releases it */ }
    file.close();
    await Deno.remove(lock).catch(() => {});
  }
}

/** The errno text Go would print for a file-system error (without the path). */
export function describeError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.AlreadyExists) return "file exists";
  if (err instanceof Deno.errors.IsADirectory) return "is a directory";
  if (err instanceof Deno.errors.NotADirectory) return "not a directory";
  return err instanceof Error ? err.message : String(err);
}

function goQuote(s: string): string {
  return JSON.stringify(s);
}

/**
 * Reads and decodes `<dir>/index.json`.
 * @throws {Error} "could not read …" or "could not unmarshal …", as upstream.
 */
export async function readIndex(dir: string): Promise<OciIndex> {
  const { index } = layoutPaths(dir);
  return await withLock(dir, false, async () => {
    let text: string;
    try {
      text = await Deno.readTextFile(index);
    } catch (err) {
      throw new Error(`could not read ${index}: ${goOpenError(index, err)}`, { cause: err });
    }
    try {
      return decodeIndex(JSON.parse(text));
    } catch (err) {
      throw new Error(
        `could not unmarshal ${index} (${goQuote(text)}): ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  });
}

/** `open <path>: <errno text>` the way Go prints it. */
export function goOpenError(path: string, err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return `open ${path}: no such file or directory`;
  if (err instanceof Deno.errors.PermissionDenied) return `open ${path}: permission denied`;
  if (err instanceof Deno.errors.IsADirectory) return `read ${path}: is a directory`;
  return `open ${path}: ${err instanceof Error ? err.message : String(err)}`;
}

/** The descriptor tagged `tag` in `<dir>/index.json`, or undefined. @throws {Error} when unreadable. */
export async function getTagged(dir: string, tag: string): Promise<Descriptor | undefined> {
  return findTagged(await readIndex(dir), tag);
}

/** Writes `data` to `path` atomically (temp file in the same directory, then rename). */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, data, { mode, createNew: true });
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/**
 * Records `desc` in `<dir>/index.json` under each of `names` (none: once,
 * untagged), creating the index and `oci-layout` as needed; as upstream's
 * `StoreIndex.Put`, but the index is replaced atomically.
 */
export async function putIndex(
  dir: string,
  desc: Descriptor,
  names: readonly NameOrTag[] = [],
): Promise<void> {
  const { index, layout } = layoutPaths(dir);
  await withLock(dir, true, async () => {
    await writeFileAtomic(layout, '{"imageLayoutVersion":"1.0.0"}', 0o644);
    let text = "";
    let mode = 0o644;
    try {
      text = await Deno.readTextFile(index);
      mode = ((await Deno.stat(index)).mode ?? 0o644) & 0o7777;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new Error(`could not open ${index}: ${describeError(err)}`, { cause: err });
      }
    }
    let idx: OciIndex = { schemaVersion: 0, manifests: [] };
    if (text.length > 0) {
      try {
        idx = decodeIndex(JSON.parse(text));
      } catch (err) {
        throw new Error(
          `could not unmarshal ${index} (${goQuote(text)}): ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    if (idx.schemaVersion === 0) idx.schemaVersion = 2;
    if (!idx.mediaType) idx.mediaType = MEDIA_TYPE_IMAGE_INDEX;
    if (names.length === 0) insertDescriptor(idx, desc);
    for (const n of names) insertDescriptor(idx, desc, n);
    await writeFileAtomic(index, marshalIndex(idx), mode);
  });
}

// ---------------------------------------------------------------------------------------------
// Blobs and pruning

const DIGEST_ALGS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** go-digest `Validate`: undefined when valid, else the error text. */
export function digestError(d: string): string | undefined {
  const i = d.indexOf(":");
  if (i <= 0 || i + 1 === d.length) return "invalid checksum digest format";
  const alg = d.slice(0, i);
  const enc = d.slice(i + 1);
  const size = DIGEST_ALGS[alg];
  if (size === undefined) {
    if (!/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(d)) {
      return "invalid checksum digest format";
    }
    return "unsupported digest algorithm";
  }
  if (enc.length !== size) return "invalid checksum digest length";
  if (!/^[a-f0-9]+$/.test(enc)) return "invalid checksum digest format";
  return undefined;
}

/** Whether `alg` is a digest algorithm this client can verify. */
export function digestAlgorithmAvailable(alg: string): boolean {
  return alg in DIGEST_ALGS;
}

/** `<dir>/blobs/<alg>/<hex>` for a valid digest. @throws {Error} for an invalid one. */
export function blobPath(dir: string, digest: string): string {
  const err = digestError(digest);
  if (err) {
    throw new Error(
      `cannot calculate blob path from invalid digest: ${err}: invalid argument`,
    );
  }
  const i = digest.indexOf(":");
  return join(dir, "blobs", digest.slice(0, i), digest.slice(i + 1));
}

/** Every committed blob in the layout (digest and size), in lexical path order. */
export async function listBlobs(dir: string): Promise<{ digest: string; path: string }[]> {
  const root = join(dir, "blobs");
  const out: { digest: string; path: string }[] = [];
  const algs: string[] = [];
  for await (const e of Deno.readDir(root)) {
    if (e.isDirectory && digestAlgorithmAvailable(e.name)) algs.push(e.name);
  }
  algs.sort();
  for (const alg of algs) {
    const names: string[] = [];
    for await (const e of Deno.readDir(join(root, alg))) {
      if (!e.isDirectory) names.push(e.name);
    }
    names.sort();
    for (const n of names) out.push({ digest: `${alg}:${n}`, path: join(root, alg, n) });
  }
  return out;
}

/** Children of a manifest or index, as containerd's `images.Children`. */
async function children(dir: string, desc: Descriptor): Promise<Descriptor[]> {
  const isManifest = MANIFEST_TYPES.has(desc.mediaType ?? "");
  const isIndex = INDEX_TYPES.has(desc.mediaType ?? "");
  if (!isManifest && !isIndex) return [];
  const path = blobPath(dir, desc.digest);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`blob ${desc.digest} expected at ${path}: ${goOpenError(path, err)}`, {
      cause: err,
    });
  }
  const doc = JSON.parse(text) as Record<string, unknown>;
  if (doc === null || typeof doc !== "object") throw new Error("json: cannot unmarshal document");
  if (Array.isArray(doc["fsLayers"]) && (doc["fsLayers"] as unknown[]).length) {
    throw new Error("media-type: schema 1 not supported");
  }
  const docType = typeof doc["mediaType"] === "string" ? doc["mediaType"] : "";
  const nonEmpty = (k: string) => doc[k] !== undefined && doc[k] !== null;
  if (isManifest) {
    if (
      (Array.isArray(doc["manifests"]) && (doc["manifests"] as unknown[]).length) ||
      INDEX_TYPES.has(docType)
    ) {
      throw new Error(
        `children: invalid desc ${desc.digest}: media-type: expected manifest but found index (${desc.mediaType})`,
      );
    }
    const layers = Array.isArray(doc["layers"]) ? (doc["layers"] as unknown[]) : [];
    return [decodeDescriptor(doc["config"] ?? {}), ...layers.map(decodeDescriptor)];
  }
  if (nonEmpty("config") || nonEmpty("layers") || MANIFEST_TYPES.has(docType)) {
    throw new Error(
      `children: invalid desc ${desc.digest}: media-type: expected index but found manifest (${desc.mediaType})`,
    );
  }
  const manifests = Array.isArray(doc["manifests"]) ? (doc["manifests"] as unknown[]) : [];
  return manifests.map(decodeDescriptor);
}

/** The digests reachable from `<dir>/index.json` (manifests, indexes, configs, layers). */
export async function referencedDigests(dir: string): Promise<Set<string>> {
  let idx: OciIndex;
  try {
    idx = await readIndex(dir);
  } catch (err) {
    throw new Error(`reset: failed to read index.json: ${(err as Error).message}`, { cause: err });
  }
  const seen = new Set<string>();
  const visit = async (d: Descriptor): Promise<void> => {
    seen.add(d.digest);
    const kids = await children(dir, d);
    await Promise.all(kids.map(visit));
  };
  try {
    await Promise.all(idx.manifests.map(visit));
  } catch (err) {
    throw new Error(`reset: failed to collect referenced blobs: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return seen;
}

/** Outcome of {@linkcode pruneUnreferenced}. */
export interface PruneResult {
  /** Digests removed. */
  deleted: string[];
  /** Blobs that could not be removed (upstream warns and goes on). */
  failures: { digest: string; error: string }[];
}

/**
 * Deletes every blob of the layout that `index.json` does not (transitively)
 * reference, as upstream's `resetCacheStore`. Nothing is deleted when the
 * index cannot be read or a referenced manifest is missing or invalid.
 * @throws {Error} "reset: …" in those cases.
 */
export async function pruneUnreferenced(dir: string): Promise<PruneResult> {
  const keep = await referencedDigests(dir);
  let blobs: { digest: string; path: string }[];
  try {
    blobs = await listBlobs(dir);
  } catch (err) {
    throw new Error(
      `reset: failed to walk content store: ${goLstatError(join(dir, "blobs"), err)}`,
      {
        cause: err,
      },
    );
  }
  const result: PruneResult = { deleted: [], failures: [] };
  for (const b of blobs) {
    if (keep.has(b.digest)) continue;
    try {
      await Deno.remove(b.path, { recursive: true });
      result.deleted.push(b.digest);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      result.failures.push({ digest: b.digest, error: describeError(err) });
    }
  }
  return result;
}

function goLstatError(path: string, err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return `lstat ${path}: no such file or directory`;
  return describeError(err);
}
