/**
 * The BuildKit session: the `Control/Session` tunnel with our gRPC server
 * inside it, serving health, file sync (both directions), secrets and auth
 * to the daemon (protocol doc §2–§4).
 *
 * @module
 */

import type { BuildkitClient } from "../client/mod.ts";
import { after } from "../timer.ts";
import { BuildctlError } from "../errors.ts";
import { type Handler, serveGrpc } from "./grpc_server.ts";
import { openTunnel, tunnelEnvelope } from "./tunnel.ts";
import type { SenderOptions, SenderStats } from "./filesync_send.ts";
import type { ExporterTarget } from "./filesync_receive.ts";
import type { SecretSource } from "./secrets.ts";
import type { AuthOptions } from "./auth.ts";

export type {
  ExporterTarget,
  LocalExporterTarget,
  StreamExporterTarget,
} from "./filesync_receive.ts";
export type { SecretSource } from "./secrets.ts";
export type { AuthOptions } from "./auth.ts";
export type { SenderOptions, SenderStats } from "./filesync_send.ts";

export type { Handler, ServerCall } from "./grpc_server.ts";

/**
 * Method paths we serve (exact, as advertised to the daemon). The Auth
 * token-authority methods are not served: the daemon gets UNIMPLEMENTED and
 * fetches registry tokens itself with the credentials.
 */
export const Methods = {
  healthCheck: "/grpc.health.v1.Health/Check",
  fileSyncDiffCopy: "/moby.filesync.v1.FileSync/DiffCopy",
  fileSendDiffCopy: "/moby.filesync.v1.FileSend/DiffCopy",
  getSecret: "/moby.buildkit.secrets.v1.Secrets/GetSecret",
  authCredentials: "/moby.filesync.v1.Auth/Credentials",
} as const;

/** What the session offers the daemon. */
export interface SessionOptions {
  /** `--local` dirs: name → absolute directory. FileSync is exposed only when non-empty. */
  localDirs?: ReadonlyMap<string, string>;
  /** Export targets indexed by exporter id (= index in `SolveRequest.Exporters`); holes allowed. */
  exporters?: ReadonlyArray<ExporterTarget | undefined>;
  /** `--secret` sources by id. The Secrets service is always exposed (unknown id → NOT_FOUND). */
  secrets?: ReadonlyMap<string, SecretSource>;
  /** Registry credentials (docker config). Default: read `$DOCKER_CONFIG/config.json` lazily; `false` disables. */
  auth?: AuthOptions | false;
  /** Shared key sent in the session header (upstream buildctl: empty). */
  sharedKey?: string;
  /** Aborting it tears the session down at once (no graceful half-close). */
  signal?: AbortSignal;
  /**
   * More gRPC methods to serve, by full path (e.g. the content store's
   * `/containerd.services.content.v1.Content/*`). They are advertised like
   * the built-in ones and may not replace them.
   */
  services?: ReadonlyMap<string, Handler>;
  /** Content stores (`local:<dir>` for local cache, `export` for oci/docker dirs) → OCI layout dir. */
  contentStores?: ReadonlyMap<string, string>;
  /** Tuning and test hooks of the file-sync sender (chunk size, concurrency, path recording, fs errors). */
  sender?: SenderOptions;
  /**
   * Asks the daemon to health-check the session every this many ms (≥1000)
   * and to drop it after one miss (`x-buildkit-session-health-custom-timeout`,
   * meant for tests). Default: the daemon's 5 s interval, 2 misses.
   */
  healthCheckTimeoutMs?: number;
}

/** A running session. */
export interface Session {
  /** The session id: put it in `SolveRequest.Session`. */
  readonly id: string;
  /** Per local dir name: what the file-sync sender transferred (for tests and debug output). */
  readonly stats: ReadonlyMap<string, SenderStats>;
  /**
   * Half-closes the tunnel and waits (bounded) until the daemon ends it;
   * then tears everything down. Idempotent.
   */
  close(): Promise<void>;
  /** Settles when the session has ended, for whatever reason. Never rejects. */
  readonly closed: Promise<void>;
  /**
   * Loads the code of the served methods now. Each method's module is
   * otherwise imported on its first call; a build calls this once its
   * Solve is on the way, so that the loading overlaps the daemon's work
   * instead of delaying the request. Never rejects.
   */
  preload(): Promise<void>;
}

/** A 25-character base36 random id, like upstream `identity.NewID`. */
export function newSessionId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n.toString(36).padStart(25, "0");
}

const HEALTH_SERVING = new Uint8Array([0x08, 0x01]);
/** How long `close()` waits for the daemon to end the tunnel after our half-close. */
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * Opens the session tunnel on `client` and starts serving. Resolves once the
 * call is started: the daemon registers the session when the call arrives,
 * so `Solve` (with `Session: session.id`) may be sent right away.
 *
 * @throws {BuildctlError} when the tunnel cannot be opened.
 */
export async function startSession(
  client: BuildkitClient,
  opts: SessionOptions = {},
): Promise<Session> {
  const id = newSessionId();
  const handlers = new Map<string, Handler>();
  const loaders: (() => Promise<unknown>)[] = [];
  /** A method whose module is imported on its first call or by `preload()`. */
  const deferred = (path: string, load: () => Promise<Handler>) => {
    let loading: Promise<Handler> | undefined;
    const ready = () => loading ??= load();
    loaders.push(ready);
    handlers.set(path, async (call) => (await ready())(call));
  };
  handlers.set(Methods.healthCheck, async (call) => {
    await call.recv();
    await call.send(HEALTH_SERVING);
  });

  const stats = new Map<string, SenderStats>();
  if (opts.localDirs && opts.localDirs.size > 0) {
    const dirs = opts.localDirs;
    deferred(
      Methods.fileSyncDiffCopy,
      async () => (await import("./filesync_send.ts")).fileSyncHandler(dirs, stats, opts.sender),
    );
  }
  if (opts.exporters && opts.exporters.some((e) => e !== undefined)) {
    const exporters = opts.exporters;
    deferred(
      Methods.fileSendDiffCopy,
      async () => (await import("./filesync_receive.ts")).fileSendHandler(exporters),
    );
  }
  const secrets = opts.secrets ?? new Map();
  deferred(
    Methods.getSecret,
    async () => (await import("./secrets.ts")).secretsHandler(secrets),
  );
  const auth = opts.auth;
  if (auth !== false) {
    deferred(
      Methods.authCredentials,
      async () => (await import("./auth.ts")).credentialsHandler(auth ?? {}),
    );
  }
  for (const [path, h] of opts.services ?? []) {
    if (handlers.has(path)) {
      throw new BuildctlError(`session method ${path} is served twice`);
    }
    handlers.set(path, h);
  }

  const md: [string, string][] = [
    ["x-docker-expose-session-uuid", id],
    ["x-docker-expose-session-sharedkey", opts.sharedKey ?? ""],
  ];
  if (opts.contentStores && opts.contentStores.size > 0) {
    // Loaded only when needed: it brings node:crypto, costly at start-up.
    const { contentStoreHandlers } = await import("./content_store.ts");
    for (const [path, h] of contentStoreHandlers(opts.contentStores)) handlers.set(path, h);
  }
  // One header field per method: the daemon does not split values on commas.
  for (const path of handlers.keys()) md.push(["x-docker-expose-session-grpc-method", path]);
  if (opts.healthCheckTimeoutMs !== undefined) {
    md.push([
      "x-buildkit-session-health-custom-timeout",
      String(Math.round(opts.healthCheckTimeoutMs)),
    ]);
  }

  let tunnel: ReturnType<typeof openTunnel>;
  try {
    tunnel = openTunnel(client, md);
  } catch (err) {
    throw new BuildctlError(`cannot open the session: ${(err as Error).message}`, { cause: err });
  }
  const conn = serveGrpc(tunnel.duplex, handlers, { h2: { envelope: tunnelEnvelope } });

  const closed = Promise.race([conn.closed, tunnel.ended.then(() => {})]).then(() => {
    conn.close();
  });

  const teardown = () => {
    conn.close();
    tunnel.call.cancel();
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      // Half-close our side of the tunnel, then wait (bounded) for the daemon to end it.
      tunnel.duplex.end();
      let cancelTimer: (() => void) | undefined;
      await Promise.race([
        tunnel.ended,
        new Promise<void>((r) => cancelTimer = after(CLOSE_TIMEOUT_MS, r)),
      ]);
      cancelTimer?.();
      teardown();
      await closed;
    })();
    return closing;
  };
  if (opts.signal) {
    if (opts.signal.aborted) teardown();
    else opts.signal.addEventListener("abort", teardown, { once: true });
    closed.then(() => opts.signal?.removeEventListener("abort", teardown));
  }

  const preload = () => Promise.all(loaders.map((load) => load())).then(() => {}, () => {});
  return { id, stats, close, closed, preload };
}
