/**
 * The gatekeeper: a per-user public unix socket in front of a private
 * buildkitd socket. Each connection's peer is identified by the kernel
 * (SO_PEERCRED), checked against a policy, and then proxied at the HTTP/2
 * (gRPC) level: only an allow-list of methods passes, and a `Control/Solve`
 * asking for an entitlement outside the user's grant is answered with
 * PERMISSION_DENIED and never reaches the daemon.
 *
 * Imports only `node:` built-ins, `src/sys/` and its own pure modules (the
 * launcher may not load npm code).
 *
 * @module
 */
import http2 from "node:http2";
import type net from "node:net";
import {
  closeFd,
  connectUnix,
  listenUnix,
  type PeerCred,
  socketFromFd,
  type UnixListener,
} from "../sys/mod.ts";
import {
  encodeGrpcMessage,
  parseGrpcFrames,
  readRepeatedString,
  WireFormatError,
} from "./grpc_frames.ts";

/** gRPC status codes the gatekeeper produces. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** The Control Solve method, whose request the gatekeeper inspects. */
export const SOLVE_METHOD = "/moby.buildkit.v1.Control/Solve";

/** Field number of `repeated string Entitlements` in `moby.buildkit.v1.SolveRequest`. */
export const SOLVE_ENTITLEMENTS_FIELD = 9;

/** Methods forwarded by exact path. */
export const ALLOWED_METHODS: readonly string[] = Object.freeze([
  "/moby.buildkit.v1.Control/DiskUsage",
  "/moby.buildkit.v1.Control/Prune",
  SOLVE_METHOD,
  "/moby.buildkit.v1.Control/Status",
  "/moby.buildkit.v1.Control/Session",
  "/moby.buildkit.v1.Control/ListWorkers",
  "/moby.buildkit.v1.Control/Info",
  "/grpc.health.v1.Health/Check",
]);

/** Services all of whose methods are forwarded (upstream `buildctl build` uses the gateway bridge). */
export const ALLOWED_SERVICES: readonly string[] = Object.freeze([
  "/moby.buildkit.v1.frontend.LLBBridge/",
]);

const METHOD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Whether a gRPC `:path` may pass the gate. Matching is exact and
 * case-sensitive; for an allowed service the method part must be a plain
 * identifier (no further "/", no query, no dots).
 */
export function isAllowedMethod(path: string): boolean {
  if (ALLOWED_METHODS.includes(path)) return true;
  for (const service of ALLOWED_SERVICES) {
    if (path.startsWith(service) && METHOD_NAME.test(path.slice(service.length))) return true;
  }
  return false;
}

/** The entitlement name a request string stands for: `device=gpu0,alias=x` → `device`. */
export function entitlementBase(entitlement: string): string {
  const eq = entitlement.indexOf("=");
  return eq < 0 ? entitlement : entitlement.slice(0, eq);
}

/**
 * The requested entitlements the grant does not cover. A request is covered
 * when the grant lists it exactly or lists its base name (a grant of `device`
 * covers `device=gpu0`; a grant of `device=gpu0` covers only that string).
 */
export function missingEntitlements(
  requested: readonly string[],
  granted: readonly string[],
): string[] {
  const grant = new Set(granted);
  const missing: string[] = [];
  for (const e of requested) {
    if (grant.has(e) || grant.has(entitlementBase(e))) continue;
    if (!missing.includes(e)) missing.push(e);
  }
  return missing;
}

/** What the policy says about one uid. */
export interface PolicyDecision {
  /** May this uid use the daemon at all? */
  allowed: boolean;
  /** Entitlements the uid may request (`network.host`, `security.insecure`, `device`, `device=<name>`). */
  entitlements: readonly string[];
}

/** Looks up a uid (as reported by SO_PEERCRED). uid 0 gets only what the policy returns. */
export type Policy = (uid: number) => PolicyDecision | Promise<PolicyDecision>;

/** One audit event. */
export interface AuditRecord {
  /** ISO 8601 time. */
  time: string;
  /** `connect`: a connection was accepted or refused; `request`: a method call; `solve`: a Solve was checked. */
  event: "connect" | "request" | "solve";
  /** Peer uid (SO_PEERCRED). */
  uid: number;
  /** Peer gid (SO_PEERCRED). */
  gid: number;
  /** Peer pid (SO_PEERCRED; 0 if in another pid namespace). */
  pid: number;
  /** gRPC method path (requests and solves). */
  method?: string;
  /** Entitlements requested (solves). */
  entitlements?: string[];
  /** What the gate did. */
  decision: "allow" | "deny";
  /** Why a request was denied. */
  reason?: string;
}

/** Serialises an audit record as one JSON line (with the trailing newline). */
export function formatAuditLine(record: AuditRecord): string {
  return JSON.stringify(record) + "\n";
}

/** Options for {@linkcode startGatekeeper}. */
export interface GatekeeperOptions {
  /** Public socket path; its directory (root-owned, 0755) is the launcher's business. */
  path: string;
  /** Mode of the public socket; default 0o666 (the policy, not the mode, decides). */
  mode?: number;
  /** Replace a stale socket left at `path` (see `listenUnix`); default false. */
  replaceStaleSocket?: boolean;
  /** Path of the daemon's private socket. */
  upstream: string;
  /** Consulted once per connection with the peer's uid. */
  policy: Policy;
  /** Receives every connect decision, every Solve check and every denied request. */
  audit?: (record: AuditRecord) => void;
  /** Also audit allowed non-Solve requests; default false. */
  auditAllRequests?: boolean;
  /**
   * Returns the hint line appended to a denied Solve's message, e.g. the exact
   * `sudo buildctl daemon start …` command that grants `missing`.
   */
  hint?: (uid: number, missing: readonly string[]) => string | undefined;
  /** Largest SolveRequest accepted for inspection; default 16 MiB (the daemon's own limit). */
  maxMessageBytes?: number;
  /** Unexpected errors (accept failures, policy exceptions); default: ignored. */
  onError?: (err: unknown) => void;
}

/** A running gatekeeper. */
export interface Gatekeeper extends AsyncDisposable {
  /** The public socket path. */
  readonly path: string;
  /** Number of open client connections. */
  readonly connections: number;
  /** Stops accepting, closes every connection and resolves when all is released. */
  close(): Promise<void>;
}

/**
 * Starts listening on `options.path` and proxies allowed gRPC calls to
 * `options.upstream`.
 *
 * @throws {SysError} if the public socket cannot be created
 * @example
 * ```ts ignore
 * await using gate = startGatekeeper({
 *   path: "/run/buildkit-launcher/1000/buildkitd.sock",
 *   upstream: "/run/buildkit-launcher/1000/private/buildkitd.sock",
 *   policy: (uid) => ({ allowed: uid === 1000, entitlements: ["network.host"] }),
 *   audit: (r) => log.write(formatAuditLine(r)),
 * });
 * ```
 */
export function startGatekeeper(options: GatekeeperOptions): Gatekeeper {
  const listener = listenUnix(options.path, options.mode ?? 0o666, {
    replaceStaleSocket: options.replaceStaleSocket ?? false,
  });
  return new Gate(listener, options);
}

class Gate implements Gatekeeper {
  readonly path: string;
  #listener: UnixListener;
  #options: GatekeeperOptions;
  #conns = new Set<GateConnection>();
  #pending = new Set<Promise<void>>();
  #loop: Promise<void>;
  #closing = false;

  constructor(listener: UnixListener, options: GatekeeperOptions) {
    this.path = listener.path;
    this.#listener = listener;
    this.#options = options;
    this.#loop = this.#acceptLoop();
  }

  get connections(): number {
    return this.#conns.size;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let accepted;
      try {
        accepted = await this.#listener.accept();
      } catch (err) {
        if (err instanceof Deno.errors.BadResource) return;
        this.#options.onError?.(err);
        await new Promise((resolve) => setTimeout(resolve, 100)); // e.g. EMFILE: back off
        continue;
      }
      const p = this.#admit(accepted.fd, accepted.peer);
      this.#pending.add(p);
      p.finally(() => this.#pending.delete(p));
    }
  }

  async #admit(fd: number, peer: PeerCred): Promise<void> {
    let decision: PolicyDecision = { allowed: false, entitlements: [] };
    let reason: string | undefined;
    try {
      decision = await this.#options.policy(peer.uid);
    } catch (err) {
      reason = "policy error";
      this.#options.onError?.(err);
    }
    if (this.#closing) {
      closeFd(fd);
      return;
    }
    if (!decision.allowed) {
      closeFd(fd);
      this.#audit({
        event: "connect",
        peer,
        decision: "deny",
        reason: reason ?? "uid not allowed by policy",
      });
      return;
    }
    this.#audit({ event: "connect", peer, decision: "allow" });
    const conn = new GateConnection(
      fd,
      peer,
      [...decision.entitlements],
      this.#options,
      (r) => this.#audit(r),
    );
    this.#conns.add(conn);
    conn.closed.then(() => this.#conns.delete(conn));
  }

  #audit(r: Omit<AuditRecord, "time" | "uid" | "gid" | "pid"> & { peer: PeerCred }): void {
    const { peer, ...rest } = r;
    const record: AuditRecord = {
      time: new Date().toISOString(),
      event: rest.event,
      uid: peer.uid,
      gid: peer.gid,
      pid: peer.pid,
      ...(rest.method === undefined ? {} : { method: rest.method }),
      ...(rest.entitlements === undefined ? {} : { entitlements: rest.entitlements }),
      decision: rest.decision,
      ...(rest.reason === undefined ? {} : { reason: rest.reason }),
    };
    try {
      this.#options.audit?.(record);
    } catch (err) {
      this.#options.onError?.(err);
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#listener.close();
    await this.#loop;
    await Promise.all(this.#pending);
    await Promise.all([...this.#conns].map((c) => c.destroy()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

type AuditFn = (r: Omit<AuditRecord, "time" | "uid" | "gid" | "pid"> & { peer: PeerCred }) => void;

const H2_SETTINGS: http2.Settings = { initialWindowSize: 8 << 20, maxFrameSize: 1 << 20 };
const SESSION_WINDOW = 32 << 20;

/** One client connection and its dedicated upstream HTTP/2 session. */
class GateConnection {
  readonly closed: Promise<void>;
  #socket: net.Socket;
  #peer: PeerCred;
  #granted: readonly string[];
  #options: GatekeeperOptions;
  #audit: AuditFn;
  #upstream: Promise<http2.ClientHttp2Session> | undefined;
  #upstreamSession: http2.ClientHttp2Session | undefined;

  constructor(
    fd: number,
    peer: PeerCred,
    granted: string[],
    options: GatekeeperOptions,
    audit: AuditFn,
  ) {
    this.#peer = peer;
    this.#granted = granted;
    this.#options = options;
    this.#audit = audit;
    this.#socket = socketFromFd(fd);
    this.closed = new Promise((resolve) => this.#socket.once("close", () => resolve()));
    this.#socket.on("error", () => this.#socket.destroy());
    // HTTP/2 clients never half-close: EOF means the client is gone (its process may have exited
    // without a GOAWAY). The socket is half-open (allowHalfOpen), so without this the connection,
    // its upstream session and the idle accounting would stay alive forever.
    this.#socket.on("end", () => this.#socket.destroy());
    this.closed.then(() => this.#upstreamSession?.destroy());

    const server = http2.createServer({ settings: H2_SETTINGS });
    server.on("session", (session: http2.ServerHttp2Session) => {
      session.on("error", () => {});
      try {
        session.setLocalWindowSize(SESSION_WINDOW);
      } catch { /* not supported: keep the default window */ }
    });
    server.on("sessionError", () => this.#socket.destroy());
    server.on(
      "stream",
      (
        stream: http2.ServerHttp2Stream,
        headers: http2.IncomingHttpHeaders,
        _flags: number,
        raw: string[],
      ) => this.#onStream(stream, headers, raw),
    );
    server.emit("connection", this.#socket);
  }

  destroy(): Promise<void> {
    this.#upstreamSession?.destroy();
    this.#socket.destroy();
    return this.closed;
  }

  #onStream(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    rawHeaders: string[],
  ): void {
    stream.on("error", () => {});
    const method = String(headers[":path"] ?? "");
    if (headers[":method"] !== "POST" || !isAllowedMethod(method)) {
      this.#audit({
        event: "request",
        peer: this.#peer,
        method,
        decision: "deny",
        reason: "method not allowed",
      });
      respondStatus(
        stream,
        GrpcStatus.PERMISSION_DENIED,
        `method ${JSON.stringify(method)} is not allowed through the buildkitd gatekeeper`,
      );
      return;
    }
    if (method === SOLVE_METHOD) {
      this.#guardSolve(stream, method, rawHeaders);
      return;
    }
    if (this.#options.auditAllRequests) {
      this.#audit({ event: "request", peer: this.#peer, method, decision: "allow" });
    }
    this.#forward(stream, rawHeaders, null);
  }

  /** Buffers the whole (unary) SolveRequest, checks its entitlements, then forwards or refuses. */
  #guardSolve(stream: http2.ServerHttp2Stream, method: string, rawHeaders: string[]): void {
    const max = this.#options.maxMessageBytes ?? 16 << 20;
    const chunks: Uint8Array[] = [];
    let size = 0;
    let refused = false;
    const onData = (chunk: Uint8Array) => {
      if (refused) return;
      size += chunk.length;
      if (size > max + 5) {
        refused = true;
        this.#audit({
          event: "solve",
          peer: this.#peer,
          method,
          decision: "deny",
          reason: "request too large",
        });
        respondStatus(
          stream,
          GrpcStatus.RESOURCE_EXHAUSTED,
          `SolveRequest larger than ${max} bytes`,
        );
        return;
      }
      chunks.push(chunk);
    };
    stream.on("data", onData);
    stream.once("end", () => {
      stream.off("data", onData);
      if (refused) return;
      const body = concat(chunks, size);
      let requested: string[];
      try {
        const frames = parseGrpcFrames(body, max);
        if (frames.length !== 1) {
          throw new WireFormatError(
            `expected exactly one SolveRequest message, got ${frames.length}`,
          );
        }
        if (frames[0]!.compressed) {
          this.#audit({
            event: "solve",
            peer: this.#peer,
            method,
            decision: "deny",
            reason: "compressed",
          });
          respondStatus(
            stream,
            GrpcStatus.PERMISSION_DENIED,
            "the buildkitd gatekeeper cannot check a compressed SolveRequest; send it uncompressed",
          );
          return;
        }
        requested = readRepeatedString(frames[0]!.message, SOLVE_ENTITLEMENTS_FIELD);
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        this.#audit({
          event: "solve",
          peer: this.#peer,
          method,
          decision: "deny",
          reason: `malformed: ${why}`,
        });
        respondStatus(
          stream,
          GrpcStatus.INVALID_ARGUMENT,
          `the buildkitd gatekeeper cannot parse the SolveRequest: ${why}`,
        );
        return;
      }
      const missing = missingEntitlements(requested, this.#granted);
      if (missing.length > 0) {
        this.#audit({
          event: "solve",
          peer: this.#peer,
          method,
          entitlements: requested,
          decision: "deny",
          reason: "entitlement not granted",
        });
        const names = missing.map((e) => JSON.stringify(e)).join(", ");
        let message = `${missing.length === 1 ? "entitlement" : "entitlements"} ${names} ` +
          `${
            missing.length === 1 ? "is" : "are"
          } not granted to uid ${this.#peer.uid} by the buildkitd launcher policy`;
        const hint = this.#options.hint?.(this.#peer.uid, missing);
        if (hint) message += `\n${hint}`;
        respondStatus(stream, GrpcStatus.PERMISSION_DENIED, message);
        return;
      }
      this.#audit({
        event: "solve",
        peer: this.#peer,
        method,
        entitlements: requested,
        decision: "allow",
      });
      this.#forward(stream, rawHeaders, body);
    });
  }

  #connectUpstream(): Promise<http2.ClientHttp2Session> {
    this.#upstream ??= (async () => {
      const fd = await connectUnix(this.#options.upstream);
      const sock = socketFromFd(fd);
      const session = http2.connect("http://localhost", {
        createConnection: () => sock,
        settings: H2_SETTINGS,
      });
      session.on("error", () => {});
      session.once("connect", () => {
        try {
          session.setLocalWindowSize(SESSION_WINDOW);
        } catch { /* keep the default window */ }
      });
      // The daemon went away: drop the client too, it will reconnect.
      session.once("close", () => this.#socket.destroy());
      this.#upstreamSession = session;
      return session;
    })();
    this.#upstream.catch(() => {
      this.#upstream = undefined;
    });
    return this.#upstream;
  }

  async #forward(
    stream: http2.ServerHttp2Stream,
    rawHeaders: string[],
    body: Uint8Array | null,
  ): Promise<void> {
    let session: http2.ClientHttp2Session;
    try {
      session = await this.#connectUpstream();
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      respondStatus(
        stream,
        GrpcStatus.UNAVAILABLE,
        `buildkitd is not reachable behind the gatekeeper: ${why}`,
      );
      return;
    }
    if (stream.destroyed || stream.closed) return;
    let up: http2.ClientHttp2Stream;
    try {
      up = session.request(headersFromRaw(rawHeaders, REQUEST_PSEUDO), { endStream: false });
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      respondStatus(
        stream,
        GrpcStatus.INTERNAL,
        `the buildkitd gatekeeper cannot forward the request: ${why}`,
      );
      return;
    }
    up.on("error", () => {});
    let responded = false;
    let trailers: http2.OutgoingHttpHeaders | undefined;

    up.on("response", (_headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => {
      responded = true;
      if (stream.destroyed || stream.closed) return;
      const headers = headersFromRaw(raw, RESPONSE_PSEUDO);
      if ((flags & END_STREAM) !== 0) {
        stream.respond(headers, { endStream: true }); // trailers-only response (a gRPC error)
        return;
      }
      stream.respond(headers, { waitForTrailers: true });
      up.pipe(stream);
    });
    up.on("trailers", (_headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
      trailers = headersFromRaw(raw, NO_PSEUDO);
    });
    stream.on("wantTrailers", () => {
      stream.sendTrailers(
        trailers ??
          { "grpc-status": String(GrpcStatus.INTERNAL), "grpc-message": "upstream sent no status" },
      );
    });
    up.on("close", () => {
      if (stream.destroyed || stream.closed) return;
      if (!responded) {
        respondStatus(
          stream,
          GrpcStatus.UNAVAILABLE,
          "buildkitd closed the stream without a response",
        );
      } else if (up.rstCode !== undefined && up.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
        stream.close(up.rstCode);
      }
    });
    stream.on("close", () => {
      if (!up.destroyed && !up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
    });

    if (body !== null) {
      up.end(body);
    } else {
      stream.pipe(up);
    }
  }
}

const END_STREAM = 0x1;
const REQUEST_PSEUDO = new Set([":method", ":path", ":scheme", ":authority"]);
const RESPONSE_PSEUDO = new Set([":status"]);
const NO_PSEUDO = new Set<string>();
const CONNECTION_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
  "http2-settings",
]);
/** Headers node:http2 refuses to send more than once. */
const SINGLE_VALUE = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "user-agent",
  "authorization",
  "date",
  "etag",
  "location",
  "range",
  "referer",
  "retry-after",
  "age",
  "expires",
  "from",
  "last-modified",
  "max-forwards",
  "proxy-authorization",
  "content-language",
  "content-location",
  "content-md5",
  "content-range",
  "if-match",
  "if-modified-since",
  "if-none-match",
  "if-range",
  "if-unmodified-since",
  "dnt",
  "tk",
  "upgrade-insecure-requests",
  "x-content-type-options",
  "access-control-allow-credentials",
  "access-control-max-age",
  "access-control-request-method",
]);

/**
 * Rebuilds an outgoing header object from raw `[name, value, …]` pairs so that
 * a repeated field (e.g. `x-docker-expose-session-grpc-method`) stays a list of
 * separate fields instead of one comma-joined value.
 */
export function headersFromRaw(
  raw: readonly string[],
  pseudo: ReadonlySet<string>,
): http2.OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = Object.create(null);
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (CONNECTION_HEADERS.has(name)) continue;
    if (name.startsWith(":") && !pseudo.has(name)) continue;
    if (name === "te" && value !== "trailers") continue;
    const prev = out[name];
    if (prev === undefined) {
      out[name] = value;
    } else if (!name.startsWith(":") && !SINGLE_VALUE.has(name) && name !== "te") {
      out[name] = Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  return out;
}

function respondStatus(stream: http2.ServerHttp2Stream, code: number, message: string): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    return;
  }
  stream.respond({
    ":status": 200,
    "content-type": "application/grpc",
    "grpc-status": String(code),
    "grpc-message": encodeGrpcMessage(message),
  }, { endStream: true });
  stream.resume(); // discard whatever the client still sends
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
