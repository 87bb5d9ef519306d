// Tests of the plain printer against upstream output.
//
// Fixture note: every EXPECTED_* string below is what upstream buildctl's
// plain printer (moby/buildkit v0.32.2 util/progress/progressui, printer.go
// + display.go) prints for the fixture of the same name in _testdata.ts,
// refreshing after every update (TTY_DISPLAY_RATE=0), with the clock of
// SLOW_CLOCK / PARTIAL_CLOCK where given. They follow printer.go's rules:
// `#N name` headers with a blank line between blocks, `#N ...` when output
// switches away from an unfinished step, status lines with %.2f byte sizes
// and a %.1f duration only above 0.01 s, log lines prefixed by seconds since
// the step's start (3/2/1 decimals), `DONE %.1fs` over merged intervals, and
// the `------` error report with the failed step's last lines. They were
// checked by running the upstream code on the same input.

import assert from "node:assert/strict";
import { createDisplay } from "./mod.ts";
import {
  at,
  BASIC,
  Capture,
  dg,
  FAILED,
  GROUPED,
  INTERLEAVED,
  lg,
  PARTIAL,
  PARTIAL_CLOCK,
  PULL,
  resp,
  SLOW,
  SLOW_CLOCK,
  SPLIT,
  st,
  T0,
  vtx,
  WARNINGS,
} from "./_testdata.ts";
import type { StatusResponse } from "./model.ts";

function lines(...ls: string[]): string {
  return ls.join("\n") + "\n";
}

async function plain(
  updates: StatusResponse[],
  opts: { clock?: number[]; env?: Record<string, string> } = {},
): Promise<string> {
  const out = new Capture();
  let i = 0;
  const clock = opts.clock;
  const d = createDisplay("plain", {
    out,
    isTerminal: false,
    env: { TTY_DISPLAY_RATE: "0", ...opts.env },
    shiftTimes: false,
    now: () => (clock ? clock[Math.min(i, clock.length - 1)]! : T0),
  });
  for (const u of updates) {
    d.update(u);
    i++;
  }
  await d.close();
  return out.text();
}

const EXPECTED_BASIC = lines(
  "#1 [internal] load build definition from Dockerfile",
  "#1 transferring dockerfile 92B",
  "#1 transferring dockerfile 92B 0.0s done",
  "#1 DONE 0.0s",
  "",
  "#2 [internal] load .dockerignore",
  "#2 transferring context 2B done",
  "#2 DONE 0.0s",
  "",
  "#3 [internal] load metadata for docker.io/library/alpine:latest",
  "#3 DONE 0.6s",
  "",
  "#4 [1/2] FROM docker.io/library/alpine:latest@sha256:beefdbd8a1da6d2915566fde36db9db0b524eb737fc57cd1367effd16dc0d06d",
  "#4 CACHED",
  "",
  "#5 [2/2] RUN echo hi",
  "#5 0.182 hi",
  "#5 DONE 0.2s",
);

const EXPECTED_FAILED = lines(
  "#1 [1/2] FROM docker.io/library/alpine:latest@sha256:beefdbd8a1da6d2915566fde36db9db0b524eb737fc57cd1367effd16dc0d06d",
  "#1 CACHED",
  "",
  "#2 [2/2] RUN echo start && ls /nope",
  "#2 0.050 start",
  "#2 0.060 ls: /nope: No such file or directory",
  '#2 ERROR: process "/bin/sh -c echo start && ls /nope" did not complete successfully: exit code: 2',
  "------",
  " > [2/2] RUN echo start && ls /nope:",
  "0.050 start",
  "0.060 ls: /nope: No such file or directory",
  "------",
);

const EXPECTED_INTERLEAVED = lines(
  "#1 [a 1/1] RUN loop a",
  "#1 0.100 a1",
  "#1 0.200 a2",
  "#1 DONE 0.3s",
  "",
  "#2 [b 1/1] RUN loop b",
  "#2 0.100 b1",
  "#2 0.200 b2",
  "#2 0.300 b3",
  "#2 DONE 0.4s",
);

const EXPECTED_SLOW = lines(
  "#1 [a 1/1] RUN long a",
  "#1 1.000 a1",
  "#1 2.000 a2",
  "#1 3.000 a3",
  "#1 4.000 a4",
  "#1 5.000 a5",
  "#1 6.000 a6",
  "#1 7.000 a7",
  "#1 8.000 a8",
  "#1 9.000 a9",
  "#1 10.00 a10",
  "#1 11.00 a11",
  "#1 ...",
  "",
  "#2 [b 1/1] RUN long b",
  "#2 1.010 b1",
  "#2 2.010 b2",
  "#2 3.010 b3",
  "#2 4.010 b4",
  "#2 5.010 b5",
  "#2 6.010 b6",
  "#2 7.010 b7",
  "#2 8.010 b8",
  "#2 9.010 b9",
  "#2 10.01 b10",
  "#2 11.01 b11",
  "#2 12.01 b12",
  "#2 ...",
  "",
  "#1 [a 1/1] RUN long a",
  "#1 12.00 a12",
  "#1 13.00 a13",
  "#1 14.00 a14",
  "#1 DONE 15.0s",
  "",
  "#2 [b 1/1] RUN long b",
  "#2 13.01 b13",
  "#2 14.01 b14",
  "#2 DONE 15.1s",
);

const EXPECTED_PARTIAL = lines(
  "#1 [a 1/1] RUN dots",
  "#1 1.000 working...........",
  "#1 ...",
  "",
  "#2 [b 1/1] RUN lines",
  "#2 1.010 b1",
  "#2 2.010 b2",
  "#2 3.010 b3",
  "#2 4.010 b4",
  "#2 5.010 b5",
  "#2 6.010 b6",
  "#2 7.010 b7",
  "#2 8.010 b8",
  "#2 9.010 b9",
  "#2 10.01 b10",
  "#2 11.01 b11",
  "#2 12.01 b12",
  "#2 ...",
  "",
  "#1 [a 1/1] RUN dots",
  "#1 1.000 working..............ok",
  "#1 DONE 15.0s",
  "",
  "#2 [b 1/1] RUN lines",
  "#2 13.01 b13",
  "#2 14.01 b14",
  "#2 DONE 15.1s",
);

const EXPECTED_SPLIT = lines(
  "#1 [1/1] RUN printf",
  "#1 1.500 first line",
  "#1 1.500 second half",
  "#1 1.600 third line",
  "#1 DONE 12.3s",
);

const EXPECTED_PULL = lines(
  "#1 [1/1] FROM docker.io/library/busybox:latest",
  "#1 resolve docker.io/library/busybox:latest 0.1s done",
  "#1 sha256:0a2b 0B / 2.15MB",
  "#1 sha256:0a2b 1.23MB / 2.15MB 0.3s",
  "#1 sha256:0a2b 2.15MB / 2.15MB 0.6s done",
  "#1 extracting sha256:0a2b",
  "#1 extracting sha256:0a2b 0.2s done",
  "#1 DONE 0.9s",
);

const EXPECTED_WARNINGS = lines(
  "#1 [internal] load build definition from Dockerfile",
  "#1 WARN: JSONArgsRecommended: JSON arguments recommended for CMD",
  "#1 WARN: FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
  "#1 DONE 0.1s",
);

const EXPECTED_GROUPED = lines(
  "#1 [internal] booting buildkit",
  "#1 DONE 0.8s",
  "",
  "#2 [1/1] RUN sleep 100",
  "#2 CANCELED",
);

Deno.test("plain prints a successful build like upstream (statuses, cached step, logs)", async () => {
  assert.equal(await plain(BASIC), EXPECTED_BASIC);
});

Deno.test("plain prints the failed step's logs, the error and the final report", async () => {
  assert.equal(await plain(FAILED), EXPECTED_FAILED);
});

Deno.test("plain keeps concurrent steps' interleaved logs in blocks", async () => {
  assert.equal(await plain(INTERLEAVED), EXPECTED_INTERLEAVED);
});

Deno.test("plain switches between busy steps with `#N ...` after the anti-flicker delay", async () => {
  assert.equal(await plain(SLOW, { clock: SLOW_CLOCK }), EXPECTED_SLOW);
});

Deno.test("plain ends and later re-prints a partial log line when switching steps", async () => {
  assert.equal(await plain(PARTIAL, { clock: PARTIAL_CLOCK }), EXPECTED_PARTIAL);
});

Deno.test("plain joins log lines split across several messages", async () => {
  assert.equal(await plain(SPLIT), EXPECTED_SPLIT);
});

Deno.test("plain prints transfer progress with totals and throttles small changes", async () => {
  assert.equal(await plain(PULL), EXPECTED_PULL);
});

Deno.test("plain prints warnings as `#N WARN:` lines", async () => {
  assert.equal(await plain(WARNINGS), EXPECTED_WARNINGS);
});

Deno.test("plain folds a progress group into one step and shows CANCELED", async () => {
  assert.equal(await plain(GROUPED), EXPECTED_GROUPED);
});

Deno.test("plain output is the same when one update arrives as several messages", async () => {
  // BASIC's third update (vertex completion + status completion) split in two,
  // and its last two steps' start reported apart from their names.
  const split = [
    ...BASIC.slice(0, 2),
    resp({
      statuses: [
        st("a", "transferring dockerfile", { current: 92, ts: 20, started: 5, completed: 20 }),
      ],
    }),
    resp({ vertexes: BASIC[2]!.vertexes }),
    ...BASIC.slice(3),
  ];
  const out = await plain(split);
  assert.match(out, /^#1 transferring dockerfile 92B 0\.0s done$/m);
  assert.match(out, /^#1 DONE 0\.0s$/m);
  assert.ok(out.endsWith(EXPECTED_BASIC.slice(EXPECTED_BASIC.indexOf("\n#2 "))));
});

Deno.test("plain with the default rate limit batches quick updates and flushes on close", async () => {
  const out = new Capture();
  const d = createDisplay("plain", {
    out,
    isTerminal: false,
    env: {},
    shiftTimes: false,
    now: () => T0, // frozen clock: only the first update may refresh at once
  });
  for (const u of BASIC) d.update(u);
  assert.equal(out.text(), "#1 [internal] load build definition from Dockerfile\n");
  await d.close();
  const text = out.text();
  assert.ok(text.startsWith("#1 [internal] load build definition from Dockerfile\n"));
  for (
    const want of ["#2 [internal] load .dockerignore", "#4 CACHED", "#5 0.182 hi", "#5 DONE 0.2s"]
  ) {
    assert.ok(text.includes(want), `missing ${want}\n${text}`);
  }
});

Deno.test("plain truncates names to 72 characters with PROGRESS_NO_TRUNC=0", async () => {
  const out = await plain(FAILED.slice(0, 1), { env: { PROGRESS_NO_TRUNC: "0" } });
  assert.equal(
    out,
    lines(
      "#1 [1/2] FROM docker.io/library/alpine:latest@sha256:beefdbd8a1da6d2915566f...",
      "#1 CACHED",
    ),
  );
});

Deno.test("plain shifts daemon times onto the local clock by default", async () => {
  const out = new Capture();
  const local = Date.UTC(2030, 5, 1);
  const d = createDisplay("plain", {
    out,
    isTerminal: false,
    env: { TTY_DISPLAY_RATE: "0" },
    now: () => local,
  });
  for (const u of BASIC) d.update(u);
  await d.close();
  assert.equal(out.text(), EXPECTED_BASIC);
});

Deno.test("plain tolerates updates with missing fields and unknown vertices", async () => {
  const out = new Capture();
  const d = createDisplay("plain", { out, isTerminal: false, env: { TTY_DISPLAY_RATE: "0" } });
  d.update({});
  d.update({ logs: [lg("zz", 5, "orphan\n")] });
  d.update({
    vertexes: [{ digest: dg("n"), name: "x" } as unknown as StatusResponse["vertexes"][0]],
  });
  d.update({
    vertexes: [vtx("n", "x", { started: 0 })],
    logs: [{ vertex: dg("n"), msg: new TextEncoder().encode("no time\n") } as never],
    statuses: [{ ID: "s", vertex: dg("n"), started: at(0) } as never],
  });
  d.update({ vertexes: [vtx("n", "x", { started: 0, completed: 10 })] });
  await d.close();
  const text = out.text();
  assert.ok(text.startsWith("#1 x\n"), text);
  assert.ok(text.includes("#1 s\n"), text);
  assert.ok(text.includes("#1 DONE 0.0s\n"), text);
});

Deno.test("plain output is the same when times come as protobuf Timestamps", async () => {
  const toTs = (d: unknown) =>
    d instanceof Date
      ? { seconds: BigInt(Math.floor(d.getTime() / 1000)), nanos: (d.getTime() % 1000) * 1e6 }
      : undefined;
  const converted: StatusResponse[] = BASIC.map((u) => ({
    vertexes: u.vertexes.map((v) => ({
      ...v,
      started: toTs(v.started),
      completed: toTs(v.completed),
    })),
    statuses: u.statuses.map((s) => ({
      ...s,
      timestamp: toTs(s.timestamp),
      started: toTs(s.started),
      completed: toTs(s.completed),
    })),
    logs: u.logs.map((l) => ({ ...l, timestamp: toTs(l.timestamp) })),
    warnings: u.warnings,
  }));
  assert.equal(await plain(converted), EXPECTED_BASIC);
});
