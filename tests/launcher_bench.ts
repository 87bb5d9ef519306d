/**
 * Gatekeeper overhead, measured on a real install (run as root):
 *
 * 1. A build whose context is 300 MB (fresh directory per run, so the whole
 *    context is transferred every time), with our buildctl: as alice through
 *    her gate vs as root straight at the same daemon's private socket.
 *    Runs alternate; the medians are compared. Target: ratio ≤ 1.10.
 * 2. Connection set-up: new connection + HTTP/2 session + one unary
 *    `Control/Info`, through the gate vs direct. Target: median overhead ≤ 5 ms.
 *
 * `deno run -P=test --no-prompt tests/launcher_bench.ts [--runs=3] [--mb=300]`
 * Exits 1 if a target is missed.
 *
 * @module
 */
import { join } from "node:path";
import { DENO, REPO } from "./_util/paths.ts";
import { buildctlCommand } from "./_util/run.ts";
import {
  asUser,
  buildctlAs,
  cast,
  daemonsOf,
  gateOf,
  grant,
  launcherSkipReason,
  newInstall,
  removeInstall,
  sh,
  sudoStartAs,
} from "./_util/launcher_fixture.ts";

const arg = (k: string, d: number) => {
  const m = Deno.args.map((a) => new RegExp(`^--${k}=(\\d+)$`).exec(a)).find((x) => x);
  return m ? Number(m[1]) : d;
};
const RUNS = arg("runs", 3);
const MB = arg("mb", 300);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function makeContext(mb: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "lnch-bench-ctx-" });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(join(dir, "Dockerfile"), "FROM scratch\nCOPY . /ctx\n");
  // Incompressible data in 10 MB files (a cheap xorshift, so generation is fast).
  const chunk = new Uint8Array(10 << 20);
  const v = new Uint32Array(chunk.buffer);
  let x = (Math.random() * 0xffffffff) >>> 0 || 1;
  for (let f = 0; f < Math.ceil(mb / 10); f++) {
    for (let i = 0; i < v.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      v[i] = x >>> 0;
    }
    await Deno.writeFile(join(dir, `blob-${f}`), chunk, { mode: 0o644 });
  }
  await sh("/bin/chmod", ["-R", "a+rX", dir]);
  return dir;
}

if (import.meta.main) {
  const skip = launcherSkipReason();
  if (skip) {
    console.error(`launcher_bench: cannot run: ${skip}`);
    Deno.exit(2);
  }
  const c = await cast();
  const inst = newInstall();
  const root = `${c.alice.home}/bk-${inst.tag}`;
  let failed = false;
  try {
    const g = await grant(inst, [`--root=${root}`, "--allow-user=bkt-alice"]);
    if (g.code !== 0) throw new Error(`grant failed: ${g.stderr}`);
    if ((await sudoStartAs(c.alice, inst)).code !== 0) throw new Error("start failed");
    const [d] = await daemonsOf(inst);
    const priv = /--addr unix:\/\/(\S+)/.exec(d!.args)![1]!;
    const gate = gateOf(inst, c.alice);

    // --- 1. 300 MB context ------------------------------------------------------
    const build = (ctx: string) => [
      "build",
      "--progress=quiet",
      "--frontend",
      "dockerfile.v0",
      "--local",
      `context=${ctx}`,
      "--local",
      `dockerfile=${ctx}`,
    ];
    const buildctl = buildctlCommand();
    const viaGate: number[] = [];
    const direct: number[] = [];
    // One untimed run each way first, so that both users' Deno caches are warm
    // (alice's DENO_DIR is separate from root's) and only the gate differs.
    for (let i = -2; i < RUNS * 2; i++) {
      const ctx = await makeContext(MB);
      try {
        const throughGate = (i + 2) % 2 === 0;
        await sh("/usr/bin/sync", []); // no writeback of the fresh context inside the timing
        const t0 = performance.now();
        const r = throughGate
          ? await buildctlAs(c.alice, ["--addr", `unix://${gate}`, ...build(ctx)])
          : await sh(buildctl[0]!, [
            ...buildctl.slice(1),
            "--addr",
            `unix://${priv}`,
            ...build(ctx),
          ], {
            env: { PATH: "/usr/bin:/bin", HOME: "/root" },
          });
        const ms = performance.now() - t0;
        if (r.code !== 0) throw new Error(`build failed: ${r.stderr}`);
        if (i < 0) continue; // warm-up
        (throughGate ? viaGate : direct).push(ms);
        console.log(
          `${MB} MB context, ${throughGate ? "gate  " : "direct"}: ${(ms / 1000).toFixed(2)} s`,
        );
      } finally {
        await Deno.remove(ctx, { recursive: true });
      }
    }
    const ratio = median(viaGate) / median(direct);
    console.log(
      `median gate ${(median(viaGate) / 1000).toFixed(2)} s, direct ${
        (median(direct) / 1000).toFixed(2)
      } s, ratio ${ratio.toFixed(3)} (target <= 1.10)`,
    );
    if (ratio > 1.10) failed = true;

    // --- 2. connection set-up ------------------------------------------------------
    const probe = join(REPO, "tests", "_util", "conn_probe.ts");
    const run = [
      "run",
      "--quiet",
      "--no-prompt",
      `--config=${join(REPO, "deno.json")}`,
      "-P=buildctl",
      probe,
    ];
    const g1 = await asUser(c.alice, DENO, [...run, gate, "200"]);
    const d1 = await sh(DENO, [...run, priv, "200"], {
      env: { PATH: "/usr/bin:/bin", HOME: "/root" },
    });
    if (g1.code !== 0 || d1.code !== 0) throw new Error(`probe failed: ${g1.stderr}${d1.stderr}`);
    const mg = median(JSON.parse(g1.stdout));
    const md = median(JSON.parse(d1.stdout));
    console.log(
      `connection set-up + Info: gate ${mg.toFixed(2)} ms, direct ${md.toFixed(2)} ms, overhead ${
        (mg - md).toFixed(2)
      } ms median (target <= 5 ms)`,
    );
    if (mg - md > 5) failed = true;
  } finally {
    await removeInstall(inst, [root]);
  }
  Deno.exit(failed ? 1 : 0);
}
