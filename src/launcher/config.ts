/**
 * The launcher's root-owned grant config: schema, strict parsing, the
 * canonical serialisation written by `sudo buildctl daemon start`, and the
 * pure policy helpers built on it (who is granted what, which daemon serves
 * which root dir, the exact command line that grants an entitlement).
 *
 * Pure: no I/O. Shared by the launcher and by the buildctl-side installer
 * (`src/daemon/grant.ts`), so both read and write exactly one format.
 *
 * @module
 */
import { parseStrictJson, type StrictJson, StrictJsonError } from "./strict_json.ts";

/** The entitlements a grant may list, sorted. Everything else is refused. */
export const VALID_ENTITLEMENTS: readonly string[] = Object.freeze([
  "device",
  "network.host",
  "security.insecure",
]);

/** Largest config file accepted, in bytes. */
export const MAX_CONFIG_BYTES = 64 * 1024;
/** Most grants one config may hold. */
export const MAX_GRANTS = 256;
/** Default idle timeout: the daemon stops after this many seconds without a client. */
export const DEFAULT_IDLE_TIMEOUT_SECONDS = 600;
/** Longest accepted idle timeout (7 days). */
export const MAX_IDLE_TIMEOUT_SECONDS = 7 * 24 * 3600;
/** Highest uid a grant may name: 4294967295 is (uid_t)-1, "unchanged" to setresuid. */
export const MAX_UID = 4294967294;

/** One user's grant. */
export interface Grant {
  /** The user's numeric uid (the only thing identity is matched on). */
  uid: number;
  /** The user name at grant time, for messages and hints only. */
  user: string;
  /** Absolute, normalised root dir; the daemon's state lives in `<root>/.buildkit-root`. */
  root: string;
  /** Granted entitlements, a sorted subset of {@linkcode VALID_ENTITLEMENTS}. */
  entitlements: string[];
  /** Idle timeout of this user's grant, in seconds. */
  idleTimeoutSeconds: number;
}

/** The whole config (version 1). */
export interface LauncherConfig {
  /** Always 1. */
  version: 1;
  /** Absolute path of the installed launcher (what the sudoers rule names). */
  launcher: string;
  /** The launcher's root-owned run directory (sockets live under it). */
  runDir: string;
  /** One entry per user, sorted by uid. */
  grants: Grant[];
}

/** A config that is not exactly valid. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/;
/** Characters allowed in a root dir (no spaces, quotes, globs or control characters). */
const ROOT_CHARS = /^[A-Za-z0-9._@+,:=%\/-]+$/;
/** Characters allowed in install paths (they end up in sudoers and in a shell wrapper). */
const INSTALL_CHARS = /^[A-Za-z0-9._+\/-]+$/;

/** Whether `path` is absolute and normalised: no `//`, `/./`, `/../`, trailing `/`. */
export function isNormalAbsolute(path: string): boolean {
  if (!path.startsWith("/") || path === "/") return false;
  if (path.endsWith("/")) return false;
  return path.slice(1).split("/").every((c) => c !== "" && c !== "." && c !== "..");
}

/**
 * Checks a root dir string.
 *
 * @returns undefined if valid, else the reason
 */
export function rootDirProblem(root: string): string | undefined {
  if (!isNormalAbsolute(root)) {
    return "must be an absolute path without '.', '..', '//' or a trailing '/', and not '/'";
  }
  if (new TextEncoder().encode(root).length > 1024) return "is longer than 1024 bytes";
  if (!ROOT_CHARS.test(root)) {
    return "may contain only letters, digits and . _ @ + , : = % / -";
  }
  return undefined;
}

/**
 * Checks an install path (launcher, run dir, prefix).
 *
 * @returns undefined if valid, else the reason
 */
export function installPathProblem(path: string): string | undefined {
  if (!isNormalAbsolute(path)) return "must be an absolute, normalised path";
  if (path.length > 200) return "is longer than 200 characters";
  if (!INSTALL_CHARS.test(path)) return "may contain only letters, digits and . _ + / -";
  return undefined;
}

/** Whether a user name is acceptable in the config and in messages. */
export function isValidUserName(name: string): boolean {
  return USER_NAME.test(name);
}

/**
 * Parses a comma-separated entitlement list as given to `--entitlements`.
 * Empty input means none.
 *
 * @returns the sorted, de-duplicated list
 * @throws {ConfigError} naming the unknown entry and listing the valid names
 */
export function parseEntitlementList(text: string): string[] {
  const out = new Set<string>();
  for (const raw of text.split(",")) {
    const e = raw.trim();
    if (e === "") continue;
    if (!VALID_ENTITLEMENTS.includes(e)) {
      throw new ConfigError(
        `unknown entitlement ${JSON.stringify(e)}; valid entitlements are: ${
          VALID_ENTITLEMENTS.join(", ")
        }`,
      );
    }
    out.add(e);
  }
  return [...out].sort();
}

/**
 * Parses a duration: Go style (`90s`, `10m`, `1h30m`, `2h`) or plain seconds.
 *
 * @returns whole seconds, 1 ≤ n ≤ {@linkcode MAX_IDLE_TIMEOUT_SECONDS}
 * @throws {ConfigError} on anything else
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  let seconds: number;
  if (/^\d{1,7}$/.test(t)) {
    seconds = Number(t);
  } else {
    const m = /^(?:(\d{1,4})h)?(?:(\d{1,6})m)?(?:(\d{1,7})s)?$/.exec(t);
    if (!m || t === "") {
      throw new ConfigError(
        `invalid duration ${JSON.stringify(text)}: use e.g. 90s, 10m, 1h30m or a number of seconds`,
      );
    }
    seconds = Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
  }
  if (seconds < 1 || seconds > MAX_IDLE_TIMEOUT_SECONDS) {
    throw new ConfigError(
      `invalid duration ${JSON.stringify(text)}: must be between 1s and ${
        formatDuration(MAX_IDLE_TIMEOUT_SECONDS)
      }`,
    );
  }
  return seconds;
}

/** Formats seconds the way {@linkcode parseDuration} reads them back (`1h30m`, `90s` → `1m30s`). */
export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s || (!h && !m) ? `${s}s` : ""}`;
}

// --- parsing ---------------------------------------------------------------------

type Obj = { [key: string]: StrictJson };

function isObj(v: StrictJson | undefined): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function exactKeys(o: Obj, keys: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!keys.includes(k)) throw new ConfigError(`${where}: unknown key ${JSON.stringify(k)}`);
  }
  for (const k of keys) {
    if (!Object.hasOwn(o, k)) throw new ConfigError(`${where}: missing key ${JSON.stringify(k)}`);
  }
}

function str(o: Obj, k: string, where: string): string {
  const v = o[k];
  if (typeof v !== "string") throw new ConfigError(`${where}.${k}: expected a string`);
  return v;
}

function int(o: Obj, k: string, where: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw new ConfigError(`${where}.${k}: expected an integer`);
  }
  return v;
}

/**
 * Parses and validates a config file's bytes. Either the whole policy is
 * returned exactly, or a {@linkcode ConfigError} is thrown: never a partial
 * policy.
 */
export function parseConfig(bytes: Uint8Array): LauncherConfig {
  let doc: StrictJson;
  try {
    doc = parseStrictJson(bytes, { maxBytes: MAX_CONFIG_BYTES, maxDepth: 4 });
  } catch (err) {
    if (err instanceof StrictJsonError) throw new ConfigError(`not strict JSON: ${err.message}`);
    throw err;
  }
  return validateConfig(doc);
}

/** Validates a parsed document against the version 1 schema. */
export function validateConfig(doc: StrictJson): LauncherConfig {
  if (!isObj(doc)) throw new ConfigError("config: expected an object");
  exactKeys(doc, ["version", "launcher", "runDir", "grants"], "config");
  if (doc["version"] !== 1) throw new ConfigError("config.version: must be 1");
  const launcher = str(doc, "launcher", "config");
  const runDir = str(doc, "runDir", "config");
  for (const [k, v] of [["launcher", launcher], ["runDir", runDir]] as const) {
    const problem = installPathProblem(v);
    if (problem) throw new ConfigError(`config.${k}: ${problem}`);
  }
  const list = doc["grants"];
  if (!Array.isArray(list)) throw new ConfigError("config.grants: expected an array");
  if (list.length > MAX_GRANTS) throw new ConfigError(`config.grants: more than ${MAX_GRANTS}`);
  const grants: Grant[] = [];
  const seen = new Set<number>();
  list.forEach((g, i) => {
    const where = `config.grants[${i}]`;
    if (!isObj(g)) throw new ConfigError(`${where}: expected an object`);
    exactKeys(g, ["uid", "user", "root", "entitlements", "idleTimeoutSeconds"], where);
    const uid = int(g, "uid", where);
    if (uid === 0) throw new ConfigError(`${where}.uid: root (uid 0) cannot be granted`);
    if (uid < 1 || uid > MAX_UID) throw new ConfigError(`${where}.uid: out of range`);
    if (seen.has(uid)) throw new ConfigError(`${where}.uid: uid ${uid} is listed twice`);
    seen.add(uid);
    const user = str(g, "user", where);
    if (!isValidUserName(user)) throw new ConfigError(`${where}.user: invalid user name`);
    const root = str(g, "root", where);
    const problem = rootDirProblem(root);
    if (problem) throw new ConfigError(`${where}.root: ${problem}`);
    const ents = g["entitlements"];
    if (!Array.isArray(ents)) throw new ConfigError(`${where}.entitlements: expected an array`);
    const entitlements: string[] = [];
    for (const e of ents) {
      if (typeof e !== "string" || !VALID_ENTITLEMENTS.includes(e)) {
        throw new ConfigError(
          `${where}.entitlements: ${JSON.stringify(e)} is not one of ${
            VALID_ENTITLEMENTS.join(", ")
          }`,
        );
      }
      if (entitlements.includes(e)) {
        throw new ConfigError(`${where}.entitlements: ${e} is listed twice`);
      }
      entitlements.push(e);
    }
    const idle = int(g, "idleTimeoutSeconds", where);
    if (idle < 1 || idle > MAX_IDLE_TIMEOUT_SECONDS) {
      throw new ConfigError(`${where}.idleTimeoutSeconds: out of range`);
    }
    grants.push({ uid, user, root, entitlements: entitlements.sort(), idleTimeoutSeconds: idle });
  });
  return { version: 1, launcher, runDir, grants: grants.sort((a, b) => a.uid - b.uid) };
}

/** The canonical text of a config (what the installer writes). */
export function serializeConfig(config: LauncherConfig): string {
  const doc = {
    version: 1,
    launcher: config.launcher,
    runDir: config.runDir,
    grants: [...config.grants].sort((a, b) => a.uid - b.uid).map((g) => ({
      uid: g.uid,
      user: g.user,
      root: g.root,
      entitlements: [...g.entitlements].sort(),
      idleTimeoutSeconds: g.idleTimeoutSeconds,
    })),
  };
  const text = JSON.stringify(doc, null, 2) + "\n";
  // Round-trip: never write something the launcher would refuse.
  validateConfig(parseStrictJson(new TextEncoder().encode(text), {
    maxBytes: MAX_CONFIG_BYTES,
    maxDepth: 4,
  }));
  return text;
}

// --- policy helpers ------------------------------------------------------------------

/** Adds or replaces the grant of `grant.uid` (one entry per user). */
export function upsertGrant(config: LauncherConfig, grant: Grant): LauncherConfig {
  const grants = config.grants.filter((g) => g.uid !== grant.uid);
  grants.push({ ...grant, entitlements: [...grant.entitlements].sort() });
  return { ...config, grants: grants.sort((a, b) => a.uid - b.uid) };
}

/** Removes the grant of `uid`; returns the new config and the removed grant. */
export function removeGrant(
  config: LauncherConfig,
  uid: number,
): { config: LauncherConfig; removed: Grant | undefined } {
  const removed = config.grants.find((g) => g.uid === uid);
  return { config: { ...config, grants: config.grants.filter((g) => g.uid !== uid) }, removed };
}

/** The grant of exactly this uid (exact numeric match), if any. uid 0 never has one. */
export function findGrant(config: LauncherConfig, uid: number): Grant | undefined {
  if (!Number.isSafeInteger(uid) || uid <= 0) return undefined;
  return config.grants.find((g) => g.uid === uid);
}

/** All grants served by the daemon of `root`. */
export function grantsForRoot(config: LauncherConfig, root: string): Grant[] {
  return config.grants.filter((g) => g.root === root);
}

/** The entitlements a shared daemon must allow: the union over its grants, sorted. */
export function unionEntitlements(grants: readonly Grant[]): string[] {
  return [...new Set(grants.flatMap((g) => g.entitlements))].sort();
}

/** The daemon's longest idle timeout among the grants it serves. */
export function idleTimeoutFor(grants: readonly Grant[]): number {
  return grants.reduce((max, g) => Math.max(max, g.idleTimeoutSeconds), 0) ||
    DEFAULT_IDLE_TIMEOUT_SECONDS;
}

/**
 * A stable id for a root dir (names its run directory and logs): 16 hex
 * digits of SHA-256 over the path.
 */
export async function rootId(root: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(root));
  return [...new Uint8Array(digest).slice(0, 8)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * The exact admin command that (re)grants `user` the root dir and the
 * entitlements given: the line shown to a user who lacks a grant or an
 * entitlement.
 */
export function grantCommand(
  user: string,
  root: string,
  entitlements: readonly string[],
  idleTimeoutSeconds?: number,
): string {
  const parts = ["sudo buildctl daemon start", `--root=${root}`, `--allow-user=${user}`];
  const ents = [...new Set(entitlements)].sort();
  if (ents.length > 0) parts.push(`--entitlements=${ents.join(",")}`);
  if (idleTimeoutSeconds !== undefined && idleTimeoutSeconds !== DEFAULT_IDLE_TIMEOUT_SECONDS) {
    parts.push(`--timeout=${formatDuration(idleTimeoutSeconds)}`);
  }
  return parts.join(" ");
}

/**
 * The line a gatekeeper appends to a refused Solve: the command that grants
 * this user the missing entitlements on top of the current grant, or
 * undefined when some missing entitlement can never be granted.
 */
export function entitlementHint(grant: Grant, missing: readonly string[]): string | undefined {
  const bases = missing.map((e) => {
    const eq = e.indexOf("=");
    return eq < 0 ? e : e.slice(0, eq);
  });
  if (!bases.every((b) => VALID_ENTITLEMENTS.includes(b))) return undefined;
  const cmd = grantCommand(
    grant.user,
    grant.root,
    [...grant.entitlements, ...bases],
    grant.idleTimeoutSeconds,
  );
  return `an administrator can grant it with: ${cmd}`;
}
