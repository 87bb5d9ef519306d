import assert from "node:assert/strict";
import {
  createDisplay,
  formatBytes,
  formatWarningsSummary,
  PROGRESS_MODES,
  resolveMode,
  type StatusResponse,
} from "./mod.ts";
import type { StatusResponse as GeneratedStatusResponse } from "../gen/github.com/moby/buildkit/api/services/control/control_solve.ts";
import { BASIC, Capture, FAILED, T0, WARNINGS, wn } from "./_testdata.ts";

Deno.test("resolveMode() decides auto by terminal, with BUILDKIT_PROGRESS overriding", () => {
  assert.equal(resolveMode("auto", true, {}), "tty");
  assert.equal(resolveMode("auto", false, {}), "plain");
  assert.equal(resolveMode("", false, {}), "plain");
  assert.equal(resolveMode("auto", true, { BUILDKIT_PROGRESS: "plain" }), "plain");
  assert.equal(resolveMode("auto", false, { BUILDKIT_PROGRESS: "rawjson" }), "rawjson");
  assert.equal(resolveMode("auto", false, { BUILDKIT_PROGRESS: "" }), "plain");
  assert.equal(resolveMode("auto", true, { BUILDKIT_PROGRESS: "auto" }), "tty");
  // an explicit flag wins over the environment
  assert.equal(resolveMode("quiet", true, { BUILDKIT_PROGRESS: "plain" }), "quiet");
  assert.equal(resolveMode("tty", true, {}), "tty");
  assert.equal(resolveMode("plain", true, {}), "plain");
  assert.equal(resolveMode("rawjson", true, {}), "rawjson");
  assert.deepEqual([...PROGRESS_MODES], ["auto", "tty", "plain", "rawjson", "quiet"]);
});

Deno.test("resolveMode() rejects tty on a non-terminal, naming the value", () => {
  assert.throws(() => resolveMode("tty", false, {}), (e: Error) => e.message.includes('"tty"'));
  assert.throws(
    () => resolveMode("auto", false, { BUILDKIT_PROGRESS: "tty" }),
    (e: Error) => e.message.includes('"tty"') && e.message.includes("BUILDKIT_PROGRESS"),
  );
});

Deno.test("resolveMode() rejects unknown values and lists the valid ones", () => {
  assert.throws(
    () => resolveMode("fancy", true, {}),
    (e: Error) =>
      e.message.includes('"fancy"') && e.message.includes("auto, tty, plain, rawjson, quiet"),
  );
  assert.throws(
    () => resolveMode("auto", true, { BUILDKIT_PROGRESS: "nope" }),
    (e: Error) => e.message.includes('"nope"'),
  );
});

Deno.test("createDisplay() resolves auto and throws like resolveMode()", async () => {
  const out = new Capture();
  const d = createDisplay("auto", { out, isTerminal: false, env: { TTY_DISPLAY_RATE: "0" } });
  assert.equal(d.mode, "plain");
  await d.close();
  assert.throws(() => createDisplay("tty", { out, isTerminal: false, env: {} }));
  assert.throws(() => createDisplay("bogus", { out, isTerminal: true, env: {} }));
});

Deno.test("quiet display writes nothing but still collects warnings", async () => {
  const out = new Capture();
  const d = createDisplay("quiet", { out, isTerminal: true, env: {} });
  for (const u of [...FAILED, ...WARNINGS]) d.update(u);
  await d.close();
  assert.equal(out.chunks.length, 0);
  assert.equal(d.warnings().length, 2);
});

Deno.test("display copes with an async writer that writes partially", async () => {
  const got: number[] = [];
  const out = {
    async write(b: Uint8Array): Promise<number> {
      await new Promise((r) => setTimeout(r, 1));
      const n = Math.min(7, b.length);
      got.push(...b.subarray(0, n));
      return n;
    },
  };
  const d = createDisplay("plain", {
    out,
    isTerminal: false,
    env: { TTY_DISPLAY_RATE: "0" },
    shiftTimes: false,
  });
  for (const u of BASIC) d.update(u);
  await d.close();
  const text = new TextDecoder().decode(new Uint8Array(got));
  const sync = new Capture();
  const d2 = createDisplay("plain", {
    out: sync,
    isTerminal: false,
    env: { TTY_DISPLAY_RATE: "0" },
    shiftTimes: false,
  });
  for (const u of BASIC) d2.update(u);
  await d2.close();
  assert.equal(text, sync.text());
});

Deno.test("display stops writing after a write error and close() still resolves", async () => {
  let calls = 0;
  const out = {
    write(_b: Uint8Array): Promise<number> {
      calls++;
      return Promise.reject(new Error("broken pipe"));
    },
  };
  const d = createDisplay("plain", { out, isTerminal: false, env: { TTY_DISPLAY_RATE: "0" } });
  for (const u of BASIC) d.update(u);
  await d.close();
  assert.equal(calls, 1);
});

Deno.test("close() is idempotent and later updates are ignored", async () => {
  const out = new Capture();
  const d = createDisplay("plain", { out, isTerminal: false, env: { TTY_DISPLAY_RATE: "0" } });
  d.update(BASIC[0]!);
  await d.close();
  const before = out.text();
  d.update(BASIC[1]!);
  await d.close();
  assert.equal(out.text(), before);
});

Deno.test("plain and tty displays report warnings in order", async () => {
  for (const mode of ["plain", "tty"]) {
    const d = createDisplay(mode, {
      out: new Capture(),
      isTerminal: true,
      env: { TTY_DISPLAY_RATE: "0" },
      now: () => T0,
      consoleSize: () => ({ columns: 80, rows: 20 }),
    });
    for (const u of WARNINGS) d.update(u);
    await d.close();
    assert.deepEqual(
      d.warnings().map((w) => new TextDecoder().decode(w.short)),
      [
        "JSONArgsRecommended: JSON arguments recommended for CMD",
        "FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
      ],
    );
  }
});

Deno.test("formatWarningsSummary() lists warnings with their lines", () => {
  assert.equal(formatWarningsSummary([]), "");
  assert.equal(
    formatWarningsSummary([wn("a", "JSONArgsRecommended: use JSON", 3), wn("a", "Other")]),
    "\n2 warnings found:\n - JSONArgsRecommended: use JSON (line 3)\n - Other\n",
  );
  assert.equal(formatWarningsSummary([wn("a", "One", 1)]), "\n1 warning found:\n - One (line 1)\n");
});

Deno.test("mod re-exports formatBytes for other modules", () => {
  assert.equal(formatBytes(1234), "1.23kB");
});

Deno.test("the generated protobuf StatusResponse satisfies the structural type", () => {
  const generated: GeneratedStatusResponse = {
    vertexes: [],
    statuses: [],
    logs: [],
    warnings: [],
  };
  const accepted: StatusResponse = generated; // compile-time check
  assert.ok(accepted);
});

Deno.test("plain display prints the warnings summary on close when asked", async () => {
  const out = new Capture();
  const d = createDisplay("plain", {
    out,
    isTerminal: false,
    env: { TTY_DISPLAY_RATE: "0" },
    warningsSummary: true,
  });
  for (const u of WARNINGS) d.update(u);
  await d.close();
  assert.ok(
    out.text().endsWith(
      "#1 DONE 0.1s\n\n2 warnings found:\n" +
        " - JSONArgsRecommended: JSON arguments recommended for CMD (line 3)\n" +
        " - FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)\n",
    ),
    out.text(),
  );
});
