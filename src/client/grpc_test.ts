// The gRPC client (grpc.ts) against two kinds of peers over real unix sockets:
// a scripted HTTP/2 server written with raw frames (for protocol edge cases:
// flow control, resets, GOAWAY, CONTINUATION, HPACK state, bad responses),
// and our own gRPC server (src/session/grpc_server.ts) for whole calls.

import assert from "node:assert/strict";
import * as net from "node:net";
import { join } from "node:path";
import { encodeHeaders, HpackDecoder } from "../launcher/hpack.ts";
import {
  concatBytes,
  Flag,
  frame as rawFrame,
  FRAME_HEADER_BYTES,
  FrameSplitter,
  FrameType as T,
  H2Code,
  PREFACE,
  readU31,
  rstStream,
  unpadded,
  windowUpdate,
} from "../launcher/h2_frames.ts";
import { GrpcStatusError, type Handler, serveGrpc, Status } from "../session/grpc_server.ts";
import {
  type ChannelOptions,
  connTransport,
  GrpcCode,
  GrpcError,
  grpcTimeout,
  H2Channel,
  type HeaderList,
  percentDecode,
  type Transport,
} from "./grpc.ts";

// ---------------------------------------------------------------------------------------------
// Frame and message helpers

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One gRPC length-prefixed message. */
function msg(payload: Uint8Array | string): Uint8Array {
  const p = typeof payload === "string" ? enc.encode(payload) : payload;
  const out = new Uint8Array(5 + p.length);
  new DataView(out.buffer).setUint32(1, p.length);
  out.set(p, 5);
  return out;
}

/** Deterministic test bytes. */
function pattern(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function settingsFrame(entries: [number, number][]): Uint8Array {
  const p = new Uint8Array(entries.length * 6);
  const dv = new DataView(p.buffer);
  entries.forEach(([id, v], i) => {
    dv.setUint16(i * 6, id);
    dv.setUint32(i * 6 + 2, v);
  });
  return rawFrame(T.SETTINGS, 0, 0, p);
}

function headersFrame(
  stream: number,
  fields: HeaderList,
  opts: { endStream?: boolean; endHeaders?: boolean } = {},
): Uint8Array {
  let flags = opts.endHeaders === false ? 0 : Flag.END_HEADERS;
  if (opts.endStream) flags |= Flag.END_STREAM;
  return rawFrame(T.HEADERS, flags, stream, encodeHeaders(fields));
}

function dataFrame(stream: number, payload: Uint8Array, endStream = false): Uint8Array {
  return rawFrame(T.DATA, endStream ? Flag.END_STREAM : 0, stream, payload);
}

function goawayFrame(lastId: number, code: number, debug = ""): Uint8Array {
  const d = enc.encode(debug);
  const p = new Uint8Array(8 + d.length);
  new DataView(p.buffer).setUint32(0, lastId);
  new DataView(p.buffer).setUint32(4, code);
  p.set(d, 8);
  return rawFrame(T.GOAWAY, 0, 0, p);
}

function pingFrame(payload: Uint8Array, ack = false): Uint8Array {
  return rawFrame(T.PING, ack ? Flag.ACK : 0, 0, payload);
}

const RESPONSE_HEADERS: HeaderList = [[":status", "200"], ["content-type", "application/grpc"]];
const OK_TRAILERS: HeaderList = [["grpc-status", "0"]];

/** Response headers, one message, OK trailers. */
function okResponse(stream: number, body: Uint8Array | string): Uint8Array {
  return concatBytes([
    headersFrame(stream, RESPONSE_HEADERS),
    dataFrame(stream, msg(body)),
    headersFrame(stream, OK_TRAILERS, { endStream: true }),
  ]);
}

function u32(p: Uint8Array): number {
  return new DataView(p.buffer, p.byteOffset, p.length).getUint32(0);
}

// ---------------------------------------------------------------------------------------------
// The scripted server: the test's side of one connection

/** A frame the client sent (payload copied; `fields` on the frame that completes a header block). */
interface Frame {
  type: number;
  flags: number;
  stream: number;
  /** The whole payload, padding included. */
  payload: Uint8Array;
  /** Decoded header block, on the HEADERS/CONTINUATION frame with END_HEADERS. */
  fields?: [string, string][];
}

/** A frame predicate: of `type`, on `stream` (any if undefined), and `pred`. */
function is(
  type: number,
  stream?: number,
  pred: (f: Frame) => boolean = () => true,
): (f: Frame) => boolean {
  return (f) => f.type === type && (stream === undefined || f.stream === stream) && pred(f);
}

/** Frames of the client's side, parsed as they arrive; writes raw bytes back. */
class Peer {
  /** Every frame received so far, in order. */
  readonly frames: Frame[] = [];
  /** Settles when the client's side has ended (EOF) or the socket was closed. */
  readonly done: Promise<void>;
  #conn: Deno.Conn;
  #decoder = new HpackDecoder();
  #block: Uint8Array[] = [];
  #waiters = new Set<() => void>();
  #eof = false;
  #cursor = 0;
  #closed = false;
  #error: unknown;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.done = this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const splitter = new FrameSplitter();
    let preface: Uint8Array | undefined = new Uint8Array(0);
    const buf = new Uint8Array(64 << 10);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        let chunk: Uint8Array = buf.slice(0, n);
        if (preface) {
          const got = concatBytes([preface, chunk]);
          if (got.length < PREFACE.length) {
            preface = got;
            continue;
          }
          assert.deepEqual(got.subarray(0, PREFACE.length), PREFACE, "client preface");
          preface = undefined;
          chunk = got.subarray(PREFACE.length);
        }
        splitter.push(chunk, (b, off, len) => this.#onFrame(b, off, len));
        this.#wake();
      }
    } catch (err) {
      // A reset when the client goes away first is an ending like EOF; a failed check is not.
      if (!this.#closed) this.#error = err;
    } finally {
      this.#eof = true;
      this.#wake();
    }
  }

  #onFrame(b: Uint8Array, off: number, len: number): void {
    const f: Frame = {
      type: b[off + 3]!,
      flags: b[off + 4]!,
      stream: readU31(b, off + 5),
      payload: b.slice(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len),
    };
    if (f.type === T.HEADERS || f.type === T.CONTINUATION) {
      this.#block.push(f.type === T.HEADERS ? unpadded(b, off).slice() : f.payload);
      if (f.flags & Flag.END_HEADERS) {
        f.fields = this.#decoder.decode(concatBytes(this.#block));
        this.#block = [];
      }
    }
    this.frames.push(f);
  }

  #wake(): void {
    const w = [...this.#waiters];
    this.#waiters.clear();
    for (const r of w) r();
  }

  async #changed(what: string): Promise<void> {
    if (this.#eof) {
      const why = this.#error === undefined ? "" : ` (${this.#error})`;
      throw new Error(`the client's side ended before ${what}${why}`);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.#waiters.add(resolve);
        // A failsafe so that a broken client fails the test instead of hanging it.
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10_000);
      });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The first frame (of all received) matching `pred`, waiting for it if need be. */
  async waitFor(pred: (f: Frame) => boolean, what = "a frame"): Promise<Frame> {
    for (let i = 0;;) {
      for (; i < this.frames.length; i++) if (pred(this.frames[i]!)) return this.frames[i]!;
      await this.#changed(what);
    }
  }

  /** The next frame in order (a cursor of its own), or null at EOF. */
  async next(): Promise<Frame | null> {
    for (;;) {
      if (this.#cursor < this.frames.length) return this.frames[this.#cursor++]!;
      if (this.#eof) return null;
      await this.#changed("the next frame");
    }
  }

  /** Waits for EOF from the client. */
  async eof(): Promise<void> {
    while (!this.#eof) await this.#changed("EOF");
  }

  /** Sends a PING and waits for its ACK: everything the client sent before it has arrived. */
  async fence(): Promise<void> {
    const id = pattern(8, this.frames.length + 7);
    await this.send(pingFrame(id));
    await this.waitFor(
      (f) => f.type === T.PING && (f.flags & Flag.ACK) !== 0 && eq(f.payload, id),
      "the PING ACK",
    );
  }

  async send(...parts: Uint8Array[]): Promise<void> {
    const buf = concatBytes(parts);
    let off = 0;
    while (off < buf.length) off += await this.#conn.write(buf.subarray(off));
  }

  /** Closes the server's socket and waits for the read loop. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch { /* already closed */ }
    }
    await this.done;
    if (this.#error instanceof assert.AssertionError) throw this.#error;
  }
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

interface Fixture {
  ch: H2Channel;
  peer: Peer;
}

/**
 * A channel connected over a unix socket to a scripted server, which has sent
 * its SETTINGS (`settings`) and seen the client's ACK of them.
 */
async function withFakeServer(
  opts: { settings?: [number, number][]; channel?: Partial<ChannelOptions> },
  fn: (fx: Fixture) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "grpc-test-" });
  const path = join(dir, "h2.sock");
  const listener = Deno.listen({ transport: "unix", path });
  let ch: H2Channel | undefined;
  let peer: Peer | undefined;
  let failsafe: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  try {
    const accepted = listener.accept();
    const conn = await Deno.connect({ transport: "unix", path });
    ch = new H2Channel(connTransport(conn), {
      authority: "localhost",
      scheme: "http",
      ...opts.channel,
    });
    peer = new Peer(await accepted);
    await peer.send(settingsFrame(opts.settings ?? []));
    const first = await peer.waitFor(() => true, "the client's SETTINGS");
    assert.equal(first.type, T.SETTINGS, "the client's first frame is SETTINGS");
    await peer.waitFor(
      (f) => f.type === T.SETTINGS && (f.flags & Flag.ACK) !== 0,
      "the SETTINGS ACK",
    );
    // A failsafe: a client that never answers fails the test instead of hanging it.
    const channel = ch;
    failsafe = setTimeout(() => {
      timedOut = true;
      channel.close();
    }, 20_000);
    await fn({ ch, peer });
    if (timedOut) throw new Error("the test timed out (the channel was closed after 20 s)");
  } finally {
    clearTimeout(failsafe);
    ch?.close();
    await ch?.closed;
    await peer?.close();
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Waits for the request HEADERS of `stream`, and its END_STREAM. */
async function request(peer: Peer, stream: number): Promise<Frame> {
  const h = await peer.waitFor(is(T.HEADERS, stream), `HEADERS of stream ${stream}`);
  await peer.waitFor(
    (f) => f.stream === stream && f.type === T.DATA && (f.flags & Flag.END_STREAM) !== 0,
    `the end of request ${stream}`,
  );
  return h;
}

/** `ch.unary()`, its rejection marked handled: a test that fails early then fails alone. */
function unary(
  ch: H2Channel,
  ...args: Parameters<H2Channel["unary"]>
): Promise<Uint8Array> {
  const p = ch.unary(...args);
  p.catch(() => {});
  return p;
}

/** `ch.serverStream()`, its rejection marked handled. */
function serverStream(
  ch: H2Channel,
  ...args: Parameters<H2Channel["serverStream"]>
): Promise<void> {
  const p = ch.serverStream(...args);
  p.catch(() => {});
  return p;
}

async function rejectsWith(
  p: Promise<unknown>,
  code: number,
  detailsRe?: RegExp,
): Promise<GrpcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof GrpcError, `not a GrpcError: ${err}`);
    assert.equal(err.code, code, `code of "${err.message}"`);
    if (detailsRe) assert.match(err.details, detailsRe);
    return err;
  }
  assert.fail(`expected a GrpcError with code ${code}`);
}

// ---------------------------------------------------------------------------------------------
// Requests

Deno.test("unary call: request HEADERS fields, metadata order, grpc-timeout, request DATA", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const deadline = Date.now() + 30_000;
    const big = "v".repeat(20_000); // a header block over 16 KiB: HEADERS + CONTINUATION
    const reply = unary(ch, "/pkg.Svc/Method", enc.encode("ping"), {
      deadline,
      metadata: [["x-a", "1"], ["X-B", "two"], ["x-a", "3"], ["x-big", big]],
    });
    const h = await request(peer, 1);
    const fields = (await peer.waitFor((f) => f.stream === 1 && f.fields !== undefined)).fields!;
    assert.equal(h.flags & Flag.END_STREAM, 0, "HEADERS does not end the request");
    assert.ok(
      peer.frames.some(is(T.CONTINUATION, 1)),
      "a big header block continues in CONTINUATION",
    );
    const pseudo = fields.filter(([k]) => k.startsWith(":"));
    assert.deepEqual(pseudo.map(([k]) => k).sort(), [":authority", ":method", ":path", ":scheme"]);
    assert.ok(
      fields.findIndex(([k]) => !k.startsWith(":")) >
        fields.findLastIndex(([k]) => k.startsWith(":")),
      "pseudo-headers come first",
    );
    const get = (name: string) => fields.filter(([k]) => k === name).map(([, v]) => v);
    assert.deepEqual(get(":method"), ["POST"]);
    assert.deepEqual(get(":path"), ["/pkg.Svc/Method"]);
    assert.deepEqual(get(":scheme"), ["http"]);
    assert.deepEqual(get(":authority"), ["localhost"]);
    assert.deepEqual(get("content-type"), ["application/grpc"]);
    assert.deepEqual(get("te"), ["trailers"]);
    assert.deepEqual(
      fields.filter(([k]) => k.startsWith("x-")),
      [["x-a", "1"], ["x-b", "two"], ["x-a", "3"], ["x-big", big]],
    );
    const timeout = get("grpc-timeout");
    assert.equal(timeout.length, 1);
    assert.match(timeout[0]!, /^\d{1,8}m$/);
    const ms = parseInt(timeout[0]!);
    assert.ok(ms <= 30_000 && ms > 25_000, `grpc-timeout ${timeout[0]}`);
    // The request body: one framed message, ended.
    const body = concatBytes(peer.frames.filter(is(T.DATA, 1)).map((f) => f.payload));
    assert.deepEqual(body, msg("ping"));

    await peer.send(okResponse(1, "pong"));
    assert.equal(dec.decode(await reply), "pong");

    // Without a deadline there is no grpc-timeout.
    const reply2 = unary(ch, "/pkg.Svc/Other", new Uint8Array(0));
    const h2 = await request(peer, 3);
    assert.ok(!h2.fields!.some(([k]) => k === "grpc-timeout"));
    assert.deepEqual(h2.fields!.filter(([k]) => k === ":path"), [[":path", "/pkg.Svc/Other"]]);
    await peer.send(okResponse(3, ""));
    assert.equal((await reply2).length, 0);
  });
});

Deno.test("response messages split over DATA frames, several in one frame, and padded DATA", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const got: Uint8Array[] = [];
    const done = serverStream(ch, "/pkg.Svc/Stream", enc.encode("go"), (m) => got.push(m));
    await request(peer, 1);
    const big = pattern(40_000);
    const m1 = msg(big);
    const small = [enc.encode("first"), new Uint8Array(0), enc.encode("third")];
    const padded = (payload: Uint8Array, pad: number) => {
      const p = new Uint8Array(1 + payload.length + pad);
      p[0] = pad;
      p.set(payload, 1);
      p.fill(0xee, 1 + payload.length);
      return rawFrame(T.DATA, Flag.PADDED, 1, p);
    };
    await peer.send(
      headersFrame(1, RESPONSE_HEADERS),
      // The prefix itself is cut after 3 bytes; the body at odd offsets.
      dataFrame(1, m1.subarray(0, 3)),
      dataFrame(1, m1.subarray(3, 10_001)),
      padded(m1.subarray(10_001, 25_000), 17),
      dataFrame(1, m1.subarray(25_000)),
      // Three messages in one frame, then one cut across a padded frame and a plain one.
      dataFrame(1, concatBytes(small.map(msg))),
      padded(msg("last").subarray(0, 7), 3),
      dataFrame(1, msg("last").subarray(7)),
      headersFrame(1, OK_TRAILERS, { endStream: true }),
    );
    await done;
    assert.equal(got.length, 5);
    assert.deepEqual(got[0], big);
    assert.deepEqual(got.slice(1, 4).map((m) => dec.decode(m)), ["first", "", "third"]);
    assert.equal(dec.decode(got[4]), "last");
  });
});

Deno.test("a request bigger than the server's windows follows flow control, in frames of at most 16 KiB", async () => {
  await withFakeServer({ settings: [[0x4, 1000]] }, async ({ ch, peer }) => {
    const request = pattern(300_000, 3);
    const reply = unary(ch, "/pkg.Svc/Upload", request);
    let streamWindow = 1000;
    let connWindow = 65_535;
    let largest = 0;
    let connRefills = 0;
    const parts: Uint8Array[] = [];
    for (;;) {
      const f = await peer.next();
      assert.ok(f, "the client went away");
      if (f.type !== T.DATA) continue;
      assert.equal(f.stream, 1);
      streamWindow -= f.payload.length;
      connWindow -= f.payload.length;
      assert.ok(streamWindow >= 0, `stream window overrun by ${-streamWindow} bytes`);
      assert.ok(connWindow >= 0, `connection window overrun by ${-connWindow} bytes`);
      assert.ok(f.payload.length <= 16_384, `DATA frame of ${f.payload.length} bytes`);
      largest = Math.max(largest, f.payload.length);
      parts.push(f.payload);
      if (f.flags & Flag.END_STREAM) break;
      if (f.payload.length === 0) continue;
      // The stream gets more than was read, so that its window soon outgrows both a frame and
      // the connection's window; the connection gets its window back only once the client has
      // used all of it. So first the stream's window limits the client, then the connection's.
      const inc = f.payload.length * 4;
      streamWindow += inc;
      await peer.send(windowUpdate(1, inc));
      if (connWindow === 0) {
        connWindow = 65_535;
        connRefills++;
        await peer.send(windowUpdate(0, 65_535));
      }
    }
    assert.equal(largest, 16_384, "the windows grew enough to reach the frame size limit");
    assert.ok(connRefills >= 3, `the connection's window ran out ${connRefills} times`);
    const body = concatBytes(parts);
    assert.deepEqual(body, msg(request));
    await peer.send(okResponse(1, String(body.length)));
    assert.equal(dec.decode(await reply), String(5 + request.length));
  });
});

Deno.test("INITIAL_WINDOW_SIZE lowered mid-call shrinks the open call's window below zero", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const request = pattern(200_000, 5);
    const reply = unary(ch, "/pkg.Svc/Upload", request);
    // Nothing is granted until the client has acknowledged the new setting, so by then it has
    // sent at most the default 65535 bytes; afterwards the stream may carry 1000 + grants - sent.
    await peer.waitFor(is(T.DATA, 1), "the first DATA frame");
    const acks = () => peer.frames.filter((f) => f.type === T.SETTINGS && f.flags & Flag.ACK);
    const acksBefore = acks().length;
    await peer.send(settingsFrame([[0x4, 1000]]));
    await peer.waitFor(() => acks().length > acksBefore, "the ACK of the new SETTINGS");
    const ackIndex = peer.frames.indexOf(acks()[acksBefore]!);
    let streamWindow = 65_535;
    let connWindow = 65_535;
    const parts: Uint8Array[] = [];
    for (let i = 0;; i++) {
      const f = await peer.next(); // frames[i]: this test is the first to use next()
      assert.ok(f, "the client went away");
      if (i === ackIndex) {
        streamWindow += 1000 - 65_535;
        // Room for 5000 more bytes on the stream if (and only if) the change was applied.
        const inc = 5000 - streamWindow;
        streamWindow += inc;
        connWindow += 1 << 20;
        await peer.send(windowUpdate(1, inc), windowUpdate(0, 1 << 20));
      }
      if (f.type !== T.DATA) continue;
      streamWindow -= f.payload.length;
      connWindow -= f.payload.length;
      assert.ok(streamWindow >= 0, `stream window overrun by ${-streamWindow} bytes`);
      assert.ok(connWindow >= 0, `connection window overrun by ${-connWindow} bytes`);
      parts.push(f.payload);
      if (f.flags & Flag.END_STREAM) break;
      if (i > ackIndex && f.payload.length > 0) {
        streamWindow += f.payload.length;
        await peer.send(windowUpdate(1, f.payload.length));
      }
    }
    assert.deepEqual(concatBytes(parts), msg(request));
    await peer.send(okResponse(1, "done"));
    assert.equal(dec.decode(await reply), "done");
  });
});

Deno.test("a server's SETTINGS gets an ACK, a PING a PING ACK with its payload; the client's own SETTINGS", async () => {
  await withFakeServer({ channel: { window: 1 << 20 } }, async ({ peer }) => {
    const ours = peer.frames[0]!;
    assert.equal(ours.type, T.SETTINGS);
    assert.equal(ours.flags, 0);
    const entries = new Map<number, number>();
    for (let i = 0; i < ours.payload.length; i += 6) {
      entries.set(
        new DataView(ours.payload.buffer).getUint16(i),
        new DataView(ours.payload.buffer).getUint32(i + 2),
      );
    }
    assert.equal(entries.get(0x2), 0, "push disabled");
    assert.equal(entries.get(0x4), 1 << 20, "stream receive window");
    const connGrant = await peer.waitFor(is(T.WINDOW_UPDATE, 0), "the connection window");
    assert.equal(readU31(connGrant.payload, 0), (1 << 20) - 65_535);

    const acksBefore = peer.frames.filter((f) =>
      f.type === T.SETTINGS && f.flags & Flag.ACK
    ).length;
    await peer.send(settingsFrame([[0x3, 100], [0x5, 32_768], [0x1234, 5]]));
    await peer.waitFor(
      (f) =>
        f.type === T.SETTINGS && (f.flags & Flag.ACK) !== 0 && f.stream === 0 &&
        f.payload.length === 0 &&
        peer.frames.filter((g) => g.type === T.SETTINGS && g.flags & Flag.ACK).length > acksBefore,
      "a second SETTINGS ACK",
    );

    const payload = Uint8Array.of(1, 2, 3, 4, 250, 251, 252, 253);
    await peer.send(pingFrame(payload));
    const ack = await peer.waitFor(is(T.PING, 0, (f) => (f.flags & Flag.ACK) !== 0));
    assert.deepEqual(ack.payload, payload);
    // A PING ACK from the server is not answered.
    await peer.send(pingFrame(pattern(8, 99), true));
    await peer.fence();
    assert.equal(
      peer.frames.filter((f) => f.type === T.PING && eq(f.payload, pattern(8, 99))).length,
      0,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Statuses

Deno.test("trailers-only error: code, percent-decoded UTF-8 details, grpc-status-details-bin", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const details = Uint8Array.of(8, 7, 18, 4, 0xff, 0x00, 0x80, 0x41, 0xfe); // 9 bytes
    const details2 = Uint8Array.of(1, 2, 3, 4); // base64 needs "==" padding
    const b64 = (b: Uint8Array) => btoa(String.fromCharCode(...b)).replace(/=+$/, "");
    const call1 = unary(ch, "/pkg.Svc/Denied", enc.encode("x"));
    const call2 = unary(ch, "/pkg.Svc/Denied", enc.encode("x"));
    await request(peer, 1);
    await request(peer, 3);
    await peer.send(
      headersFrame(1, [
        ...RESPONSE_HEADERS,
        ["grpc-status", "7"],
        ["grpc-message", "caf%C3%A9 %E2%9C%93 100%25 denied"],
        ["grpc-status-details-bin", b64(details)],
        ["x-extra", "kept"],
      ], { endStream: true }),
      headersFrame(3, [
        ...RESPONSE_HEADERS,
        ["grpc-status", "5"],
        ["grpc-status-details-bin", b64(details2)],
      ], { endStream: true }),
    );
    const err = await rejectsWith(call1, GrpcCode.PERMISSION_DENIED);
    assert.equal(err.details, "café ✓ 100% denied");
    assert.equal(err.message, "PERMISSION_DENIED: café ✓ 100% denied");
    assert.deepEqual(err.statusDetails, details);
    assert.ok(err.metadata.some(([k, v]) => k === "x-extra" && v === "kept"));
    assert.ok(!err.metadata.some(([k]) => k.startsWith(":")), "no pseudo-headers in metadata");
    const err2 = await rejectsWith(call2, GrpcCode.NOT_FOUND);
    assert.equal(err2.details, "");
    assert.deepEqual(err2.statusDetails, details2);
  });
});

Deno.test("a non-200 :status maps to a gRPC code (503 UNAVAILABLE, 404 UNIMPLEMENTED, 401 UNAUTHENTICATED)", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const calls = [503, 404, 401].map(() => unary(ch, "/pkg.Svc/M", enc.encode("x")));
    for (const id of [1, 3, 5]) await request(peer, id);
    await peer.send(
      headersFrame(1, [[":status", "503"], ["content-type", "text/plain"]], { endStream: true }),
      headersFrame(3, [[":status", "404"]]),
      dataFrame(3, enc.encode("not found"), true),
      headersFrame(5, [[":status", "401"], ["grpc-status", "0"]], { endStream: true }),
    );
    await rejectsWith(calls[0]!, GrpcCode.UNAVAILABLE, /HTTP status 503/);
    await rejectsWith(calls[1]!, GrpcCode.UNIMPLEMENTED, /HTTP status 404/);
    await rejectsWith(calls[2]!, GrpcCode.UNAUTHENTICATED, /HTTP status 401/);
  });
});

Deno.test("RST_STREAM from the server: CANCEL, REFUSED_STREAM, INTERNAL_ERROR; no RST back", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const cases: [number, number][] = [
      [H2Code.CANCEL, GrpcCode.CANCELLED],
      [H2Code.REFUSED_STREAM, GrpcCode.UNAVAILABLE],
      [H2Code.INTERNAL_ERROR, GrpcCode.INTERNAL],
    ];
    const calls = cases.map(() => ch.call("/pkg.Svc/M"));
    for (const [i] of cases.entries()) await peer.waitFor(is(T.HEADERS, 1 + 2 * i));
    await peer.send(...cases.map(([h2], i) => rstStream(1 + 2 * i, h2)));
    for (const [i, [h2, code]] of cases.entries()) {
      const s = await calls[i]!.status;
      assert.equal(s.code, code, `HTTP/2 code ${h2}`);
      assert.match(s.details, new RegExp(`HTTP/2 error ${h2}\\b`));
      assert.ok(calls[i]!.ended);
    }
    // Writes to a reset call are dropped; nothing is sent for it, not even a RST_STREAM.
    await calls[0]!.write(enc.encode("late"));
    calls[0]!.end();
    await peer.fence();
    assert.deepEqual(peer.frames.filter((f) => f.type === T.RST_STREAM || f.type === T.DATA), []);
  });
});

Deno.test("GOAWAY: calls above the last stream id fail UNAVAILABLE, the others complete, new calls fail at once", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const a = unary(ch, "/pkg.Svc/M", enc.encode("a"));
    const b = unary(ch, "/pkg.Svc/M", enc.encode("b"));
    const c = ch.call("/pkg.Svc/M");
    c.write(enc.encode("c"));
    c.end();
    for (const id of [1, 3, 5]) await request(peer, id);
    await peer.send(goawayFrame(3, H2Code.NO_ERROR, "shutting down"));
    const sc = await c.status;
    assert.equal(sc.code, GrpcCode.UNAVAILABLE);
    assert.match(sc.details, /GOAWAY 0: shutting down/);
    assert.equal(ch.usable, false);

    const late = ch.call("/pkg.Svc/M");
    assert.ok(late.ended, "a new call fails at once");
    assert.equal((await late.status).code, GrpcCode.UNAVAILABLE);
    await rejectsWith(unary(ch, "/pkg.Svc/M", enc.encode("d")), GrpcCode.UNAVAILABLE);

    // The calls the server accepted still complete; then the client closes the connection.
    await peer.send(okResponse(3, "B"), okResponse(1, "A"));
    assert.equal(dec.decode(await a), "A");
    assert.equal(dec.decode(await b), "B");
    await ch.closed;
    await peer.eof();
    const streams = new Set(peer.frames.filter((f) => f.type === T.HEADERS).map((f) => f.stream));
    assert.deepEqual([...streams], [1, 3, 5], "no HEADERS after GOAWAY");
  });
});

Deno.test("deadline: DEADLINE_EXCEEDED and RST_STREAM CANCEL; abort: CANCELLED and RST_STREAM CANCEL", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const t0 = Date.now();
    const slow = unary(ch, "/pkg.Svc/Slow", enc.encode("x"), { deadline: t0 + 80 });
    const h = await peer.waitFor(is(T.HEADERS, 1));
    assert.ok(h.fields!.some(([k, v]) => k === "grpc-timeout" && /^\d+m$/.test(v)));
    await peer.send(headersFrame(1, RESPONSE_HEADERS)); // and never more
    await rejectsWith(slow, GrpcCode.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 >= 75, "not before the deadline");
    const rst = await peer.waitFor(is(T.RST_STREAM, 1), "RST_STREAM of the expired call");
    assert.equal(u32(rst.payload), H2Code.CANCEL);

    // A deadline already past still sends the request but fails right away.
    await rejectsWith(
      unary(ch, "/pkg.Svc/Slow", enc.encode("x"), { deadline: Date.now() - 5 }),
      GrpcCode.DEADLINE_EXCEEDED,
    );

    const ac = new AbortController();
    const aborted = ch.call("/pkg.Svc/Stream", { signal: ac.signal });
    aborted.write(enc.encode("x"));
    const id = aborted.id;
    await peer.waitFor(is(T.HEADERS, id));
    ac.abort();
    const s = await aborted.status;
    assert.equal(s.code, GrpcCode.CANCELLED);
    const rst2 = await peer.waitFor(is(T.RST_STREAM, id), "RST_STREAM of the aborted call");
    assert.equal(u32(rst2.payload), H2Code.CANCEL);

    // An already aborted signal: nothing goes out.
    const pre = ch.call("/pkg.Svc/Stream", { signal: AbortSignal.abort() });
    assert.ok(pre.ended);
    assert.equal((await pre.status).code, GrpcCode.CANCELLED);
    await peer.fence();
    assert.ok(!peer.frames.some((f) => f.stream === pre.id));

    // The connection is still fine.
    const ok = ch.call("/pkg.Svc/M");
    const answers: string[] = [];
    ok.onMessage = (m) => answers.push(dec.decode(m));
    ok.write(enc.encode("y"));
    ok.end();
    await request(peer, ok.id);
    await peer.send(okResponse(ok.id, "fine"));
    assert.equal((await ok.status).code, GrpcCode.OK);
    assert.deepEqual(answers, ["fine"]);
  });
});

Deno.test("the server closing the socket mid-call: UNAVAILABLE, closed settles, new calls fail", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const got: Uint8Array[] = [];
    const call = serverStream(ch, "/pkg.Svc/Stream", enc.encode("x"), (m) => got.push(m));
    await request(peer, 1);
    await peer.send(
      headersFrame(1, RESPONSE_HEADERS),
      dataFrame(1, msg("one")),
      dataFrame(1, msg("two, cut").subarray(0, 8)),
    );
    await peer.close();
    await rejectsWith(call, GrpcCode.UNAVAILABLE, /closed/);
    await ch.closed;
    assert.deepEqual(got.map((m) => dec.decode(m)), ["one"]);
    assert.equal(ch.usable, false);
    await rejectsWith(unary(ch, "/pkg.Svc/M", enc.encode("x")), GrpcCode.UNAVAILABLE);
  });
});

Deno.test("a protocol violation by the server: calls fail UNAVAILABLE, GOAWAY PROTOCOL_ERROR goes out", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const call = unary(ch, "/pkg.Svc/M", enc.encode("x"));
    await request(peer, 1);
    // RST_STREAM must carry 4 bytes.
    await peer.send(rawFrame(T.RST_STREAM, 0, 1, new Uint8Array(3)));
    await rejectsWith(call, GrpcCode.UNAVAILABLE, /protocol error/);
    await ch.closed;
    const goaway = await peer.waitFor(is(T.GOAWAY, 0), "GOAWAY");
    assert.equal(new DataView(goaway.payload.buffer).getUint32(4), H2Code.PROTOCOL_ERROR);
    await peer.eof();
  });
});

Deno.test("response headers over HEADERS + CONTINUATION with the server's HPACK dynamic table", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    // Literal with incremental indexing, new name: 0x40, name, value (no Huffman).
    const indexed = (name: string, value: string) => {
      const n = enc.encode(name);
      const v = enc.encode(value);
      return Uint8Array.of(0x40, n.length, ...n, v.length, ...v);
    };
    const call1 = ch.call("/pkg.Svc/M");
    call1.end();
    const call2 = ch.call("/pkg.Svc/M");
    call2.end();
    const msgs: string[] = [];
    call1.onMessage = (m) => msgs.push(dec.decode(m));
    await peer.waitFor(is(T.HEADERS, 3));

    // Stream 1: ":status 200" indexed (0x88); two fields added to the dynamic table, the block
    // cut in three (HEADERS + CONTINUATION + CONTINUATION), the cut inside a string.
    const block1 = concatBytes([
      Uint8Array.of(0x88),
      indexed("content-type", "application/grpc"), // dynamic index 63 after the next one
      indexed("x-trace", "abc123"), // dynamic index 62
    ]);
    await peer.send(
      rawFrame(T.HEADERS, 0, 1, block1.subarray(0, 5)),
      rawFrame(T.CONTINUATION, 0, 1, block1.subarray(5, 20)),
      rawFrame(T.CONTINUATION, Flag.END_HEADERS, 1, block1.subarray(20)),
      dataFrame(1, msg("hello")),
      // Trailers: x-trace again from the table, grpc-status 0 added to it (index 62 afterwards).
      rawFrame(
        T.HEADERS,
        Flag.END_HEADERS | Flag.END_STREAM,
        1,
        concatBytes([Uint8Array.of(0x80 | 62), indexed("grpc-status", "0")]),
      ),
    );
    const s1 = await call1.status;
    assert.equal(s1.code, GrpcCode.OK, s1.details);
    assert.deepEqual(msgs, ["hello"]);
    assert.deepEqual(s1.metadata, [
      ["content-type", "application/grpc"],
      ["x-trace", "abc123"],
      ["x-trace", "abc123"],
      ["grpc-status", "0"],
    ]);

    // Stream 3: trailers-only, all from the table (62 grpc-status, 63 x-trace, 64 content-type),
    // HEADERS (END_STREAM) + CONTINUATION (END_HEADERS).
    await peer.send(
      rawFrame(T.HEADERS, Flag.END_STREAM, 3, Uint8Array.of(0x88, 0x80 | 64)),
      rawFrame(T.CONTINUATION, Flag.END_HEADERS, 3, Uint8Array.of(0x80 | 63, 0x80 | 62)),
    );
    const s2 = await call2.status;
    assert.equal(s2.code, GrpcCode.OK, s2.details);
    assert.deepEqual(s2.metadata, [
      ["content-type", "application/grpc"],
      ["x-trace", "abc123"],
      ["grpc-status", "0"],
    ]);
  });
});

/** An in-memory transport: the test feeds server bytes synchronously. */
class MemTransport implements Transport {
  written: Uint8Array[] = [];
  #onData?: (c: Uint8Array) => void;
  #onClose?: (err?: Error) => void;
  closed = false;
  start(onData: (c: Uint8Array) => void, onClose: (err?: Error) => void): void {
    this.#onData = onData;
    this.#onClose = onClose;
  }
  write(buf: Uint8Array): Promise<void> {
    this.written.push(buf.slice());
    return Promise.resolve();
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#onClose?.();
  }
  feed(...parts: Uint8Array[]): void {
    this.#onData!(concatBytes(parts));
  }
}

Deno.test("HPACK state survives a call that ends between its HEADERS and CONTINUATION", async () => {
  const t = new MemTransport();
  const ch = new H2Channel(t, { authority: "localhost", scheme: "http" });
  try {
    const a = ch.call("/pkg.Svc/A");
    const b = ch.call("/pkg.Svc/B");
    b.end();
    const block = concatBytes([
      Uint8Array.of(0x88),
      Uint8Array.of(0x40, 7, ...enc.encode("x-trace"), 3, ...enc.encode("xyz")),
    ]);
    t.feed(rawFrame(T.HEADERS, 0, 1, block.subarray(0, 4)));
    a.cancel(); // the call is gone while its header block is still open
    t.feed(rawFrame(T.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(4)));
    // Stream 3 refers to the entry that stream 1's block added.
    t.feed(
      rawFrame(
        T.HEADERS,
        Flag.END_HEADERS | Flag.END_STREAM,
        3,
        concatBytes([Uint8Array.of(0x88, 0x80 | 62), encodeHeaders([["grpc-status", "0"]])]),
      ),
    );
    const s = await b.status;
    assert.equal(s.code, GrpcCode.OK, s.details);
    assert.deepEqual(s.metadata, [["x-trace", "xyz"], ["grpc-status", "0"]]);
    assert.equal((await a.status).code, GrpcCode.CANCELLED);
    assert.ok(ch.usable);
  } finally {
    ch.close();
    await ch.closed;
  }
});

Deno.test("a response message over maxReceiveMessage is RESOURCE_EXHAUSTED (the limit itself is fine)", async () => {
  await withFakeServer({ channel: { maxReceiveMessage: 1000 } }, async ({ ch, peer }) => {
    const fits = unary(ch, "/pkg.Svc/M", enc.encode("x"));
    const over = unary(ch, "/pkg.Svc/M", enc.encode("x"));
    await request(peer, 1);
    await request(peer, 3);
    await peer.send(okResponse(1, pattern(1000)));
    assert.deepEqual(await fits, pattern(1000));
    // Only the prefix is needed to refuse it.
    await peer.send(
      headersFrame(3, RESPONSE_HEADERS),
      dataFrame(3, msg(pattern(1001)).subarray(0, 5)),
    );
    await rejectsWith(over, GrpcCode.RESOURCE_EXHAUSTED, /1001/);
    const rst = await peer.waitFor(is(T.RST_STREAM, 3));
    assert.equal(u32(rst.payload), H2Code.CANCEL);
  });
});

Deno.test("pause() withholds the stream's WINDOW_UPDATE, resume() sends it", async () => {
  // Receive window 4000: the client grants more once 1000 bytes are consumed.
  await withFakeServer({ channel: { window: 4000 } }, async ({ ch, peer }) => {
    const call = ch.call("/pkg.Svc/Stream");
    let count = 0;
    call.onMessage = () => count++;
    call.end();
    await request(peer, 1);
    await peer.send(headersFrame(1, RESPONSE_HEADERS));

    // Not paused: 1200 bytes earn a stream WINDOW_UPDATE.
    await peer.send(dataFrame(1, msg(pattern(1195))));
    const first = await peer.waitFor(is(T.WINDOW_UPDATE, 1), "the unpaused WINDOW_UPDATE");
    assert.equal(readU31(first.payload, 0), 1200);

    call.pause();
    await peer.send(dataFrame(1, msg(pattern(1495))), dataFrame(1, msg(pattern(995))));
    await peer.fence();
    assert.equal(count, 3, "messages are still delivered while paused");
    assert.equal(peer.frames.filter(is(T.WINDOW_UPDATE, 1)).length, 1, "no grant while paused");
    assert.ok(
      peer.frames.filter(is(T.WINDOW_UPDATE, 0)).length >= 2,
      "the connection window is still granted",
    );

    call.resume();
    const grants = await peer.waitFor(
      () => peer.frames.filter(is(T.WINDOW_UPDATE, 1)).length === 2,
      "the WINDOW_UPDATE after resume()",
    );
    assert.ok(grants);
    const second = peer.frames.filter(is(T.WINDOW_UPDATE, 1))[1]!;
    assert.equal(readU31(second.payload, 0), 1500 + 1000);

    await peer.send(headersFrame(1, OK_TRAILERS, { endStream: true }));
    assert.equal((await call.status).code, GrpcCode.OK);
  });
});

Deno.test("END_STREAM on DATA without trailers is INTERNAL; trailers without grpc-status are UNKNOWN", async () => {
  await withFakeServer({}, async ({ ch, peer }) => {
    const noTrailers = unary(ch, "/pkg.Svc/M", enc.encode("x"));
    const noStatus = unary(ch, "/pkg.Svc/M", enc.encode("x"));
    const cutMessage = unary(ch, "/pkg.Svc/M", enc.encode("x"));
    const noStatusOnly = unary(ch, "/pkg.Svc/M", enc.encode("x"));
    for (const id of [1, 3, 5, 7]) await request(peer, id);
    await peer.send(
      headersFrame(1, RESPONSE_HEADERS),
      dataFrame(1, msg("answer"), true),
      headersFrame(3, RESPONSE_HEADERS),
      dataFrame(3, msg("answer")),
      headersFrame(3, [["grpc-message", "where%20is%20it"]], { endStream: true }),
      headersFrame(5, RESPONSE_HEADERS),
      dataFrame(5, msg("answer").subarray(0, 7)),
      headersFrame(5, OK_TRAILERS, { endStream: true }),
      headersFrame(7, RESPONSE_HEADERS, { endStream: true }),
    );
    await rejectsWith(noTrailers, GrpcCode.INTERNAL, /without sending trailers/);
    await rejectsWith(noStatus, GrpcCode.UNKNOWN, /grpc-status/);
    await rejectsWith(cutMessage, GrpcCode.INTERNAL, /middle of a message/);
    await rejectsWith(noStatusOnly, GrpcCode.UNKNOWN, /grpc-status/);
  });
});

// ---------------------------------------------------------------------------------------------
// Against our gRPC server

Deno.test("whole calls against serveGrpc(): unary, big server stream, big bidi, errors", async () => {
  const handlers = new Map<string, Handler>([
    ["/test.Echo/Unary", async (call) => {
      const req = await call.recv();
      assert.ok(req);
      const reply = {
        req: dec.decode(req),
        rep: call.headers.get("x-rep"),
        te: call.headers.get("te"),
      };
      await call.send(enc.encode(JSON.stringify(reply)));
    }],
    ["/test.Echo/Stream", async (call) => {
      const req = await call.recv();
      const n = Number(dec.decode(req!));
      for (let i = 0; i < n; i++) await call.send(pattern(4 << 20, i));
    }],
    ["/test.Echo/Bidi", async (call) => {
      for (let m = await call.recv(); m; m = await call.recv()) await call.send(m);
    }],
    ["/test.Echo/Fail", async () => {
      await Promise.resolve();
      throw new GrpcStatusError(Status.NOT_FOUND, "nö such thing: 100% gone");
    }],
  ]);
  const dir = await Deno.makeTempDir({ prefix: "grpc-test-" });
  const path = join(dir, "grpc.sock");
  const servers: { closed: Promise<void> }[] = [];
  const server = net.createServer((sock) => servers.push(serveGrpc(sock, handlers)));
  await new Promise<void>((r) => server.listen(path, r));
  const ch = new H2Channel(connTransport(await Deno.connect({ transport: "unix", path })), {
    authority: "localhost",
    scheme: "http",
  });
  try {
    const echoed = await unary(ch, "/test.Echo/Unary", enc.encode("hi"), {
      metadata: [["x-rep", "a,b"], ["x-rep", "c"]],
      deadline: Date.now() + 60_000,
    });
    assert.deepEqual(JSON.parse(dec.decode(echoed)), {
      req: "hi",
      rep: ["a,b", "c"],
      te: ["trailers"],
    });

    // 20 MiB down: more than the client's 16 MiB windows, so it must grant more.
    let i = 0;
    await serverStream(ch, "/test.Echo/Stream", enc.encode("5"), (m) => {
      assert.ok(eq(m, pattern(4 << 20, i)), `message ${i}`);
      i++;
    });
    assert.equal(i, 5);

    // 12 MiB up and back, several calls at once.
    const bidi = async (seed: number) => {
      const call = ch.call("/test.Echo/Bidi");
      const back: Uint8Array[] = [];
      call.onMessage = (m) => back.push(m);
      for (let k = 0; k < 3; k++) await call.write(pattern(1 << 20, seed + k));
      call.end();
      const s = await call.status;
      assert.equal(s.code, GrpcCode.OK, s.details);
      assert.equal(back.length, 3);
      back.forEach((m, k) => assert.ok(eq(m, pattern(1 << 20, seed + k)), `echo ${seed + k}`));
    };
    await Promise.all([bidi(10), bidi(20), bidi(30), bidi(40)]);

    const err = await rejectsWith(
      unary(ch, "/test.Echo/Fail", new Uint8Array(0)),
      GrpcCode.NOT_FOUND,
    );
    assert.equal(err.details, "nö such thing: 100% gone");
    await rejectsWith(unary(ch, "/test.Echo/Nope", new Uint8Array(0)), GrpcCode.UNIMPLEMENTED);
  } finally {
    ch.close();
    await ch.closed;
    for (const s of servers) await s.closed;
    await new Promise((r) => server.close(r));
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Pure functions

Deno.test("grpcTimeout() uses milliseconds, then seconds, then hours, with at most 8 digits", () => {
  assert.equal(grpcTimeout(0), "0m");
  assert.equal(grpcTimeout(-20), "0m");
  assert.equal(grpcTimeout(1.2), "2m");
  assert.equal(grpcTimeout(5000), "5000m");
  assert.equal(grpcTimeout(99_999_999), "99999999m");
  assert.equal(grpcTimeout(100_000_000), "100000S");
  assert.equal(grpcTimeout(100_000_001), "100001S");
  assert.equal(grpcTimeout(99_999_999_000), "99999999S");
  assert.equal(grpcTimeout(100_000_000_000), "27778H");
  assert.equal(grpcTimeout(Number.MAX_SAFE_INTEGER), "99999999H");
  assert.equal(grpcTimeout(Infinity), "99999999H");
});

Deno.test("percentDecode() decodes UTF-8 escapes and leaves everything else alone", () => {
  assert.equal(percentDecode(""), "");
  assert.equal(percentDecode("plain text"), "plain text");
  assert.equal(percentDecode("a%20b"), "a b");
  assert.equal(percentDecode("caf%C3%A9 %e2%9c%93"), "café ✓");
  assert.equal(percentDecode("%F0%9F%98%80"), "😀");
  assert.equal(percentDecode("100%25"), "100%");
  assert.equal(percentDecode("100%"), "100%");
  assert.equal(percentDecode("%4"), "%4");
  assert.equal(percentDecode("%zz%4g"), "%zz%4g");
  assert.equal(percentDecode("%%41"), "%A");
  assert.equal(percentDecode("%41%"), "A%");
  // Raw (unencoded) non-ASCII text passes through, astral characters included.
  assert.equal(percentDecode("é😀%21"), "é😀!");
  // A broken UTF-8 sequence becomes U+FFFD instead of throwing.
  assert.equal(percentDecode("x%FFy"), "x\uFFFDy");
});
