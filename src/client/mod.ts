/**
 * The gRPC boundary for BuildKit's Control API: the only code that builds
 * gRPC clients. gRPC status codes become {@linkcode BuildctlError}s here.
 *
 * @module
 */

import {
  InfoRequest,
  type InfoResponse,
  InfoResponse as InfoResponseCodec,
  ListWorkersRequest,
  ListWorkersResponse,
} from "../gen/github.com/moby/buildkit/api/services/control/control_info.ts";
import type {
  DiskUsageRequest,
  PruneRequest,
  UsageRecord,
} from "../gen/github.com/moby/buildkit/api/services/control/control_cache.ts";
import type {
  SolveRequest,
  SolveResponse,
  StatusResponse,
} from "../gen/github.com/moby/buildkit/api/services/control/control_solve.ts";
import type {
  BuildHistoryEvent,
  BuildHistoryRequest,
} from "../gen/github.com/moby/buildkit/api/services/control/control_history.ts";
import type { WorkerRecord } from "../gen/github.com/moby/buildkit/api/types/worker.ts";
import type { Address } from "./address.ts";
import { after, delay } from "../timer.ts";
import { BuildctlError, ExitCode } from "../errors.ts";
import {
  type CallOptions,
  type ClientCall,
  connTransport,
  GrpcCode,
  GrpcError,
  H2Channel,
  type HeaderList,
  type Transport,
} from "./grpc.ts";

export { type Address, DEFAULT_ADDRESS, parseAddress, resolveAddress } from "./address.ts";
import { describeConnectError } from "./probe.ts";
export { type CallStatus, ClientCall, GrpcCode, GrpcError, type HeaderList } from "./grpc.ts";

/** BuildKit's message size limit, both directions. */
export const MAX_MESSAGE_SIZE = 16 << 20;

/**
 * Receive window per call and per connection. The default 64 KiB would let
 * the daemon have only 64 KiB in flight to us; exports through the session
 * tunnel then crawl.
 */
const RECEIVE_WINDOW = 16 << 20;

/** PEM file paths for TLS over tcp://. */
export interface TlsFiles {
  caCert?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  serverName?: string | undefined;
}

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  address: Address;
  tls?: TlsFiles;
  /** Limit for connection set-up and the `wait` loop; 0 = none. */
  timeoutMs: number;
  /** Retry `Info` every second until the daemon answers (upstream `--wait`). */
  wait?: boolean;
  signal?: AbortSignal;
}

/** BuildKit's Control service: its full name and methods (`tests/proto_compat_test.ts` checks them against the generated definition). */
export const CONTROL_SERVICE = "moby.buildkit.v1.Control";
/** The methods of {@linkcode CONTROL_SERVICE}. */
export const CONTROL_METHODS = [
  "DiskUsage",
  "Prune",
  "Solve",
  "Status",
  "Session",
  "ListWorkers",
  "Info",
  "ListenBuildHistory",
  "UpdateBuildHistory",
] as const;
/** A method of {@linkcode CONTROL_SERVICE}. */
export type ControlMethod = typeof CONTROL_METHODS[number];

/**
 * The full path of a Control method. Literal names rather than the
 * generated service definition, which imports the messages of every
 * method: each call below loads only its own area's messages
 * (control_info for workers and info, the others when first used).
 */
export function controlPath(method: ControlMethod): string {
  return `/${CONTROL_SERVICE}/${method}`;
}

/** Path of the session tunnel RPC. */
export const SESSION_METHOD: string = controlPath("Session");

const cacheMessages = () =>
  import("../gen/github.com/moby/buildkit/api/services/control/control_cache.ts");
const solveMessages = () =>
  import("../gen/github.com/moby/buildkit/api/services/control/control_solve.ts");
const historyMessages = () =>
  import("../gen/github.com/moby/buildkit/api/services/control/control_history.ts");

/** A connected Control API client. Close it when done. */
export class BuildkitClient {
  /** The HTTP/2 connection, for calls owned by other modules (the session tunnel). */
  readonly channel: H2Channel;
  /** The address it talks to. */
  readonly address: Address;

  #tlsWithoutClientCert: boolean;

  /** `tlsWithoutClientCert`: TLS without a client certificate (sharpens one error's hint). */
  constructor(channel: H2Channel, address: Address, tlsWithoutClientCert = false) {
    this.channel = channel;
    this.address = address;
    this.#tlsWithoutClientCert = tlsWithoutClientCert;
  }

  /** Lists the daemon's workers. */
  async listWorkers(filter: string[]): Promise<WorkerRecord[]> {
    const res = await this.#unary(
      "ListWorkers",
      ListWorkersRequest.encode({ filter }).finish(),
    );
    return ListWorkersResponse.decode(res).record;
  }

  /** Asks the daemon for its version. */
  async info(deadline?: Date): Promise<InfoResponse> {
    const res = await this.#unary("Info", InfoRequest.encode({}).finish(), {
      deadline: deadline?.getTime(),
    });
    return InfoResponseCodec.decode(res);
  }

  /** Disk usage records. */
  async diskUsage(req: Partial<DiskUsageRequest>): Promise<UsageRecord[]> {
    const { DiskUsageRequest, DiskUsageResponse } = await cacheMessages();
    const res = await this.#unary(
      "DiskUsage",
      DiskUsageRequest.encode({ filter: [], ageLimit: 0n, ...req }).finish(),
    );
    return DiskUsageResponse.decode(res).record;
  }

  /** Prunes the cache, yielding one record per deleted entry as the daemon streams them. */
  async *prune(req: PruneRequest, signal?: AbortSignal): AsyncGenerator<UsageRecord> {
    const messages = await cacheMessages();
    const call = this.channel.call(controlPath("Prune"), { signal });
    const records = new MessageQueue(call, (m) => messages.UsageRecord.decode(m));
    call.write(messages.PruneRequest.encode(req).finish());
    call.end();
    try {
      yield* records;
    } catch (err) {
      throw this.mapError(err);
    } finally {
      call.cancel();
    }
  }

  /** Runs a Solve; rejects with the raw {@linkcode GrpcError} (callers word build failures). */
  async solve(req: SolveRequest, signal?: AbortSignal): Promise<SolveResponse> {
    const { SolveRequest, SolveResponse } = await solveMessages();
    const res = await this.channel.unary(
      controlPath("Solve"),
      SolveRequest.encode(req).finish(),
      { signal },
    );
    return SolveResponse.decode(res);
  }

  /** Follows a build's status; the returned call's `status` tells how it ended. */
  async status(
    ref: string,
    onUpdate: (s: StatusResponse) => void,
    signal?: AbortSignal,
  ): Promise<ClientCall> {
    const { StatusRequest, StatusResponse } = await solveMessages();
    const call = this.channel.call(controlPath("Status"), { signal });
    call.onMessage = (m) => onUpdate(StatusResponse.decode(m));
    call.write(StatusRequest.encode({ Ref: ref }).finish());
    call.end();
    return call;
  }

  /** Streams build history events until the daemon ends the stream. */
  async listenBuildHistory(
    req: Partial<BuildHistoryRequest>,
    onEvent: (e: BuildHistoryEvent) => void,
    opts: CallOptions = {},
  ): Promise<void> {
    const { BuildHistoryEvent, BuildHistoryRequest } = await historyMessages();
    try {
      await this.channel.serverStream(
        controlPath("ListenBuildHistory"),
        BuildHistoryRequest.encode(BuildHistoryRequest.fromPartial(req)).finish(),
        (m) => onEvent(BuildHistoryEvent.decode(m)),
        opts,
      );
    } catch (err) {
      throw this.mapError(err);
    }
  }

  /** Opens the `Control/Session` bidi stream with the given metadata (messages are raw bytes). */
  openSession(metadata: HeaderList, signal?: AbortSignal): ClientCall {
    return this.channel.call(SESSION_METHOD, { metadata, signal });
  }

  /** Converts a gRPC error from a call on this client into a {@linkcode BuildctlError}. */
  mapError(err: unknown): BuildctlError {
    const mapped = mapGrpcError(err, this.address);
    // Under TLS 1.3 a daemon that requires a client certificate refuses it
    // after the handshake: the first call then sees its alert, or only the
    // connection end, depending on timing.
    if (
      this.#tlsWithoutClientCert && mapped.exitCode === ExitCode.Unavailable &&
      /CertificateRequired|certificate required|EPIPE|ECONNRESET|connection closed/i.test(
        mapped.message,
      )
    ) {
      return new BuildctlError(mapped.message, {
        exitCode: ExitCode.Unavailable,
        cause: err,
        hint:
          "the daemon ended the TLS connection; if it requires client certificates, pass --tlscert and --tlskey (or --tlsdir)",
      });
    }
    return mapped;
  }

  /** Closes the connection (calls still open end as UNAVAILABLE). */
  close(): void {
    this.channel.close();
  }

  async #unary(
    method: ControlMethod,
    request: Uint8Array,
    opts?: CallOptions,
  ): Promise<Uint8Array> {
    try {
      return await this.channel.unary(controlPath(method), request, opts);
    } catch (err) {
      throw this.mapError(err);
    }
  }
}

/** Response messages of a call as an async iterable; it throws the call's error status. */
class MessageQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #wake: (() => void) | undefined;
  #done = false;
  #error: GrpcError | undefined;

  constructor(call: ClientCall, decode: (m: Uint8Array) => T) {
    call.onMessage = (m) => {
      this.#items.push(decode(m));
      this.#wake?.();
    };
    call.status.then((s) => {
      if (s.code !== GrpcCode.OK) this.#error = new GrpcError(s);
      this.#done = true;
      this.#wake?.();
    });
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      while (this.#items.length > 0) yield this.#items.shift()!;
      if (this.#done) {
        if (this.#error) throw this.#error;
        return;
      }
      await new Promise<void>((r) => this.#wake = r);
      this.#wake = undefined;
    }
  }
}

/**
 * Connects to the daemon: opens the socket (a unix socket must exist and
 * accept), starts HTTP/2, and with `wait` retries `Info` every second until
 * it answers or the timeout passes.
 *
 * @throws {BuildctlError} `cannot connect to buildkitd at <addr>: <reason>` (exit 69).
 */
export async function connect(opts: ConnectOptions): Promise<BuildkitClient> {
  const { address } = opts;
  const deadline = opts.timeoutMs > 0 ? Date.now() + opts.timeoutMs : Infinity;
  const tls = await tlsMaterial(address, opts.tls ?? {});

  let transport: Transport;
  for (;;) {
    try {
      transport = await withDeadline(openTransport(address, tls), deadline, address);
      break;
    } catch (err) {
      if (err instanceof BuildctlError) throw err;
      if (err instanceof Deno.errors.NotCapable) throw err;
      const reason = describeConnectError(err);
      if (!opts.wait || Date.now() + 1000 > deadline || opts.signal?.aborted) {
        throw unavailable(address, reason, err);
      }
    }
    await delay(1000, opts.signal);
  }

  const channel = new H2Channel(transport, {
    authority: address.scheme === "unix" ? "localhost" : hostPort(address),
    scheme: tls ? "https" : "http",
    window: RECEIVE_WINDOW,
    maxReceiveMessage: MAX_MESSAGE_SIZE,
  });
  const client = new BuildkitClient(channel, address, tls !== undefined && !tls.cert);
  try {
    if (opts.wait) await waitForInfo(client, deadline, opts.signal);
  } catch (err) {
    client.close();
    throw err;
  }
  return client;
}

async function waitForInfo(
  client: BuildkitClient,
  deadline: number,
  signal?: AbortSignal,
): Promise<void> {
  for (;;) {
    try {
      await client.info(Number.isFinite(deadline) ? new Date(deadline) : undefined);
      return;
    } catch (err) {
      const grpcCode = ((err as BuildctlError).cause as GrpcError | undefined)?.code;
      if (grpcCode === GrpcCode.UNIMPLEMENTED) return;
      if (grpcCode !== GrpcCode.UNAVAILABLE || Date.now() + 1000 > deadline || signal?.aborted) {
        throw err;
      }
    }
    await delay(1000, signal);
  }
}

/** TLS settings read from the flag files, or undefined for cleartext. */
interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
  serverName?: string;
}

async function openTransport(address: Address, tls: TlsMaterial | undefined): Promise<Transport> {
  if (address.scheme === "unix") {
    return connTransport(await Deno.connect({ transport: "unix", path: address.path }));
  }
  if (!tls) {
    const conn = await Deno.connect({ hostname: address.host, port: address.port });
    conn.setNoDelay(true);
    return connTransport(conn);
  }
  // node:tls, because Deno's TLS API cannot verify against a name other than the dialed host.
  const nodeTls = await import("node:tls");
  const socket = nodeTls.connect({
    host: address.host,
    port: address.port,
    servername: tls.serverName ?? (isIp(address.host) ? undefined : address.host),
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    ALPNProtocols: ["h2"],
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
  });
  socket.setNoDelay(true);
  return {
    start(onData, onClose) {
      let closed = false;
      const end = (err?: Error) => {
        if (closed) return;
        closed = true;
        onClose(err);
      };
      socket.on("data", (b: Uint8Array) => onData(b));
      socket.on("end", () => end());
      socket.on("close", () => end());
      socket.on("error", (err: Error) => end(err));
    },
    write(buf) {
      return new Promise((resolve, reject) => {
        socket.write(buf, (err?: Error | null) => err ? reject(err) : resolve());
      });
    },
    close() {
      socket.destroy();
    },
  };
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(":");
}

function hostPort(address: Address & { scheme: "tcp" }): string {
  return `${address.host.includes(":") ? `[${address.host}]` : address.host}:${address.port}`;
}

function withDeadline<T>(p: Promise<T>, deadline: number, address: Address): Promise<T> {
  if (!Number.isFinite(deadline)) return p;
  let cancelTimer: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    cancelTimer = after(
      deadline - Date.now(),
      () => reject(unavailable(address, "no answer within the timeout")),
    );
  });
  return Promise.race([p, timeout]).finally(() => cancelTimer?.());
}

async function tlsMaterial(address: Address, tls: TlsFiles): Promise<TlsMaterial | undefined> {
  const wantsTls = tls.caCert || tls.cert || tls.key;
  if (!wantsTls) return undefined;
  if (address.scheme !== "tcp") {
    // Upstream ignores TLS on unix sockets; so do we.
    return undefined;
  }
  if ((tls.cert && !tls.key) || (!tls.cert && tls.key)) {
    throw new BuildctlError("--tlscert and --tlskey must be given together", {
      exitCode: ExitCode.Usage,
    });
  }
  const read = async (flag: string, path: string | undefined) => {
    if (!path) return undefined;
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      throw new BuildctlError(`cannot read ${flag} file "${path}": ${(err as Error).message}`, {
        exitCode: ExitCode.Usage,
        cause: err,
      });
    }
  };
  const out: TlsMaterial = {};
  const ca = await read("--tlscacert", tls.caCert);
  const cert = await read("--tlscert", tls.cert);
  const key = await read("--tlskey", tls.key);
  if (ca !== undefined) out.ca = ca;
  if (cert !== undefined) out.cert = cert;
  if (key !== undefined) out.key = key;
  if (tls.serverName) out.serverName = tls.serverName;
  return out;
}

function unavailable(address: Address, reason: string, cause?: unknown): BuildctlError {
  return new BuildctlError(`cannot connect to buildkitd at ${address.url}: ${reason}`, {
    exitCode: ExitCode.Unavailable,
    hint: address.scheme === "unix"
      ? "start the daemon (buildctl daemon start), or point --addr / BUILDKIT_HOST at a running one"
      : "check that buildkitd listens there and that the TLS settings match",
    cause,
  });
}

/** Maps a gRPC error to a {@linkcode BuildctlError}; other errors pass through wrapped. */
export function mapGrpcError(err: unknown, address: Address): BuildctlError {
  if (err instanceof BuildctlError) return err;
  if (!(err instanceof GrpcError)) {
    return new BuildctlError(err instanceof Error ? err.message : String(err), { cause: err });
  }
  const details = err.details || err.message || "unknown error";
  switch (err.code) {
    case GrpcCode.UNAVAILABLE:
      return unavailable(address, details, err);
    case GrpcCode.DEADLINE_EXCEEDED:
      return new BuildctlError(`buildkitd at ${address.url} did not answer in time: ${details}`, {
        exitCode: ExitCode.Unavailable,
        hint: "raise --timeout, or check the daemon's logs",
        cause: err,
      });
    case GrpcCode.PERMISSION_DENIED:
    case GrpcCode.UNAUTHENTICATED:
      return new BuildctlError(details, { exitCode: ExitCode.NoPermission, cause: err });
    case GrpcCode.CANCELLED:
      return new BuildctlError(details, { exitCode: ExitCode.Interrupted, cause: err });
    default:
      return new BuildctlError(details, { exitCode: ExitCode.Failure, cause: err });
  }
}
