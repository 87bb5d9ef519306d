import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { after, delay } from "./timer.ts";

Deno.test("after fires once, after the delay", async () => {
  const t0 = performance.now();
  let calls = 0;
  // The pending promise keeps the test's event loop busy, as a lock or socket would.
  await new Promise<void>((resolve) => after(30, () => (calls++, resolve())));
  assert(performance.now() - t0 >= 25, "fired too early");
  await new Promise((r) => setTimeout(r, 50));
  assertEquals(calls, 1);
});

Deno.test("a cancelled timer never fires", async () => {
  let fired = false;
  const cancel = after(10, () => fired = true);
  cancel();
  await new Promise((r) => setTimeout(r, 40));
  assertEquals(fired, false);
});

Deno.test("delay resolves after the time", async () => {
  const t0 = performance.now();
  await delay(20);
  assert(performance.now() - t0 >= 15);
});

Deno.test("delay resolves early when its signal aborts, at once when already aborted", async () => {
  const abort = new AbortController();
  const t0 = performance.now();
  const waiting = delay(60_000, abort.signal);
  setTimeout(() => abort.abort(), 20);
  await waiting;
  assert(performance.now() - t0 < 10_000, "waited for the timer");
  await delay(60_000, abort.signal);
  assert(performance.now() - t0 < 10_000, "an aborted signal still waited");
});

Deno.test("bad delays fire at once instead of throwing", async () => {
  for (const ms of [-5, Number.NaN, Number.POSITIVE_INFINITY]) {
    await new Promise<void>((resolve) => after(ms, resolve));
  }
});

async function runScript(body: string): Promise<{ ms: number; stdout: string }> {
  const code = `import { after } from ${
    JSON.stringify(new URL("./timer.ts", import.meta.url).href)
  };\n${body}`;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(new TextDecoder().decode(out.stderr), "");
  assertEquals(out.code, 0);
  return { ms: performance.now() - t0, stdout: new TextDecoder().decode(out.stdout) };
}

Deno.test("a pending timer keeps the process alive until it fires", async () => {
  const r = await runScript(`after(300, () => console.log("fired"));`);
  assertEquals(r.stdout, "fired\n");
  assert(r.ms >= 300, `exited after ${r.ms} ms`);
});

Deno.test("a cancelled timer lets the process exit at once", async () => {
  const r = await runScript(`const cancel = after(60_000, () => console.log("fired")); cancel();`);
  assertEquals(r.stdout, "");
  assert(r.ms < 20_000, `exited after ${r.ms} ms`);
});
