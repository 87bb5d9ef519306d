/**
 * The gatekeeper: a per-user public unix socket in front of a private
 * buildkitd socket. Each connection's peer is identified by the kernel
 * (SO_PEERCRED), checked against a policy, and then proxied at the HTTP/2
 * (gRPC) level: only an allow-list of methods passes, and a `Control/Solve`
 * asking for an entitlement outside the user's grant is answered with
 * PERMISSION_DENIED and never reaches the daemon.
 *
 * The proxy works on HTTP/2 frames: each client connection gets its own
 * upstream connection, and bytes pass through untouched except for request
 * header blocks (decoded to learn the method, re-encoded for the daemon),
 * stream ids (renumbered), and a Solve's first message (held until checked).
 *
 * Both legs are {@linkcode FdStream}s: reads land in one buffer shared by all
 * connections and writes go to the kernel at once, so a received chunk is
 * valid only while it is handled. Frames passed through are written before
 * the handler returns; whatever the gate keeps longer (a held Solve's data, a
 * header block awaiting its CONTINUATION, frames queued for flow-control
 * window) is copied. The daemon leg asks for a large kernel send buffer
 * (`UPSTREAM_SEND_BUFFER`), which keeps the relay's system calls and
 * wake-ups per byte low.
 *
 * Imports only `node:` built-ins, `src/sys/` and its own pure
 * modules (the launcher may not load npm code).
 *
 * @module
 */
import type http2 from "node:http2";
import { encodeHeaders, HpackDecoder, HpackError } from "./hpack.ts";
import {
  closeFd,
  connectUnix,
  FdStream,
  listenUnix,
  type PeerCred,
  type UnixListener,
} from "../sys/mod.ts";
import {
  encodeGrpcMessage,
  GRPC_PREFIX_BYTES,
  parseGrpcFrames,
  readRepeatedString,
} from "./grpc_frames.ts";
import {
  concatBytes,
  dataFrames,
  DEFAULT_WINDOW,
  Flag,
  frame,
  FRAME_HEADER_BYTES,
  FrameError,
  FrameSplitter,
  frameStream,
  type FrameStreamer,
  FrameType,
  headerFrames,
  PREFACE,
  readU31,
  setFrameStream,
  Setting,
  unpadded,
  windowUpdate,
  writeU31,
} from "./h2_frames.ts";

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
    let conn: GateConnection;
    try {
      conn = new GateConnection(
        fd,
        peer,
        [...decision.entitlements],
        this.#options,
        (r) => this.#audit(r),
      );
    } catch (err) {
      this.#options.onError?.(err); // the stream could not be set up (its fd is closed)
      return;
    }
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

/** Largest header block (encoded, or decoded per RFC 9113 §6.5.2) the gate accepts from a client. */
const MAX_HEADER_BLOCK = 1 << 20;
/** Refused streams a client may leave open before the gate drops the connection. */
const MAX_REFUSED_OPEN = 4096;
/** Upstream stream ids remembered after their stream closed (late response header blocks). */
const MAX_RETIRED = 1024;
/**
 * SO_SNDBUF asked for on the daemon leg (the kernel doubles it, within `net.core.wmem_max`):
 * a build context then rarely waits for the daemon to read, so the gate rarely queues bytes
 * or pauses the client, and the daemon reads in larger batches. The daemon drains it on its
 * own (it reads frames regardless of flow control), so it holds no client data for long.
 */
const UPSTREAM_SEND_BUFFER = 1 << 20;

/** One client stream, as the gate sees it. */
interface GateStream {
  /** Client-side stream id. */
  c: number;
  /** Upstream stream id; 0 until forwarded. */
  u: number;
  /** `held`: a Solve whose first message is being inspected; `refused`: answered by the gate. */
  kind: "held" | "fwd" | "refused";
  clientEnded: boolean;
  upEnded: boolean;
  /** The upstream reset it (queued data is dropped). */
  reset: boolean;
  /** Held: the request headers to forward. */
  headers: [string, string][];
  /** Held: DATA payloads so far. */
  chunks: Uint8Array[];
  size: number;
  /** Held: client WINDOW_UPDATE increments to replay once forwarded. */
  pendingWindow: number;
  /**
   * Bytes the gate credited the client (for held data it then forwarded) that
   * the daemon will credit again: absorbed from its stream WINDOW_UPDATEs.
   * While > 0, `win` tracks the daemon's stream window and bounds what we send.
   */
  debt: number;
  win: number;
}

/** Frames waiting for upstream flow-control window (only while the gate owes credit). */
type QueueItem =
  | { bytes: Uint8Array }
  | { st: GateStream; payload: Uint8Array; end: boolean; credited: boolean };

/**
 * Writes to one socket, coalescing frames that are contiguous in a received chunk. A chunk
 * is only valid while it is being handled (the read buffer is shared): every run is
 * flushed before the chunk's handler returns, and the socket copies what it cannot send.
 */
class FrameOut {
  #sock: FdStream;
  #source: () => FdStream | undefined;
  #paused: FdStream | undefined;
  #run: Uint8Array | undefined;
  #runStart = 0;
  #runEnd = 0;
  #waiting = false;
  /** Inside a header block being passed through: frames we make ourselves must wait. */
  inBlock = false;
  /** Until the peer's preface (its first SETTINGS) has gone out, frames we make must wait too. */
  #beforePreface = true;
  #deferred: Uint8Array[] = [];
  /** Inside a frame whose payload is being relayed piecewise: all other writes must wait. */
  #midFrame = false;
  #midDeferred: Uint8Array[] = [];

  /** `source`: the socket to pause while this one is over its high-water mark. */
  constructor(sock: FdStream, source: () => FdStream | undefined) {
    this.#sock = sock;
    this.#source = source;
    sock.ondrain = () => {
      this.#waiting = false;
      const src = this.#paused;
      this.#paused = undefined;
      if (src && !src.destroyed) src.resume();
    };
  }

  /** Forwards `buf[start, end)` (whole frames) unchanged. */
  pass(buf: Uint8Array, start: number, end: number): void {
    if (this.#run === buf && this.#runEnd === start) {
      this.#runEnd = end;
      return;
    }
    this.flush();
    this.#run = buf;
    this.#runStart = start;
    this.#runEnd = end;
  }

  /** Writes whole frames after everything passed so far (after the frame being relayed, if any). */
  write(bytes: Uint8Array): void {
    if (this.#midFrame) {
      this.#midDeferred.push(bytes);
      return;
    }
    this.flush();
    this.#write(bytes);
  }

  /** A frame's header has been passed and its payload follows piecewise through `pass`. */
  beginFrame(): void {
    this.#midFrame = true;
  }

  /** The frame begun with `beginFrame` has been passed entirely: release the writes it held. */
  endFrame(): void {
    this.#midFrame = false;
    if (this.#midDeferred.length === 0) return;
    const d = this.#midDeferred;
    this.#midDeferred = [];
    for (const b of d) this.write(b);
  }

  /** Writes frames the gate made, once no passed-through header block is open. */
  inject(bytes: Uint8Array): void {
    if (this.inBlock || this.#beforePreface) this.#deferred.push(bytes);
    else this.write(bytes);
  }

  /** The server preface went out: release injected frames. */
  prefaceSent(): void {
    this.#beforePreface = false;
    this.endBlock();
  }

  /** The passed-through header block ended: release injected frames. */
  endBlock(): void {
    this.inBlock = false;
    if (this.#beforePreface) return;
    const d = this.#deferred;
    this.#deferred = [];
    for (const b of d) this.write(b);
  }

  flush(): void {
    const run = this.#run;
    if (!run) return;
    this.#run = undefined;
    this.#write(run.subarray(this.#runStart, this.#runEnd));
  }

  #write(bytes: Uint8Array): void {
    if (this.#sock.destroyed) return;
    if (this.#sock.write(bytes) || this.#waiting) return;
    const src = this.#source();
    if (!src) return;
    this.#waiting = true;
    this.#paused = src;
    src.pause();
  }
}

/**
 * One client connection, proxied frame by frame to its own upstream
 * connection. DATA, SETTINGS, PING and WINDOW_UPDATE pass through as raw bytes
 * (only the stream id is rewritten); client header blocks are HPACK-decoded,
 * checked and re-encoded as literals without indexing; daemon header blocks
 * reach the client unchanged, so its HPACK state stays the daemon's. The gate
 * numbers upstream streams itself, in the order it forwards them, so a held
 * Solve or a refused request never leaves a gap the daemon would trip over.
 */
class GateConnection {
  readonly closed: Promise<void>;
  #client: FdStream;
  #up: FdStream | undefined;
  /** Set when the daemon could not be reached: the gate answers every call itself. */
  #upError: string | undefined;
  #peer: PeerCred;
  #granted: readonly string[];
  #options: GatekeeperOptions;
  #audit: AuditFn;
  #maxMessage: number;

  #toClient: FrameOut;
  #toUp: FrameOut | undefined;
  #clientFrames = new FrameSplitter();
  /** Relays a forwarded stream's DATA frame piecewise when it straddles socket reads. */
  #clientStreamer: FrameStreamer = {
    begin: (buf, off, len, avail) => this.#beginClientData(buf, off, len, avail),
    payload: (buf, start, end, last) => {
      const out = this.#toUp!;
      out.pass(buf, start, end);
      if (last) out.endFrame();
    },
  };
  #upFrames = new FrameSplitter();
  #prefaceSeen = 0;
  #decoder = new HpackDecoder();
  #tableLimit = 4096;
  #block: { c: number; endStream: boolean; parts: Uint8Array[]; size: number } | undefined;
  #upBlockC = 0;
  #upPrefaceSeen = false;

  #streams = new Map<number, GateStream>();
  #byU = new Map<number, GateStream>();
  #retired = new Map<number, number>();
  #refusedOpen = 0;
  #heldBytes = 0;
  #lastClientStream = 0;
  #nextU = 1;
  /** Upstream ids in the order assigned, and the largest client id forwarded up to each. */
  #assignedU: number[] = [];
  #maxCUpTo: number[] = [];

  /** The daemon's connection receive window, as the frames we sent and got tell it. */
  #upConnWin = DEFAULT_WINDOW;
  #upInitWin = DEFAULT_WINDOW;
  /** Connection-level credit we gave the client that the daemon's WINDOW_UPDATEs must repay. */
  #connDebt = 0;
  #queue: QueueItem[] = [];

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
    this.#maxMessage = options.maxMessageBytes ?? 16 << 20;
    this.#client = new FdStream(fd); // read and write errors destroy it
    this.#toClient = new FrameOut(this.#client, () => this.#up);
    this.closed = this.#client.closed;
    // HTTP/2 clients never half-close: EOF means the client is gone (its process may have exited
    // without a GOAWAY). The stream is half-open, so without this the connection, its upstream
    // connection and the idle accounting would stay alive forever.
    this.#client.onend = () => this.#client.destroy();
    // The client is gone: let the daemon have what was already sent to it (e.g. a GOAWAY), then
    // close the upstream connection too.
    this.closed.then(() => {
      const up = this.#up;
      if (!up || up.destroyed) return;
      this.#toUp?.flush();
      up.end(() => up.destroy());
    });
    this.#start();
  }

  destroy(): Promise<void> {
    this.#up?.destroy();
    this.#client.destroy();
    return this.closed;
  }

  async #start(): Promise<void> {
    let up: FdStream;
    try {
      const fd = await connectUnix(this.#options.upstream);
      if (this.#client.destroyed) {
        closeFd(fd);
        return;
      }
      // read and write errors destroy it
      up = new FdStream(fd, { sendBufferBytes: UPSTREAM_SEND_BUFFER });
    } catch (err) {
      if (this.#client.destroyed) return;
      this.#upError = err instanceof Error ? err.message : String(err);
      this.#toClient.write(frame(FrameType.SETTINGS, 0, 0));
      this.#toClient.prefaceSent();
      this.#client.ondata = (c) => this.#onClientChunk(c);
      this.#client.resume();
      return;
    }
    this.#up = up;
    this.#toUp = new FrameOut(up, () => this.#client);
    // The daemon went away: flush what it said (e.g. GOAWAY) and drop the client too.
    const gone = () => {
      if (this.#client.destroyed) return;
      this.#toClient.flush();
      this.#client.end(() => this.#client.destroy());
    };
    up.onend = gone;
    up.closed.then(gone);
    up.ondata = (c) => this.#onUpChunk(c);
    this.#client.ondata = (c) => this.#onClientChunk(c);
    up.resume();
    this.#client.resume();
  }

  #fail(): void {
    this.#up?.destroy();
    this.#client.destroy();
  }

  // --- client → daemon ------------------------------------------------------------------------

  #onClientChunk(chunk: Uint8Array): void {
    if (this.#client.destroyed) return;
    try {
      if (this.#prefaceSeen < PREFACE.length) {
        const n = Math.min(PREFACE.length - this.#prefaceSeen, chunk.length);
        for (let i = 0; i < n; i++) {
          if (chunk[i] !== PREFACE[this.#prefaceSeen + i]) throw new FrameError("bad preface");
        }
        this.#prefaceSeen += n;
        chunk = chunk.subarray(n);
        if (this.#prefaceSeen === PREFACE.length) this.#toUp?.write(PREFACE);
      }
      this.#clientFrames.push(
        chunk,
        (buf, off, len) => this.#clientFrame(buf, off, len),
        this.#clientStreamer,
      );
      this.#toUp?.flush();
      this.#toClient.flush();
    } catch (err) {
      if (!(err instanceof FrameError || err instanceof HpackError)) this.#options.onError?.(err);
      this.#fail();
    }
  }

  /** Forwards a client frame unchanged (behind queued frames, if any). */
  #passUp(buf: Uint8Array, off: number, len: number): void {
    if (!this.#toUp) return;
    if (this.#queue.length > 0) {
      this.#queue.push({ bytes: buf.slice(off, off + FRAME_HEADER_BYTES + len) });
    } else {
      this.#toUp.pass(buf, off, off + FRAME_HEADER_BYTES + len);
    }
  }

  /** Sends frames the gate made to the daemon (behind queued frames, if any). */
  #sendUp(bytes: Uint8Array): void {
    if (!this.#toUp) return;
    if (this.#queue.length > 0) this.#queue.push({ bytes });
    else this.#toUp.write(bytes);
  }

  #clientFrame(buf: Uint8Array, off: number, len: number): void {
    const type = buf[off + 3]!;
    const flags = buf[off + 4]!;
    const id = frameStream(buf, off);
    if (this.#block && type !== FrameType.CONTINUATION) {
      throw new FrameError("frame inside a header block");
    }
    switch (type) {
      case FrameType.DATA:
        this.#clientData(buf, off, len, flags, id);
        return;
      case FrameType.HEADERS: {
        if (id === 0) throw new FrameError("HEADERS on stream 0");
        const fragment = unpadded(buf, off);
        this.#block = {
          c: id,
          endStream: (flags & Flag.END_STREAM) !== 0,
          // kept past this chunk only when the block continues: then it must be a copy
          parts: [flags & Flag.END_HEADERS ? fragment : fragment.slice()],
          size: fragment.length,
        };
        if (flags & Flag.END_HEADERS) this.#clientBlock();
        return;
      }
      case FrameType.CONTINUATION: {
        const block = this.#block;
        if (!block || block.c !== id) throw new FrameError("unexpected CONTINUATION");
        const fragment = buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len);
        block.parts.push(flags & Flag.END_HEADERS ? fragment : fragment.slice());
        block.size += fragment.length;
        if (block.size > MAX_HEADER_BLOCK) throw new FrameError("header block too large");
        if (flags & Flag.END_HEADERS) this.#clientBlock();
        return;
      }
      case FrameType.RST_STREAM: {
        const st = this.#streams.get(id);
        if (!st) return;
        if (st.kind === "fwd") {
          this.#dropQueued(st);
          setFrameStream(buf, off, st.u);
          this.#passUp(buf, off, len);
          this.#retire(st);
        } else {
          this.#forget(st);
        }
        return;
      }
      case FrameType.SETTINGS:
        if (this.#upError !== undefined) {
          if (!(flags & Flag.ACK)) this.#toClient.inject(frame(FrameType.SETTINGS, Flag.ACK, 0));
          return;
        }
        this.#passUp(buf, off, len);
        return;
      case FrameType.PING:
        if (this.#upError !== undefined) {
          if (!(flags & Flag.ACK)) {
            const payload = buf.slice(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len);
            this.#toClient.inject(frame(FrameType.PING, Flag.ACK, 0, payload));
          }
          return;
        }
        this.#passUp(buf, off, len);
        return;
      case FrameType.GOAWAY:
        // Its last-stream-id counts streams the daemon opened: there are none.
        if (len >= 8) writeU31(buf, off + FRAME_HEADER_BYTES, 0);
        this.#passUp(buf, off, len);
        return;
      case FrameType.WINDOW_UPDATE: {
        if (id === 0) {
          this.#passUp(buf, off, len);
          return;
        }
        const st = this.#streams.get(id);
        if (st?.kind === "fwd") {
          setFrameStream(buf, off, st.u);
          this.#passUp(buf, off, len);
        } else if (st?.kind === "held" && len === 4) {
          st.pendingWindow += readU31(buf, off + FRAME_HEADER_BYTES);
        }
        return;
      }
      case FrameType.PUSH_PROMISE:
        throw new FrameError("PUSH_PROMISE from a client");
      default:
        return; // PRIORITY (advisory, and its ids are the client's) and unknown types: dropped
    }
  }

  /**
   * A client DATA frame only partly received: when it would pass through unchanged (forwarded
   * stream, nothing queued, within the daemon's windows), send its header and the bytes so far
   * now and the rest as it arrives, instead of reassembling it.
   */
  #beginClientData(buf: Uint8Array, off: number, len: number, avail: number): boolean {
    const out = this.#toUp;
    if (!out || buf[off + 3] !== FrameType.DATA || this.#block || this.#queue.length > 0) {
      return false;
    }
    const st = this.#streams.get(frameStream(buf, off));
    if (
      !st || st.kind !== "fwd" || st.clientEnded ||
      (this.#connDebt > 0 && len > this.#upConnWin) || (st.debt > 0 && len > st.win)
    ) {
      return false;
    }
    this.#upConnWin -= len;
    if (st.debt > 0) st.win -= len;
    setFrameStream(buf, off, st.u);
    out.pass(buf, off, off + FRAME_HEADER_BYTES + avail);
    out.beginFrame();
    if (buf[off + 4]! & Flag.END_STREAM) {
      st.clientEnded = true;
      this.#maybeRetire(st);
    }
    return true;
  }

  #clientData(buf: Uint8Array, off: number, len: number, flags: number, id: number): void {
    const st = this.#streams.get(id);
    const end = (flags & Flag.END_STREAM) !== 0;
    if (!st || st.kind === "refused" || st.clientEnded || !this.#toUp && st.kind === "fwd") {
      // Never reaches the daemon: give the client its connection window back.
      if (len > 0) this.#toClient.inject(windowUpdate(0, len));
      if (st && end && st.kind === "refused") this.#forget(st);
      return;
    }
    if (st.kind === "held") {
      const payload = unpadded(buf, off).slice();
      // The gate is the receiver until it decides: credit the client as a receiver would, so a
      // SolveRequest larger than the windows cannot stall (the daemon's credit is absorbed later).
      if (len > 0) {
        this.#toClient.inject(concatBytes([windowUpdate(0, len), windowUpdate(id, len)]));
      }
      st.chunks.push(payload);
      st.size += payload.length;
      this.#heldBytes += payload.length;
      if (end) st.clientEnded = true;
      this.#checkSolve(st);
      return;
    }
    if (end) st.clientEnded = true;
    if (
      this.#queue.length === 0 &&
      (this.#connDebt === 0 || len <= this.#upConnWin) &&
      (st.debt === 0 || len <= st.win)
    ) {
      this.#upConnWin -= len;
      if (st.debt > 0) st.win -= len;
      setFrameStream(buf, off, st.u);
      this.#toUp!.pass(buf, off, off + FRAME_HEADER_BYTES + len);
    } else {
      const payload = unpadded(buf, off).slice();
      const padding = len - payload.length;
      if (padding > 0) {
        this.#toClient.inject(concatBytes([windowUpdate(0, padding), windowUpdate(id, padding)]));
      }
      this.#queue.push({ st, payload, end, credited: false });
    }
    if (end) this.#maybeRetire(st);
  }

  /** A complete client header block. */
  #clientBlock(): void {
    const block = this.#block!;
    this.#block = undefined;
    const bytes = block.parts.length === 1 ? block.parts[0]! : concatBytes(block.parts);
    const headers = this.#decoder.decode(bytes, MAX_HEADER_BLOCK);
    const { c, endStream } = block;
    const st = this.#streams.get(c);
    if (st) {
      // Trailers (gRPC clients send none, but HTTP/2 allows them).
      if (!endStream) throw new FrameError("trailers without END_STREAM");
      if (st.kind === "fwd") {
        if (headers.some(([n]) => n.startsWith(":"))) {
          throw new FrameError("pseudo-header in trailers");
        }
        if (!st.clientEnded) {
          st.clientEnded = true;
          this.#sendUp(headerFrames(st.u, encodeHeaders(headers), true));
          this.#maybeRetire(st);
        }
      } else if (st.kind === "held") {
        st.clientEnded = true;
        this.#checkSolve(st);
      } else {
        this.#forget(st);
      }
      return;
    }
    if (c % 2 === 0 || c <= this.#lastClientStream) throw new FrameError("bad stream id");
    this.#lastClientStream = c;

    let method: string | undefined;
    let path: string | undefined;
    let malformed = false;
    let regular = false;
    const pseudoSeen = new Set<string>();
    for (const [name, value] of headers) {
      if (!name.startsWith(":")) {
        regular = true;
        continue;
      }
      if (regular || pseudoSeen.has(name) || !REQUEST_PSEUDO.has(name)) malformed = true;
      pseudoSeen.add(name);
      if (name === ":method") method = value;
      if (name === ":path") path = value;
    }
    const st2: GateStream = {
      c,
      u: 0,
      kind: "refused",
      clientEnded: endStream,
      upEnded: false,
      reset: false,
      headers,
      chunks: [],
      size: 0,
      pendingWindow: 0,
      debt: 0,
      win: 0,
    };
    const shown = path ?? "";
    if (malformed || method !== "POST" || path === undefined || !isAllowedMethod(path)) {
      this.#audit({
        event: "request",
        peer: this.#peer,
        method: shown,
        decision: "deny",
        reason: "method not allowed",
      });
      this.#refuse(
        st2,
        GrpcStatus.PERMISSION_DENIED,
        `method ${JSON.stringify(shown)} is not allowed through the buildkitd gatekeeper`,
      );
      return;
    }
    if (path === SOLVE_METHOD) {
      st2.kind = "held";
      this.#streams.set(c, st2);
      if (endStream) this.#checkSolve(st2);
      return;
    }
    if (this.#options.auditAllRequests) {
      this.#audit({ event: "request", peer: this.#peer, method: path, decision: "allow" });
    }
    this.#forward(st2, new Uint8Array(0));
  }

  /** Answers a stream with a trailers-only gRPC status; the daemon never hears of it. */
  #refuse(st: GateStream, code: number, message: string): void {
    const block = encodeHeaders([
      [":status", "200"],
      ["content-type", "application/grpc"],
      ["grpc-status", String(code)],
      ["grpc-message", encodeGrpcMessage(message)],
    ]);
    this.#toClient.inject(headerFrames(st.c, block, true));
    this.#heldBytes -= st.kind === "held" ? st.size : 0;
    st.kind = "refused";
    st.chunks = [];
    st.headers = [];
    if (st.clientEnded) {
      this.#streams.delete(st.c);
      return;
    }
    if (!this.#streams.has(st.c)) this.#streams.set(st.c, st);
    if (++this.#refusedOpen > MAX_REFUSED_OPEN) throw new FrameError("too many refused streams");
  }

  /** Drops a held or refused stream's state. */
  #forget(st: GateStream): void {
    if (this.#streams.get(st.c) !== st) return;
    this.#streams.delete(st.c);
    if (st.kind === "refused") this.#refusedOpen--;
    if (st.kind === "held") this.#heldBytes -= st.size;
    st.chunks = [];
  }

  /** Decides a held Solve as soon as its first message is complete (or the request ended). */
  #checkSolve(st: GateStream): void {
    const method = SOLVE_METHOD;
    const deny = (code: number, reason: string, message: string, entitlements?: string[]) => {
      this.#audit({
        event: "solve",
        peer: this.#peer,
        method,
        ...(entitlements ? { entitlements } : {}),
        decision: "deny",
        reason,
      });
      this.#refuse(st, code, message);
    };
    const malformed = (why: string) =>
      deny(
        GrpcStatus.INVALID_ARGUMENT,
        `malformed: ${why}`,
        `the buildkitd gatekeeper cannot parse the SolveRequest: ${why}`,
      );
    if (st.size >= GRPC_PREFIX_BYTES) {
      if (st.chunks.length > 1 && st.chunks[0]!.length < GRPC_PREFIX_BYTES) {
        st.chunks = [concatBytes(st.chunks)];
      }
      const head = st.chunks[0]!;
      const flag = head[0]!;
      const msgLen = new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(1);
      if (flag > 1) return malformed(`unknown gRPC message flag ${flag}`);
      if (msgLen > this.#maxMessage) {
        return deny(
          GrpcStatus.RESOURCE_EXHAUSTED,
          "request too large",
          `SolveRequest larger than ${this.#maxMessage} bytes`,
        );
      }
      const total = GRPC_PREFIX_BYTES + msgLen;
      if (st.size < total) {
        if (st.clientEnded) return malformed("truncated gRPC message");
        if (this.#heldBytes > 2 * (this.#maxMessage + GRPC_PREFIX_BYTES)) {
          return deny(
            GrpcStatus.RESOURCE_EXHAUSTED,
            "request too large",
            "too many SolveRequests in flight on one connection",
          );
        }
        return;
      }
      const body = st.chunks.length === 1 ? st.chunks[0]! : concatBytes(st.chunks);
      st.chunks = [body];
      if (st.size > total) {
        let why = "expected exactly one SolveRequest message";
        try {
          why += `, got ${parseGrpcFrames(body, this.#maxMessage).length}`;
        } catch (err) {
          why = err instanceof Error ? err.message : String(err);
        }
        return malformed(why);
      }
      if (flag === 1) {
        return deny(
          GrpcStatus.PERMISSION_DENIED,
          "compressed",
          "the buildkitd gatekeeper cannot check a compressed SolveRequest; send it uncompressed",
        );
      }
      let requested: string[];
      try {
        requested = readRepeatedString(body.subarray(GRPC_PREFIX_BYTES), SOLVE_ENTITLEMENTS_FIELD);
      } catch (err) {
        return malformed(err instanceof Error ? err.message : String(err));
      }
      const missing = missingEntitlements(requested, this.#granted);
      if (missing.length > 0) {
        const names = missing.map((e) => JSON.stringify(e)).join(", ");
        let message = `${missing.length === 1 ? "entitlement" : "entitlements"} ${names} ` +
          `${
            missing.length === 1 ? "is" : "are"
          } not granted to uid ${this.#peer.uid} by the buildkitd launcher policy`;
        const hint = this.#options.hint?.(this.#peer.uid, missing);
        if (hint) message += `\n${hint}`;
        return deny(GrpcStatus.PERMISSION_DENIED, "entitlement not granted", message, requested);
      }
      this.#audit({
        event: "solve",
        peer: this.#peer,
        method,
        entitlements: requested,
        decision: "allow",
      });
      this.#heldBytes -= st.size;
      st.size = 0;
      this.#forward(st, body);
      return;
    }
    if (st.clientEnded) {
      malformed(
        st.size === 0
          ? "expected exactly one SolveRequest message, got 0"
          : "truncated gRPC message prefix",
      );
    }
  }

  /** Opens the stream upstream with the (re-encoded) request headers and any held body. */
  #forward(st: GateStream, body: Uint8Array): void {
    if (this.#upError !== undefined || !this.#toUp) {
      this.#refuse(
        st,
        GrpcStatus.UNAVAILABLE,
        `buildkitd is not reachable behind the gatekeeper: ${this.#upError ?? "not connected"}`,
      );
      return;
    }
    const u = this.#nextU;
    this.#nextU += 2;
    st.u = u;
    st.kind = "fwd";
    this.#streams.set(st.c, st);
    this.#byU.set(u, st);
    this.#assignedU.push(u);
    this.#maxCUpTo.push(Math.max(st.c, this.#maxCUpTo.at(-1) ?? 0));
    const headers = st.headers;
    st.headers = [];
    st.chunks = [];
    const headersEnd = st.clientEnded && body.length === 0;
    this.#sendUp(headerFrames(u, encodeHeaders(headers), headersEnd));
    if (st.pendingWindow > 0) {
      this.#sendUp(windowUpdate(u, Math.min(st.pendingWindow, 0x7fffffff)));
      st.pendingWindow = 0;
    }
    if (body.length > 0 || (st.clientEnded && !headersEnd)) {
      // The client was credited for these bytes: the daemon's next credits repay the gate.
      this.#connDebt += body.length;
      st.debt = body.length;
      st.win = this.#upInitWin;
      this.#queue.push({ st, payload: body, end: st.clientEnded, credited: true });
      this.#drain();
    }
    if (headersEnd) this.#maybeRetire(st);
  }

  /** Sends queued frames as far as the daemon's windows allow. */
  #drain(): void {
    const out = this.#toUp;
    if (!out) return;
    while (this.#queue.length > 0) {
      const item = this.#queue[0]!;
      if ("bytes" in item) {
        out.write(item.bytes);
        this.#queue.shift();
        continue;
      }
      const { st } = item;
      if (st.reset) {
        this.#queue.shift();
        this.#dropItem(item);
        continue;
      }
      let k = item.payload.length;
      if (this.#connDebt > 0) k = Math.min(k, Math.max(0, this.#upConnWin));
      if (st.debt > 0) k = Math.min(k, Math.max(0, st.win));
      const whole = k === item.payload.length;
      if (k > 0 || whole) {
        out.write(dataFrames(st.u, item.payload.subarray(0, k), whole && item.end));
        this.#upConnWin -= k;
        if (st.debt > 0) st.win -= k;
      }
      if (!whole) {
        item.payload = item.payload.subarray(k);
        return;
      }
      this.#queue.shift();
    }
  }

  /** Queued data that will never be sent: settle the window accounts for it. */
  #dropItem(item: { payload: Uint8Array; credited: boolean }): void {
    const n = item.payload.length;
    if (n === 0) return;
    if (item.credited) this.#connDebt = Math.max(0, this.#connDebt - n);
    else this.#toClient.inject(windowUpdate(0, n));
  }

  #dropQueued(st: GateStream): void {
    if (this.#queue.length === 0) return;
    this.#queue = this.#queue.filter((item) => {
      if ("bytes" in item || item.st !== st) return true;
      this.#dropItem(item);
      return false;
    });
  }

  #maybeRetire(st: GateStream): void {
    if (st.clientEnded && st.upEnded) this.#retire(st);
  }

  #retire(st: GateStream): void {
    if (this.#streams.get(st.c) === st) this.#streams.delete(st.c);
    if (this.#byU.get(st.u) === st) this.#byU.delete(st.u);
    this.#retired.set(st.u, st.c);
    if (this.#retired.size > MAX_RETIRED) {
      this.#retired.delete(this.#retired.keys().next().value!);
    }
  }

  // --- daemon → client ------------------------------------------------------------------------

  #onUpChunk(chunk: Uint8Array): void {
    if (this.#client.destroyed) return;
    try {
      this.#upFrames.push(chunk, (buf, off, len) => this.#upFrame(buf, off, len));
      this.#drain();
      this.#toClient.flush();
      this.#toUp?.flush();
    } catch (err) {
      if (!(err instanceof FrameError)) this.#options.onError?.(err);
      this.#fail();
    }
  }

  #upFrame(buf: Uint8Array, off: number, len: number): void {
    const type = buf[off + 3]!;
    const flags = buf[off + 4]!;
    const id = frameStream(buf, off);
    const out = this.#toClient;
    const end = off + FRAME_HEADER_BYTES + len;
    if (out.inBlock && type !== FrameType.CONTINUATION) {
      throw new FrameError("daemon interleaved a header block");
    }
    switch (type) {
      case FrameType.DATA: {
        const st = this.#byU.get(id);
        if (!st) {
          if (len > 0) this.#sendUp(windowUpdate(0, len));
          return;
        }
        setFrameStream(buf, off, st.c);
        out.pass(buf, off, end);
        if (flags & Flag.END_STREAM) {
          st.upEnded = true;
          this.#maybeRetire(st);
        }
        return;
      }
      case FrameType.HEADERS: {
        // Never dropped: the client's HPACK decoder must see every block the daemon encoded.
        const st = this.#byU.get(id);
        const c = st?.c ?? this.#retired.get(id);
        if (c === undefined) throw new FrameError("daemon sent headers on an unknown stream");
        if (flags & (Flag.PADDED | Flag.PRIORITY)) {
          out.write(frame(type, flags & ~(Flag.PADDED | Flag.PRIORITY), c, unpadded(buf, off)));
        } else {
          setFrameStream(buf, off, c);
          out.pass(buf, off, end);
        }
        if (!(flags & Flag.END_HEADERS)) {
          out.inBlock = true;
          this.#upBlockC = c;
        }
        if (st && (flags & Flag.END_STREAM)) {
          st.upEnded = true;
          this.#maybeRetire(st);
        }
        return;
      }
      case FrameType.CONTINUATION:
        if (!out.inBlock) throw new FrameError("unexpected CONTINUATION from the daemon");
        setFrameStream(buf, off, this.#upBlockC);
        out.pass(buf, off, end);
        if (flags & Flag.END_HEADERS) {
          out.flush();
          out.endBlock();
        }
        return;
      case FrameType.RST_STREAM: {
        const st = this.#byU.get(id);
        if (!st) return;
        st.reset = true;
        this.#dropQueued(st);
        setFrameStream(buf, off, st.c);
        out.pass(buf, off, end);
        this.#retire(st);
        return;
      }
      case FrameType.SETTINGS:
        if (!(flags & Flag.ACK)) this.#upSettings(buf, off + FRAME_HEADER_BYTES, end);
        out.pass(buf, off, end);
        if (!this.#upPrefaceSeen) {
          this.#upPrefaceSeen = true;
          out.flush();
          out.prefaceSent();
        }
        return;
      case FrameType.PING:
        out.pass(buf, off, end);
        return;
      case FrameType.GOAWAY:
        if (len >= 8) {
          const last = readU31(buf, off + FRAME_HEADER_BYTES);
          writeU31(buf, off + FRAME_HEADER_BYTES, this.#clientIdUpTo(last));
        }
        out.pass(buf, off, end);
        return;
      case FrameType.WINDOW_UPDATE: {
        if (len !== 4) throw new FrameError("bad WINDOW_UPDATE");
        const inc = readU31(buf, off + FRAME_HEADER_BYTES);
        let rest = inc;
        if (id === 0) {
          this.#upConnWin += inc;
          const absorbed = Math.min(inc, this.#connDebt);
          this.#connDebt -= absorbed;
          rest -= absorbed;
        } else {
          const st = this.#byU.get(id);
          if (!st) return;
          setFrameStream(buf, off, st.c);
          if (st.debt > 0) {
            st.win += inc;
            const absorbed = Math.min(inc, st.debt);
            st.debt -= absorbed;
            rest -= absorbed;
          }
        }
        if (rest === 0) return;
        if (rest !== inc) writeU31(buf, off + FRAME_HEADER_BYTES, rest);
        out.pass(buf, off, end);
        return;
      }
      case FrameType.PUSH_PROMISE:
        throw new FrameError("PUSH_PROMISE from the daemon");
      default:
        return; // PRIORITY and unknown types: dropped
    }
  }

  #upSettings(buf: Uint8Array, start: number, end: number): void {
    const view = new DataView(buf.buffer, buf.byteOffset);
    for (let p = start; p + 6 <= end; p += 6) {
      const key = view.getUint16(p);
      const value = view.getUint32(p + 2);
      if (key === Setting.INITIAL_WINDOW_SIZE) {
        const delta = value - this.#upInitWin;
        this.#upInitWin = value;
        for (const st of this.#byU.values()) if (st.debt > 0) st.win += delta;
      } else if (key === Setting.HEADER_TABLE_SIZE && value > this.#tableLimit) {
        // The client's encoder may now use a larger table; what the gate decodes stays bounded
        // by what the daemon itself accepts.
        this.#tableLimit = Math.min(value, MAX_HEADER_BLOCK);
        this.#decoder.setMaxTableSizeLimit(this.#tableLimit);
      }
    }
  }

  /** The largest client stream id among streams forwarded with upstream id <= `u`. */
  #clientIdUpTo(u: number): number {
    const ids = this.#assignedU;
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ids[mid]! <= u) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : this.#maxCUpTo[lo - 1]!;
  }
}

const REQUEST_PSEUDO = new Set([":method", ":path", ":scheme", ":authority"]);

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
