import assert from "node:assert/strict";
import { createDisplay } from "./mod.ts";
import { ProgressModel } from "./model.ts";
import { ByteBuffer } from "./_sink.ts";
import { progressBar, resolveColors, TtyRenderer } from "./tty.ts";
import { BASIC, Capture, FAILED, FAILED_ERROR, lg, PULL, resp, T0, vtx } from "./_testdata.ts";
import type { StatusResponse } from "./model.ts";

// deno-lint-ignore no-control-regex
const SGR_COLOR = /\x1b\[(3\d|9\d|38;[0-9;]*|2)m/;
// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

async function tty(
  updates: StatusResponse[],
  env: Record<string, string> = {},
  size = { columns: 80, rows: 30 },
): Promise<{ all: string; final: string }> {
  const out = new Capture();
  let t = T0;
  const d = createDisplay("tty", {
    out,
    isTerminal: true,
    env: { TTY_DISPLAY_RATE: "0", ...env },
    now: () => t,
    consoleSize: () => size,
  });
  for (const u of updates) {
    d.update(u);
    t += 100;
  }
  await d.close();
  const all = out.text();
  // the final frame starts at the last header
  return { all, final: all.slice(all.lastIndexOf("[+] ")) };
}

function visibleLines(s: string): string[] {
  return s.replace(ANSI, "").replace(/\r/g, "").split("\n").map((l) => l.trimEnd());
}

Deno.test("tty final frame shows the header, every step with its timer, and FINISHED", async () => {
  const { final } = await tty(BASIC);
  const lines = visibleLines(final);
  assert.equal(lines[0], "[+] Building 1.1s (5/5) FINISHED");
  // upstream layout: " => name" padded to width-len(timer)-1, a space, the timer " %3.1fs"
  const row = (name: string, timer: string) =>
    (" => " + name).slice(0, 73).padEnd(73) + "  " + timer;
  assert.deepEqual(lines.slice(1, 9), [
    row("[internal] load build definition from Dockerfile", "0.0s"),
    row("=> transferring dockerfile 92B", "0.0s"),
    row("[internal] load .dockerignore", "0.0s"),
    row("=> transferring context 2B", "0.0s"),
    row("[internal] load metadata for docker.io/library/alpine:latest", "0.6s"),
    row("CACHED [1/2] FROM docker.io/library/alpine:latest@sha256:beefdbd8a1da6d291", "0.0s"),
    row("[2/2] RUN echo hi", "0.2s"),
    "",
  ]);
  assert.equal(lines[6]!.length, 79);
  for (const l of lines.slice(0, 8)) assert.ok(l.length <= 80);
});

Deno.test("tty colours finished steps and hides/restores the cursor", async () => {
  const { all, final } = await tty(BASIC);
  assert.ok(final.includes("\x1b[34m => [2/2] RUN echo hi"), JSON.stringify(final));
  assert.ok(all.includes("\x1b[?25l"));
  assert.ok(all.endsWith("\x1b[?25h"));
});

Deno.test("tty with NO_COLOR emits no colour escapes", async () => {
  const { all } = await tty([...FAILED.slice(0, 3), ...PULL], { NO_COLOR: "1" });
  assert.doesNotMatch(all, SGR_COLOR);
  assert.ok(!all.includes("\x1b[0m"));
  assert.ok(!all.includes("ERROR [2/2] RUN echo start && ls /nope")); // not finished
  const { all: colored } = await tty(FAILED);
  assert.match(colored, SGR_COLOR);
});

Deno.test("tty redraws in place: moves the cursor up over the previous frame", async () => {
  const { all } = await tty(BASIC.slice(0, 3));
  // frame 1: header + 1 line; frame 2: header + 2 lines (step + status)
  assert.ok(all.includes("\x1b[2A\r"), JSON.stringify(all));
  assert.ok(all.includes("\x1b[3A\r"), JSON.stringify(all));
});

Deno.test("tty shows transfer sizes and a progress bar while a transfer runs", () => {
  const out = new ByteBuffer();
  const m = new ProgressModel({ now: () => T0 }); // local clock = daemon clock
  const r = new TtyRenderer(out, { now: () => T0 + 400, size: () => ({ columns: 100, rows: 30 }) });
  for (const u of PULL.slice(0, 5)) m.update(u);
  r.render(m, false);
  const lines = visibleLines(new TextDecoder().decode(out.take()));
  const line = lines.find((l) => l.includes("sha256:0a2b"));
  assert.equal(
    line,
    " => => sha256:0a2b 1.23MB / 2.15MB [=====>    ]                                                0.3s",
  );
});

Deno.test("tty shows the last output lines of a running step", async () => {
  const updates = [
    resp({ vertexes: [vtx("r", "[1/1] RUN make", { started: 0 })] }),
    resp({ logs: [lg("r", 10, Array.from({ length: 9 }, (_, i) => `out ${i + 1}\n`).join(""))] }),
  ];
  const { all } = await tty(updates);
  const lines = visibleLines(all);
  assert.ok(lines.includes(" => => # out 9"), all);
  assert.ok(lines.includes(" => => # out 4"), all);
  assert.ok(!lines.includes(" => => # out 3"), all); // 6 lines by default
});

Deno.test("tty prints the failed step's last 10 log lines and keeps the error line", async () => {
  const many = [
    FAILED[0]!,
    FAILED[1]!,
    resp({ logs: [lg("f", 150, Array.from({ length: 15 }, (_, i) => `l${i + 1}\n`).join(""))] }),
    FAILED[3]!,
  ];
  const { final } = await tty(many, { NO_COLOR: "1" });
  const lines = visibleLines(final);
  assert.ok(lines[2]!.startsWith(" => ERROR [2/2] RUN echo start && ls /nope"), lines[2]);
  const report = final.slice(final.indexOf("------"));
  assert.equal(
    report,
    "------\n > [2/2] RUN echo start && ls /nope:\n" +
      Array.from({ length: 10 }, (_, i) => `0.050 l${i + 6}\n`).join("") + "------\n",
  );
  assert.ok(FAILED_ERROR.length > 0);
});

Deno.test("tty shows cancelled and cached steps with their prefixes", async () => {
  const { final } = await tty([
    resp({ vertexes: [vtx("c", "cached step", { started: 0, completed: 0, cached: true })] }),
    resp({
      vertexes: [vtx("x", "stopped", { started: 0, completed: 50, error: "context canceled" })],
    }),
  ]);
  assert.ok(final.includes("\x1b[34m => CACHED cached step"));
  assert.ok(final.includes("\x1b[33m => CANCELED stopped"));
  assert.ok(!final.includes("------"));
});

Deno.test("tty limits the frame to the terminal height while running", () => {
  const updates = Array.from(
    { length: 30 },
    (_, i) => resp({ vertexes: [vtx(`v${i}x`, `step ${i}`, { started: i, completed: i + 1 })] }),
  );
  updates.push(resp({ vertexes: [vtx("run", "still running", { started: 40 })] }));
  const out = new ByteBuffer();
  const m = new ProgressModel({ now: () => T0 });
  const r = new TtyRenderer(out, { now: () => T0 + 100, size: () => ({ columns: 80, rows: 10 }) });
  for (const u of updates) m.update(u);
  r.render(m, false);
  const lines = visibleLines(new TextDecoder().decode(out.take())).filter((l) => l !== "");
  assert.equal(lines.length, 9); // header + height-2 steps
  assert.ok(lines.at(-1)!.startsWith(" => still running"));
  r.render(m, true);
  const all = visibleLines(new TextDecoder().decode(out.take())).filter((l) => l !== "");
  assert.equal(all.length, 32);
});

Deno.test("resolveColors() honours NO_COLOR and BUILDKIT_COLORS", () => {
  assert.deepEqual(resolveColors((k) => ({ NO_COLOR: "1" } as Record<string, string>)[k]), {
    run: "",
    cancel: "",
    error: "",
    warning: "",
  });
  const c = resolveColors((k) =>
    ({ BUILDKIT_COLORS: "run=green:error=255,0,0:bogus=red:cancel=nope" } as Record<
      string,
      string
    >)[k]
  );
  assert.equal(c.run, "\x1b[32m");
  assert.equal(c.error, "\x1b[38;2;255;0;0m");
  assert.equal(c.cancel, "\x1b[33m");
});

Deno.test("progressBar() fills proportionally", () => {
  assert.equal(progressBar(0n, 100n, 12), "[>         ]");
  assert.equal(progressBar(50n, 100n, 12), "[=====>    ]");
  assert.equal(progressBar(100n, 100n, 12), "[==========]");
  assert.equal(progressBar(200n, 100n, 12), "[==========]");
});

Deno.test("tty redraws a running step while no update arrives, and stops at close", async () => {
  const out = new Capture();
  let t = T0;
  const d = createDisplay("tty", {
    out,
    isTerminal: true,
    env: { TTY_DISPLAY_RATE: "20" },
    now: () => t,
    consoleSize: () => ({ columns: 80, rows: 30 }),
  });
  d.update(BASIC[0]!);
  const afterUpdate = out.chunks.length;
  // Ticks move the step's timer: the clock advances between them.
  for (let i = 0; i < 10; i++) {
    t += 100;
    await new Promise((r) => setTimeout(r, 15));
  }
  const ticks = out.chunks.length - afterUpdate;
  assert.ok(ticks >= 2, `expected redraws between updates, got ${ticks}`);
  assert.match(visibleLines(out.text()).join("\n"), /[1-9]\.\ds/);
  await d.close();
  const closed = out.chunks.length;
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(out.chunks.length, closed, "a tick after close");
});
