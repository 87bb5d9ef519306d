/**
 * Benchmark of the automatic daemon start, in a private mount namespace (so
 * a developer's daemon is never touched):
 *
 * - bootstrap overhead = (first `debug workers` with no daemon) − (the same
 *   command with a warm daemon), median of N runs, as root and rootless;
 * - the 20-way race: 20 `debug workers` started at once with no daemon
 *   (p50/p95/max wall), next to a single cold start, 20 at once with a warm
 *   daemon, and 20 `--version` at once (the floor: 20 Deno start-ups
 *   competing for the CPUs).
 *
 * Run: `.tools/bin/deno run -P=test scripts/bench_bootstrap.ts [--runs N] [--race-runs N] [--no-rootless]`
 *
 * @module
 */

import { createSandbox, type NsRunOptions, type Sandbox } from "../tests/_util/daemon_ns.ts";

const args = Deno.args;
const runs = Number(args[args.indexOf("--runs") + 1]) || 7;
const raceRuns = Number(args[args.indexOf("--race-runs") + 1]) || 3;
const rootless = !args.includes("--no-rootless");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(p * s.length) - 1)]!;
}

async function must(sb: Sandbox, argv: string[], o: NsRunOptions) {
  const r = await sb.buildctl(argv, o);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stderr}`);
  return r;
}

async function overhead(sb: Sandbox, o: NsRunOptions, label: string) {
  const cold: number[] = [];
  const warm: number[] = [];
  const startLine: number[] = [];
  await must(sb, ["debug", "workers"], o); // warm the Deno cache
  for (let i = 0; i < runs; i++) {
    await must(sb, ["daemon", "stop"], o);
    const c = await must(sb, ["debug", "workers"], o);
    cold.push(c.ms);
    const m = / in (\d+\.\d)s;/.exec(c.stderr);
    if (m) startLine.push(Number(m[1]) * 1000);
    warm.push((await must(sb, ["debug", "workers"], o)).ms);
  }
  const oh = median(cold) - median(warm);
  console.log(
    `${label}: cold ${median(cold).toFixed(0)} ms, warm ${median(warm).toFixed(0)} ms, ` +
      `bootstrap overhead ${oh.toFixed(0)} ms (median of ${runs}; cold runs ${
        cold.map((x) => x.toFixed(0)).join(" ")
      })`,
  );
  return { cold: median(cold), warm: median(warm), overhead: oh };
}

async function raceOnce(sb: Sandbox, o: NsRunOptions) {
  await must(sb, ["daemon", "stop"], o);
  const results = await Promise.all(
    Array.from({ length: 20 }, () => sb.spawnBuildctl(["debug", "workers"], o).done),
  );
  const bad = results.filter((r) => r.code !== 0);
  if (bad.length) throw new Error(`race: ${bad.length} failed: ${bad[0]!.stderr}`);
  const starters = results.filter((r) => r.stderr.includes("started buildkitd")).length;
  return { starters, ms: results.map((r) => r.ms) };
}

/** The 20-way race, `raceRuns` times (each from a stopped daemon); medians of the percentiles. */
async function race(sb: Sandbox, o: NsRunOptions, label: string, single: number) {
  const rounds = [];
  for (let i = 0; i < raceRuns; i++) rounds.push(await raceOnce(sb, o));
  const p95s = rounds.map((r) => pct(r.ms, 0.95));
  const p50 = median(rounds.map((r) => pct(r.ms, 0.5)));
  const p95 = median(p95s);
  const warm = (await Promise.all(
    Array.from({ length: 20 }, () => sb.spawnBuildctl(["debug", "workers"], o).done),
  ))
    .map((r) => r.ms);
  const floor =
    (await Promise.all(Array.from({ length: 20 }, () => sb.spawnBuildctl(["--version"], o).done)))
      .map((r) => r.ms);
  console.log(
    `${label} 20-way race (${raceRuns} rounds): daemon starts per round ${
      rounds.map((r) => r.starters).join(" ")
    }; p50 ${p50.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms (rounds: ${
      p95s.map((x) => x.toFixed(0)).join(" ")
    }); p95 / single cold start = ${(p95 / single).toFixed(2)}; ` +
      `20 at once with a warm daemon: p95 ${pct(warm, 0.95).toFixed(0)} ms; ` +
      `20 \`buildctl --version\` at once (Deno start-up only): p95 ${
        pct(floor, 0.95).toFixed(0)
      } ms`,
  );
}

console.log(`cpus: ${navigator.hardwareConcurrency}`);
const sb = await createSandbox({ user: rootless });
try {
  const root = await overhead(sb, {}, "root");
  await race(sb, {}, "root", root.cold);
  await must(sb, ["daemon", "stop"], {});
  if (rootless) {
    const user = await overhead(sb, { user: true }, "rootless");
    await race(sb, { user: true }, "rootless", user.cold);
    await must(sb, ["daemon", "stop"], { user: true });
  }
} finally {
  await sb.dispose();
}
