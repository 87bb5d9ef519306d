/**
 * Gatekeeper overhead, as a sanity check (no timed assertion):
 * - connection set-up: new HTTP/2 connection + one `Control/Info` call against
 *   a real buildkitd, direct vs through the gate (medians printed at exit);
 * - throughput: 32 MiB through one bidi stream to an in-process echo upstream,
 *   direct vs through the gate.
 *
 * Run as root: `deno bench -P=test --no-prompt src/launcher/gatekeeper_bench.ts`
 */
import http2 from "node:http2";
import net from "node:net";
import { startGatekeeper } from "./gatekeeper.ts";
import { encodeGrpcFrame } from "./grpc_frames.ts";

const TOOLS = new URL("../../.tools/bin/", import.meta.url).pathname;
const dir = Deno.makeTempDirSync({ prefix: "gate_bench_" });
const samples: Record<string, number[]> = {};

// --- a real buildkitd ---------------------------------------------------------
const daemonSock = `${dir}/d.sock`;
const daemon = new Deno.Command(TOOLS + "buildkitd", {
  args: ["--root", `${dir}/root`, "--addr", `unix://${daemonSock}`],
  env: { PATH: `${TOOLS}:/usr/sbin:/usr/bin:/sbin:/bin` },
  clearEnv: true,
  stdin: "null",
  stdout: "null",
  stderr: "null",
}).spawn();
globalThis.addEventListener("unload", () => {
  try {
    daemon.kill("SIGKILL");
  } catch { /* gone */ }
  for (const [name, xs] of Object.entries(samples)) {
    xs.sort((a, b) => a - b);
    const median = xs[Math.floor(xs.length / 2)] ?? NaN;
    console.log(`median ${name}: ${median.toFixed(3)} ms over ${xs.length} runs`);
  }
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* mounts may linger briefly */ }
});
for (let i = 0;; i++) {
  try {
    (await Deno.connect({ transport: "unix", path: daemonSock })).close();
    break;
  } catch {
    if (i > 600) throw new Error("buildkitd did not start");
    await new Promise((r) => setTimeout(r, 50));
  }
}

// --- an in-process echo upstream for throughput --------------------------------
const echoSock = `${dir}/echo.sock`;
const echo = http2.createServer({ settings: { initialWindowSize: 1 << 20 } });
echo.on("stream", (stream: http2.ServerHttp2Stream) => {
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  stream.pipe(stream);
});
const echoServer = net.createServer((s) => echo.emit("connection", s));
await new Promise<void>((r) => echoServer.listen(echoSock, () => r()));
echoServer.unref();

const policy = () => ({ allowed: true, entitlements: [] });
startGatekeeper({ path: `${dir}/gate.sock`, upstream: daemonSock, policy });
startGatekeeper({ path: `${dir}/gate_echo.sock`, upstream: echoSock, policy });

/** New connection, one unary call, close. */
async function connectAndCall(path: string): Promise<void> {
  const session = http2.connect("http://localhost", { createConnection: () => net.connect(path) });
  await new Promise<void>((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": "/moby.buildkit.v1.Control/Info",
      "content-type": "application/grpc",
      te: "trailers",
    });
    req.on(
      "trailers",
      (h) => (h["grpc-status"] === "0" ? resolve() : reject(new Error(String(h["grpc-message"])))),
    );
    req.on("error", reject);
    req.resume();
    req.end(encodeGrpcFrame(new Uint8Array()));
  });
  session.close();
}

/** Pushes `bytes` through one stream to the echo server and reads them back. */
async function pump(path: string, bytes: number): Promise<void> {
  const session = http2.connect("http://localhost", {
    createConnection: () => net.connect(path),
    settings: { initialWindowSize: 1 << 20 },
  });
  await new Promise<void>((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": "/moby.buildkit.v1.Control/Session",
      te: "trailers",
    });
    let got = 0;
    req.on("data", (c: Uint8Array) => {
      got += c.length;
    });
    req.on("end", () => (got === bytes ? resolve() : reject(new Error(`got ${got} of ${bytes}`))));
    req.on("error", reject);
    const chunk = new Uint8Array(1 << 20);
    (async () => {
      for (let sent = 0; sent < bytes; sent += chunk.length) {
        if (!req.write(chunk)) await new Promise((r) => req.once("drain", r));
      }
      req.end();
    })();
  });
  session.close();
}

function timed(name: string, fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    const t0 = performance.now();
    await fn();
    (samples[name] ??= []).push(performance.now() - t0);
  };
}

Deno.bench({
  name: "direct: connect + Control/Info",
  group: "connection set-up",
  baseline: true,
  fn: timed("direct connect+Info", () => connectAndCall(daemonSock)),
});
Deno.bench({
  name: "gate: connect + Control/Info",
  group: "connection set-up",
  fn: timed("gate connect+Info", () => connectAndCall(`${dir}/gate.sock`)),
});
const MiB32 = 32 << 20;
Deno.bench({
  name: "direct: 32 MiB echo",
  group: "throughput",
  baseline: true,
  n: 20,
  fn: timed("direct 32MiB echo", () => pump(echoSock, MiB32)),
});
Deno.bench({
  name: "gate: 32 MiB echo",
  group: "throughput",
  n: 20,
  fn: timed("gate 32MiB echo", () => pump(`${dir}/gate_echo.sock`, MiB32)),
});
