/**
 * Connection set-up probe: N times, open a new unix socket connection and
 * HTTP/2 session to `path` and make one unary `Control/Info` call; prints the
 * wall time of each (ms) as a JSON array. Used by tests/launcher_bench.ts,
 * run as the user the socket is meant for.
 *
 * `deno run -P=buildctl conn_probe.ts SOCKET N`
 *
 * @module
 */
import http2 from "node:http2";
import net from "node:net";

async function once(path: string): Promise<number> {
  const t0 = performance.now();
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
      (h) => h["grpc-status"] === "0" ? resolve() : reject(new Error(String(h["grpc-message"]))),
    );
    req.on("error", reject);
    req.resume();
    req.end(new Uint8Array(5)); // one empty, uncompressed message
  });
  const ms = performance.now() - t0;
  session.close();
  return ms;
}

const [path, n] = [Deno.args[0]!, Number(Deno.args[1] ?? "50")];
await once(path); // warm-up
const samples: number[] = [];
for (let i = 0; i < n; i++) samples.push(await once(path));
console.log(JSON.stringify(samples));
