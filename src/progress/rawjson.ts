/**
 * `--progress=rawjson`: each update as one line of JSON, byte-compatible
 * with Go's `json.Encoder` applied to buildkit's `client.SolveStatus`
 * (same keys, omitempty rules, RFC 3339 nano times, base64 bytes, HTML-safe
 * escaping).
 *
 * @module
 */

import { timeNs } from "./model.ts";
import type {
  Position,
  Range,
  StatusResponse,
  TimeLike,
  Vertex,
  VertexLog,
  VertexStatus,
  VertexWarning,
} from "./model.ts";

/** A JSON object under construction: keys in order, values already encoded. */
class Obj {
  #parts: string[] = [];

  /** Adds `key` with an encoded value. */
  set(key: string, encoded: string): this {
    this.#parts.push(`${goString(key)}:${encoded}`);
    return this;
  }

  /** Adds `key` unless `encoded` is undefined (omitempty). */
  opt(key: string, encoded: string | undefined): this {
    if (encoded !== undefined) this.set(key, encoded);
    return this;
  }

  toString(): string {
    return `{${this.#parts.join(",")}}`;
  }
}

/** Encodes a string as Go's encoding/json does (HTML-safe, U+2028/9 escaped). */
export function goString(s: string): string {
  const wellFormed = s.replace(
    /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    "\ufffd",
  );
  return JSON.stringify(wellFormed).replace(
    /[<>&\u2028\u2029]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"),
  );
}

/** Base64 (standard alphabet, padded) of `b`. */
export function base64(b: Uint8Array): string {
  let bin = "";
  const step = 0x8000;
  for (let i = 0; i < b.length; i += step) {
    bin += String.fromCharCode(...b.subarray(i, i + step));
  }
  return btoa(bin);
}

/** Formats a time as Go's `time.Time` JSON (RFC 3339, nanoseconds, fraction trimmed, UTC `Z`). */
export function rfc3339Nano(t: TimeLike): string {
  const ns = timeNs(t) ?? 0n;
  let sec = ns / 1_000_000_000n;
  let frac = ns - sec * 1_000_000_000n;
  if (frac < 0n) {
    sec -= 1n;
    frac += 1_000_000_000n;
  }
  const d = new Date(Number(sec) * 1000);
  if (!Number.isFinite(d.getTime())) return "0001-01-01T00:00:00Z";
  const y = d.getUTCFullYear();
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const year = y < 0 ? "-" + pad(-y, 4) : pad(y, 4);
  let out = `${year}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  if (frac !== 0n) out += "." + frac.toString().padStart(9, "0").replace(/0+$/, "");
  return out + "Z";
}

function time(t: TimeLike | undefined): string | undefined {
  return timeNs(t) === undefined ? undefined : goString(rfc3339Nano(t!));
}

function requiredTime(t: TimeLike | undefined): string {
  return goString(rfc3339Nano(timeNs(t) === undefined ? new Date(0) : t!));
}

function str(s: string | undefined): string | undefined {
  return typeof s === "string" && s !== "" ? goString(s) : undefined;
}

function int(n: unknown): string | undefined {
  if (typeof n === "bigint") return n === 0n ? undefined : n.toString();
  if (typeof n === "number" && Number.isFinite(n)) {
    return n === 0 ? undefined : String(Math.trunc(n));
  }
  return undefined;
}

function bool(b: unknown): string | undefined {
  return b ? "true" : undefined;
}

function bytesOpt(b: unknown): string | undefined {
  return b instanceof Uint8Array && b.length > 0 ? goString(base64(b)) : undefined;
}

// A []byte that is always present: nil (empty) encodes as null.
function bytesReq(b: unknown): string {
  return b instanceof Uint8Array && b.length > 0 ? goString(base64(b)) : "null";
}

function arr<T>(items: readonly T[] | undefined, enc: (t: T) => string): string | undefined {
  if (!Array.isArray(items) || items.length === 0) return undefined;
  return `[${items.map(enc).join(",")}]`;
}

function map<T>(
  m: Record<string, T> | undefined,
  enc: (t: T) => string,
): string | undefined {
  if (m === null || typeof m !== "object") return undefined;
  const keys = Object.keys(m).sort();
  if (keys.length === 0) return undefined;
  return `{${keys.map((k) => `${goString(k)}:${enc(m[k]!)}`).join(",")}}`;
}

function position(p: Position | undefined): string | undefined {
  if (!p) return undefined;
  return new Obj().opt("line", int(p.line)).opt("character", int(p.character)).toString();
}

function range(r: Range | undefined): string {
  if (!r) return "null";
  return new Obj().opt("start", position(r.start)).opt("end", position(r.end)).toString();
}

function progressGroup(pg: Vertex["progressGroup"]): string | undefined {
  if (!pg) return undefined;
  return new Obj().opt("id", str(pg.id)).opt("name", str(pg.name)).opt("weak", bool(pg.weak))
    .toString();
}

// --- pb.Definition (only reachable through a warning's source info) ---

interface DefinitionLike {
  def?: Uint8Array[];
  metadata?: Record<string, Record<string, unknown>>;
  Source?: { locations?: Record<string, { locations?: LocationLike[] }>; infos?: InfoLike[] };
}
interface LocationLike {
  sourceIndex?: number;
  ranges?: Range[];
}
interface InfoLike {
  filename?: string;
  data?: Uint8Array;
  definition?: DefinitionLike;
  language?: string;
}

function sourceInfo(info: InfoLike | undefined | null): string | undefined {
  if (!info) return undefined;
  return new Obj()
    .opt("filename", str(info.filename))
    .opt("data", bytesOpt(info.data))
    .opt("definition", definition(info.definition))
    .opt("language", str(info.language))
    .toString();
}

function opMetadata(m: Record<string, unknown> | undefined): string {
  if (!m) return "null";
  const ec = m.exportCache as { Value?: boolean } | undefined;
  const lr = m.linuxResources as Record<string, unknown> | undefined;
  const pg = m.progressGroup as Vertex["progressGroup"];
  return new Obj()
    .opt("ignore_cache", bool(m.ignoreCache))
    .opt("description", map(m.description as Record<string, string>, goString))
    .opt("export_cache", ec ? new Obj().opt("Value", bool(ec.Value)).toString() : undefined)
    .opt("caps", map(m.caps as Record<string, boolean>, (b) => (b ? "true" : "false")))
    .opt("progress_group", progressGroup(pg))
    .opt(
      "linux_resources",
      lr
        ? new Obj()
          .opt("memory", int(lr.memory))
          .opt("memorySwap", int(lr.memorySwap))
          .opt("cpuShares", int(lr.cpuShares))
          .opt("cpuPeriod", int(lr.cpuPeriod))
          .opt("cpuQuota", int(lr.cpuQuota))
          .opt("cpusetCpus", str(lr.cpusetCpus as string))
          .opt("cpusetMems", str(lr.cpusetMems as string))
          .toString()
        : undefined,
    )
    .toString();
}

function definition(d: DefinitionLike | undefined): string | undefined {
  if (!d) return undefined;
  const src = d.Source;
  return new Obj()
    .opt("def", arr(d.def, bytesReq))
    .opt("metadata", map(d.metadata, opMetadata))
    .opt(
      "Source",
      src
        ? new Obj()
          .opt(
            "locations",
            map(src.locations, (ls) =>
              new Obj().opt(
                "locations",
                arr(ls?.locations, (l) =>
                  new Obj()
                    .opt("sourceIndex", int(l.sourceIndex))
                    .opt("ranges", arr(l.ranges, range))
                    .toString()),
              ).toString()),
          )
          .opt("infos", arr(src.infos, (i) => sourceInfo(i) ?? "null"))
          .toString()
        : undefined,
    )
    .toString();
}

// --- client.SolveStatus ---

function vertex(v: Vertex): string {
  return new Obj()
    .opt("digest", str(v.digest))
    .opt("inputs", arr(v.inputs, goString))
    .opt("name", str(v.name))
    .opt("started", time(v.started))
    .opt("completed", time(v.completed))
    .opt("cached", bool(v.cached))
    .opt("error", str(v.error))
    .opt("progressGroup", progressGroup(v.progressGroup))
    .toString();
}

function status(s: VertexStatus): string {
  return new Obj()
    .set("id", goString(s.ID ?? ""))
    .opt("vertex", str(s.vertex))
    .opt("name", str(s.name))
    .opt("total", int(s.total))
    .set("current", int(s.current) ?? "0")
    .set("timestamp", requiredTime(s.timestamp))
    .opt("started", time(s.started))
    .opt("completed", time(s.completed))
    .toString();
}

function log(l: VertexLog): string {
  return new Obj()
    .opt("vertex", str(l.vertex))
    .opt("stream", int(l.stream))
    .set("data", bytesReq(l.msg))
    .set("timestamp", requiredTime(l.timestamp))
    .toString();
}

function warning(w: VertexWarning): string {
  return new Obj()
    .opt("vertex", str(w.vertex))
    .opt("level", int(w.level))
    .opt("short", bytesOpt(w.short))
    .opt("detail", arr(w.detail, bytesReq))
    .opt("url", str(w.url))
    .opt("sourceInfo", sourceInfo(w.info as InfoLike | undefined))
    .opt("range", arr(w.ranges, range))
    .toString();
}

/**
 * Encodes one update as upstream's rawjson line (without the trailing
 * newline).
 *
 * @example Usage
 * ```ts
 * import { encodeSolveStatus } from "./rawjson.ts";
 * encodeSolveStatus({ vertexes: [], statuses: [], logs: [], warnings: [] }); // "{}"
 * ```
 */
export function encodeSolveStatus(s: Partial<StatusResponse>): string {
  return new Obj()
    .opt("vertexes", arr(s.vertexes, vertex))
    .opt("statuses", arr(s.statuses, status))
    .opt("logs", arr(s.logs, log))
    .opt("warnings", arr(s.warnings, warning))
    .toString();
}
