/**
 * Measurement script (not a test): context-transfer speed and memory of our
 * session against upstream buildctl, on a fresh buildkitd per run.
 *
 * Context: 2,000 × 50 KB files + one 200 MB file (≈300 MB), Dockerfile
 * `FROM scratch` + `COPY . /ctx`, no exporter. Our side runs in a child
 * process (`deno run`, like the CLI would), and reports its peak RSS.
 *
 *     deno run -A src/session/filesync_bench.ts [runs=3]
 *
 * @module
 */

import { join } from "node:path";
import { connect, parseAddress } from "../client/mod.ts";
import { startSession } from "./session.ts";
import { SolveRequest } from "../gen/github.com/moby/buildkit/api/services/control/control_solve.ts";

const REPO = join(import.meta.dirname!, "..", "..");
const TOOLS_BIN = join(REPO, ".tools", "bin");

/** Creates (once) the benchmark context and returns its path. */
async function makeContext(): Promise<string> {
  const dir = "/tmp/buildctl-bench-context";
  try {
    if ((await Deno.stat(join(dir, ".complete"))).isFile) return dir;
  } catch { /* create it */ }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(join(dir, "small"), { recursive: true });
  const buf = new Uint8Array(50_000);
  for (let i = 0; i < 2000; i++) {
    crypto.getRandomValues(buf.subarray(0, 50_000 / 2 | 0));
    buf.fill(i & 0xff, 25_000);
    await Deno.writeFile(join(dir, "small", `f${String(i).padStart(4, "0")}.bin`), buf);
  }
  const f = await Deno.open(join(dir, "big.bin"), { write: true, create: true, truncate: true });
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < 200; i++) {
    crypto.getRandomValues(chunk.subarray(0, 65536));
    let off = 0;
    while (off < chunk.length) off += await f.write(chunk.subarray(off));
  }
  f.close();
  await Deno.writeTextFile(join(dir, "Dockerfile"), "FROM scratch\nCOPY . /ctx\n");
  await Deno.writeTextFile(join(dir, ".complete"), "");
  return dir;
}

async function startDaemon(): Promise<{ addr: string; stop(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "bench-bk-" });
  const socket = join(dir, "bk.sock");
  const child = new Deno.Command(join(TOOLS_BIN, "buildkitd"), {
    args: ["--root", join(dir, "root"), "--addr", `unix://${socket}`, "--oci-worker-gc=false"],
    env: { PATH: `${TOOLS_BIN}:/usr/sbin:/usr/bin:/sbin:/bin` },
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 400; i++) {
    try {
      (await Deno.connect({ transport: "unix", path: socket })).close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  return {
    addr: `unix://${socket}`,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function timed(
  cmd: string,
  args: string[],
): Promise<{ ms: number; rssKb: number; cpuS: number; ok: boolean; out: string }> {
  const t0 = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "RSSKB=%M CPU=%U+%S", cmd, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  const err = new TextDecoder().decode(out.stderr);
  const rss = Number(/RSSKB=(\d+)/.exec(err)?.[1] ?? 0);
  const cpu = /CPU=([\d.]+)\+([\d.]+)/.exec(err);
  const cpuS = cpu ? Number(cpu[1]) + Number(cpu[2]) : 0;
  return { ms, rssKb: rss, cpuS, ok: out.success, out: err + new TextDecoder().decode(out.stdout) };
}

/** Child mode: one build through our session. */
async function child(addr: string, ctx: string): Promise<void> {
  const client = await connect({ address: parseAddress(addr), timeoutMs: 5000 });
  const session = await startSession(client, {
    localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
  });
  await client.solve(SolveRequest.fromPartial({
    Ref: `bench${Date.now()}`,
    Session: session.id,
    Frontend: "dockerfile.v0",
  }));
  await session.close();
  client.close();
  const st = session.stats.get("context");
  console.log(`sent ${st?.files} files, ${((st?.bytes ?? 0) / 1e6).toFixed(1)} MB`);
}

async function main(): Promise<void> {
  if (Deno.args[0] === "child") return await child(Deno.args[1]!, Deno.args[2]!);
  const runs = Number(Deno.args[0] ?? 3);
  const ctx = await makeContext();
  const ours: number[] = [];
  const theirs: number[] = [];
  const oursRss: number[] = [];
  const theirsRss: number[] = [];
  const oursCpu: number[] = [];
  const theirsCpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    for (const who of i % 2 === 0 ? ["upstream", "ours"] : ["ours", "upstream"]) {
      const d = await startDaemon();
      try {
        const r = who === "upstream"
          ? await timed(join(TOOLS_BIN, "buildctl-upstream"), [
            "--addr",
            d.addr,
            "build",
            "--progress=quiet",
            "--frontend",
            "dockerfile.v0",
            "--local",
            `context=${ctx}`,
            "--local",
            `dockerfile=${ctx}`,
          ])
          : await timed(join(TOOLS_BIN, "deno"), [
            "run",
            "-A",
            "--quiet",
            `--config=${join(REPO, "deno.json")}`,
            import.meta.filename!,
            "child",
            d.addr,
            ctx,
          ]);
        if (!r.ok) throw new Error(`${who} failed:\n${r.out}`);
        (who === "upstream" ? theirs : ours).push(r.ms);
        (who === "upstream" ? theirsRss : oursRss).push(r.rssKb);
        (who === "upstream" ? theirsCpu : oursCpu).push(r.cpuS);
        const rss = (r.rssKb / 1024).toFixed(0);
        console.log(
          `${who.padEnd(8)} ${(r.ms / 1000).toFixed(2)} s  cpu ${
            r.cpuS.toFixed(2)
          } s  peak RSS ${rss} MB`,
        );
      } finally {
        await d.stop();
      }
    }
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const mo = median(ours);
  const mt = median(theirs);
  console.log(
    `median: ours ${(mo / 1000).toFixed(2)} s, upstream ${(mt / 1000).toFixed(2)} s, ratio ${
      (mo / mt).toFixed(3)
    }; ` +
      `cpu ours ${median(oursCpu).toFixed(2)} s, upstream ${median(theirsCpu).toFixed(2)} s; ` +
      `peak RSS ours ${(Math.max(...oursRss) / 1024).toFixed(0)} MB, upstream ${
        (Math.max(...theirsRss) / 1024).toFixed(0)
      } MB`,
  );
}

if (import.meta.main) await main();
