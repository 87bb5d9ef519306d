/**
 * Pure parsers for `buildctl build` flags: `--output`, `--export-cache`,
 * `--import-cache`, `--secret`, `--opt`, `--local`, `--allow`. Each error
 * names the flag and the value.
 *
 * @module
 */

import { usageError } from "../../errors.ts";

/**
 * Splits one CSV record (RFC 4180 as Go's csvvalue reads it: fields
 * separated by commas, double quotes around a field, `""` for a quote).
 */
export function parseCsvFields(record: string, flag: string): string[] {
  const fields: string[] = [];
  let i = 0;
  const n = record.length;
  if (n === 0) return [""];
  for (;;) {
    let field = "";
    if (record[i] === '"') {
      i++;
      for (;;) {
        if (i >= n) throw usageError(`invalid ${flag} "${record}": unterminated quote`);
        const ch = record[i]!;
        if (ch === '"') {
          if (record[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += ch;
        i++;
      }
      if (i < n && record[i] !== ",") {
        throw usageError(`invalid ${flag} "${record}": extraneous text after a quoted field`);
      }
    } else {
      while (i < n && record[i] !== ",") {
        if (record[i] === '"') {
          throw usageError(`invalid ${flag} "${record}": bare quote in a field`);
        }
        field += record[i];
        i++;
      }
    }
    fields.push(field);
    if (i >= n) break;
    i++; // the comma
    if (i === n) {
      fields.push("");
      break;
    }
  }
  return fields;
}

/** `type=…` plus lower-cased attributes, as upstream's CSV flags read them. */
export interface TypedEntry {
  type: string;
  attrs: Record<string, string>;
}

function parseTypedCsv(value: string, flag: string): TypedEntry {
  const attrs: Record<string, string> = {};
  let type = "";
  for (const field of parseCsvFields(value, flag)) {
    const eq = field.indexOf("=");
    if (eq < 0) throw usageError(`invalid ${flag} "${value}": "${field}" is not a key=value pair`);
    const key = field.slice(0, eq).toLowerCase();
    const v = field.slice(eq + 1);
    if (key === "type") type = v;
    else attrs[key] = v;
  }
  if (type === "") throw usageError(`invalid ${flag} "${value}": ${flag} requires type=<type>`);
  return { type, attrs };
}

/** Where an exporter's output goes on the client. */
export type OutputTarget =
  | { kind: "none" }
  | { kind: "dir"; path: string }
  | { kind: "file"; path: string }
  | { kind: "stdout" };

/** One `--output`. */
export interface OutputSpec {
  type: string;
  /** Attributes sent to the daemon (`dest` removed when the client handles it). */
  attrs: Record<string, string>;
  target: OutputTarget;
}

/** Exporter types the daemon knows. */
export const EXPORTER_TYPES = ["image", "local", "tar", "oci", "docker", "cacheonly"] as const;

/**
 * Parses one `--output` value into the exporter type, its daemon attributes
 * and the client-side target. Files are not opened here.
 */
export function parseOutput(value: string): OutputSpec {
  const { type, attrs } = parseTypedCsv(value, "--output");
  if ("output" in attrs) {
    throw usageError(
      `invalid --output "${value}": output=${attrs["output"]} is not supported, you meant dest=${
        attrs["output"]
      }?`,
    );
  }
  if (!(EXPORTER_TYPES as readonly string[]).includes(type)) {
    throw usageError(
      `invalid --output "${value}": unknown exporter type "${type}"`,
      `valid types: ${EXPORTER_TYPES.join(", ")}`,
    );
  }
  const dest = attrs["dest"] ?? "";
  let supportsFile = false;
  let supportsDir = false;
  if (type === "local") supportsDir = true;
  else if (type === "tar") supportsFile = true;
  else if (type === "oci" || type === "docker") {
    const tar = parseGoBool(attrs["tar"]) ?? true;
    supportsFile = tar;
    supportsDir = !tar;
  }
  let target: OutputTarget = { kind: "none" };
  if (supportsDir) {
    if (dest === "") {
      throw usageError(
        `invalid --output "${value}": output directory is required for ${type} exporter (dest=DIR)`,
      );
    }
    target = { kind: "dir", path: dest };
  } else if (supportsFile) {
    target = dest === "" || dest === "-" ? { kind: "stdout" } : { kind: "file", path: dest };
  } else if (dest !== "") {
    throw usageError(
      `invalid --output "${value}": output ${dest} is not supported by ${type} exporter`,
    );
  }
  if (
    type === "local" && attrs["mode"] !== undefined && !["copy", "delete"].includes(attrs["mode"]!)
  ) {
    throw usageError(`invalid --output "${value}": mode must be "copy" or "delete"`);
  }
  if (target.kind !== "none") delete attrs["dest"];
  return { type, attrs, target };
}

function parseGoBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}

/** A cache import or export entry. */
export interface CacheEntry {
  type: string;
  attrs: Record<string, string>;
  /** Set when the value used the deprecated bare-ref form. */
  legacy: boolean;
}

/** Cache backends the daemon knows. */
export const CACHE_TYPES = ["inline", "registry", "local", "gha", "s3", "azblob"] as const;

function checkCacheType(flag: string, value: string, type: string): void {
  if (!(CACHE_TYPES as readonly string[]).includes(type)) {
    throw usageError(
      `invalid ${flag} "${value}": unknown cache type "${type}"`,
      `valid types: ${CACHE_TYPES.join(", ")}`,
    );
  }
}

/** Parses one `--export-cache` (adds `mode=min` when absent, as upstream). */
export function parseExportCache(
  value: string,
  env: (k: string) => string | undefined = () => undefined,
): CacheEntry {
  if (!value.includes("type=")) {
    return { type: "registry", attrs: { mode: "min", ref: value }, legacy: true };
  }
  const { type, attrs } = parseTypedCsv(value, "--export-cache");
  checkCacheType("--export-cache", value, type);
  attrs["mode"] ??= "min";
  if (type === "local" && !attrs["dest"]) {
    throw usageError(`invalid --export-cache "${value}": dest=DIR is required for local cache`);
  }
  if (type === "registry" && !attrs["ref"]) {
    throw usageError(`invalid --export-cache "${value}": ref=REF is required for registry cache`);
  }
  return { type, attrs: type === "gha" ? withGithubEnv(attrs, env) : attrs, legacy: false };
}

/** Parses one `--import-cache`. */
export function parseImportCache(
  value: string,
  env: (k: string) => string | undefined = () => undefined,
): CacheEntry {
  if (!value.includes("type=")) return { type: "registry", attrs: { ref: value }, legacy: true };
  const { type, attrs } = parseTypedCsv(value, "--import-cache");
  checkCacheType("--import-cache", value, type);
  if (type === "local" && !attrs["src"]) {
    throw usageError(`invalid --import-cache "${value}": src=DIR is required for local cache`);
  }
  if (type === "registry" && !attrs["ref"]) {
    throw usageError(`invalid --import-cache "${value}": ref=REF is required for registry cache`);
  }
  return { type, attrs: type === "gha" ? withGithubEnv(attrs, env) : attrs, legacy: false };
}

function withGithubEnv(
  attrs: Record<string, string>,
  env: (k: string) => string | undefined,
): Record<string, string> {
  const out = { ...attrs };
  const fill = (key: string, name: string) => {
    const v = env(name);
    if (out[key] === undefined && v) out[key] = v;
  };
  fill("url", "ACTIONS_CACHE_URL");
  fill("url_v2", "ACTIONS_RESULTS_URL");
  fill("token", "ACTIONS_RUNTIME_TOKEN");
  fill("version", "ACTIONS_CACHE_SERVICE_V2");
  return out;
}

/** Where a secret's value comes from. */
export type SecretSource = { id: string; kind: "file"; path: string } | {
  id: string;
  kind: "env";
  name: string;
};

/**
 * Parses one `--secret` (`id=…,src=FILE|env=VAR[,type=file|env]`). With
 * neither src nor env: the environment variable named like the id if it is
 * set, else the file named like the id (upstream's rule).
 */
export function parseSecret(value: string, env: (k: string) => string | undefined): SecretSource {
  let id = "";
  let src = "";
  let envName = "";
  let type = "";
  for (const field of parseCsvFields(value, "--secret")) {
    const eq = field.indexOf("=");
    if (eq < 0) {
      throw usageError(`invalid --secret "${value}": "${field}" must be a key=value pair`);
    }
    const key = field.slice(0, eq).toLowerCase();
    const v = field.slice(eq + 1);
    switch (key) {
      case "type":
        if (v !== "file" && v !== "env") {
          throw usageError(`invalid --secret "${value}": unsupported secret type "${v}"`);
        }
        type = v;
        break;
      case "id":
        id = v;
        break;
      case "src":
      case "source":
        src = v;
        break;
      case "env":
        envName = v;
        break;
      default:
        throw usageError(
          `invalid --secret "${value}": unexpected key "${key}"`,
          "valid keys: id, src, source, env, type",
        );
    }
  }
  if (type === "env" && envName === "") {
    envName = src;
    src = "";
  }
  if (id === "") id = src ? src.split("/").pop()! : envName;
  if (id === "") throw usageError(`invalid --secret "${value}": id=NAME is required`);
  if (src) return { id, kind: "file", path: src };
  if (envName) return { id, kind: "env", name: envName };
  if (env(id) !== undefined) return { id, kind: "env", name: id };
  return { id, kind: "file", path: id };
}

/**
 * Parses `key=value` flags (`--opt`, `--local`) into a map, splitting at the
 * first `=`; a value without `=` is an error naming the flag.
 */
export function parseKeyValues(values: string[], flag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw usageError(`invalid ${flag} "${v}": expected key=value`);
    out.set(v.slice(0, eq), v.slice(eq + 1));
  }
  return out;
}

/** Entitlements the daemon accepts. */
export const ENTITLEMENTS = ["network.host", "security.insecure", "device"] as const;

/** Validates `--allow` values (`device=<name>[,alias=…]` allowed). */
export function parseAllow(values: string[]): string[] {
  for (const v of values) {
    const base = v.split("=")[0]!;
    if (!(ENTITLEMENTS as readonly string[]).includes(base) || (base !== "device" && v !== base)) {
      throw usageError(
        `invalid --allow "${v}": unknown entitlement`,
        `valid entitlements: ${ENTITLEMENTS.join(", ")}`,
      );
    }
  }
  return values;
}
