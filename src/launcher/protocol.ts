/**
 * The launcher's control protocol: one JSON line in, one JSON line out, per
 * connection, over a unix socket whose peer the kernel identifies
 * (SO_PEERCRED). Requests are size-capped and strictly parsed; responses carry
 * a stable `code` on failure and never a stack trace or a private path.
 *
 * Pure: shared by the launcher (server) and buildctl (`src/daemon/launcher_client.ts`).
 *
 * @module
 */
import { parseStrictJson, type StrictJson } from "./strict_json.ts";

/** Largest request line, in bytes (newline included). */
export const MAX_REQUEST_BYTES = 4096;
/** Largest response line, in bytes. */
export const MAX_RESPONSE_BYTES = 2 * 1024 * 1024;
/** Most log bytes one `logs` response carries. */
export const MAX_LOG_BYTES = 1024 * 1024;

/** Operations a granted user may ask for on their control socket. */
export const USER_OPS = ["state", "stop", "reset", "logs"] as const;
/** Operations root may ask for on a daemon's admin socket. */
export const ADMIN_OPS = ["ping", "reload", "stop"] as const;

/** A user operation. */
export type UserOp = typeof USER_OPS[number];
/** An admin operation. */
export type AdminOp = typeof ADMIN_OPS[number];

/** A parsed request. */
export interface ControlRequest {
  /** The operation. */
  op: UserOp | AdminOp;
  /** For `logs`: how many bytes from the end (default and cap {@linkcode MAX_LOG_BYTES}). */
  bytes?: number;
}

/** Failure codes. */
export type ControlErrorCode =
  | "BAD_REQUEST"
  | "NOT_ALLOWED"
  | "PEER_NOT_ALLOWED"
  | "FAILED";

/** What `state` reports. */
export interface DaemonState {
  /** `running` while the supervisor serves requests. */
  state: "running";
  /** The root dir the daemon keeps its state in (`<root>/.buildkit-root`). */
  root: string;
  /** The caller's own granted entitlements. */
  entitlements: string[];
  /** What the daemon was started with (union over the users sharing it). */
  daemonEntitlements: string[];
  /** Number of users sharing this daemon. */
  users: number;
  /** buildkitd's pid. */
  pid: number;
  /** When buildkitd was started (ISO 8601). */
  startedAt: string;
  /** Idle timeout in seconds. */
  idleTimeoutSeconds: number;
  /** Open client connections through the gates. */
  connections: number;
  /** The caller's gate socket path. */
  address: string;
}

/** A response line. */
export type ControlResponse =
  | { ok: true; state?: DaemonState; log?: string; uids?: number[]; message?: string }
  | { ok: false; code: ControlErrorCode; message: string };

/**
 * Parses one request line (without its newline) for the given set of
 * allowed operations.
 *
 * @throws {Error} with a short reason
 */
export function parseRequest(line: string, allowed: readonly string[]): ControlRequest {
  const bytes = new TextEncoder().encode(line);
  if (bytes.length >= MAX_REQUEST_BYTES) throw new Error("request too large");
  const doc: StrictJson = parseStrictJson(bytes, { maxBytes: MAX_REQUEST_BYTES, maxDepth: 1 });
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new Error("request must be an object");
  }
  for (const k of Object.keys(doc)) {
    if (k !== "op" && k !== "bytes") throw new Error(`unknown key ${JSON.stringify(k)}`);
  }
  const op = doc["op"];
  if (typeof op !== "string" || !allowed.includes(op)) {
    throw new Error(`unknown operation ${JSON.stringify(op)}`);
  }
  const req: ControlRequest = { op: op as ControlRequest["op"] };
  if (doc["bytes"] !== undefined) {
    const n = doc["bytes"];
    if (typeof n !== "number" || n < 1 || n > MAX_LOG_BYTES) throw new Error("bad bytes");
    req.bytes = n;
  }
  return req;
}

/** Encodes a response as one line. */
export function encodeResponse(res: ControlResponse): string {
  return JSON.stringify(res) + "\n";
}

/**
 * Decodes a response line (client side).
 *
 * @throws {Error} if it is not a well-formed response
 */
export function decodeResponse(line: string): ControlResponse {
  const doc = JSON.parse(line) as unknown;
  if (
    typeof doc !== "object" || doc === null || typeof (doc as { ok?: unknown }).ok !== "boolean"
  ) {
    throw new Error("malformed launcher response");
  }
  return doc as ControlResponse;
}
