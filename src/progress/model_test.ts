import assert from "node:assert/strict";
import { mergeIntervals, optTime, ProgressModel, timeNs, TimeShifter } from "./model.ts";
import { at, BASIC, dg, GROUPED, lg, resp, st, T0, vtx, wn } from "./_testdata.ts";

const dec = new TextDecoder();
const text = (b: Uint8Array[]) => b.map((x) => dec.decode(x));

function model(): ProgressModel {
  return new ProgressModel({ now: () => T0 });
}

Deno.test("ProgressModel orders steps by first start, not by first appearance", () => {
  const m = model();
  m.update(resp({ vertexes: [vtx("a", "A"), vtx("b", "B", { started: 5 })] }));
  m.update(resp({ vertexes: [vtx("a", "A", { started: 10 })] }));
  assert.deepEqual(m.vertexes.map((v) => v.name), ["B", "A"]);
  assert.deepEqual(m.all().map((v) => v.name), ["A", "B"]);
  assert.equal(m.startTime, T0 + 5);
});

Deno.test("ProgressModel merges repeated reports of a vertex", () => {
  const m = model();
  m.update(resp({ vertexes: [vtx("a", "A", { started: 0, inputs: [dg("x")] })] }));
  // a report without start time must not reset a started vertex
  m.update(resp({ vertexes: [vtx("a", "A renamed")] }));
  const v = m.get(dg("a"))!;
  assert.equal(v.name, "A");
  assert.equal(v.isStarted, true);
  assert.equal(v.isCompleted, false);
  // a completion report with an empty name keeps the known name and inputs
  m.update(resp({ vertexes: [{ ...vtx("a", "", { started: 0, completed: 200 }), inputs: [] }] }));
  assert.equal(v.name, "A");
  assert.deepEqual(v.vertex.inputs, [dg("x")]);
  assert.equal(v.isCompleted, true);
  assert.equal(v.elapsedMs(T0 + 999), 200);
  assert.equal(m.vertexes.length, 1);
});

Deno.test("ProgressModel keeps timers per run and merges overlapping runs", () => {
  const m = model();
  m.update(resp({ vertexes: [vtx("a", "A", { started: 0, completed: 100 })] }));
  m.update(resp({ vertexes: [vtx("a", "A", { started: 50, completed: 150 })] }));
  m.update(resp({ vertexes: [vtx("a", "A", { started: 1000 })] }));
  const v = m.get(dg("a"))!;
  assert.deepEqual(v.merged, [{ start: T0, stop: T0 + 150 }, {
    start: T0 + 1000,
    stop: undefined,
  }]);
  assert.equal(v.isCompleted, false);
  assert.equal(v.elapsedMs(T0 + 1500), 650);
  m.update(resp({ vertexes: [vtx("a", "A", { started: 1000, completed: 1200 })] }));
  assert.equal(v.isCompleted, true);
  assert.equal(v.elapsedMs(T0 + 5000), 350);
});

Deno.test("mergeIntervals() handles nesting, gaps and open intervals", () => {
  assert.deepEqual(mergeIntervals([]), []);
  assert.deepEqual(
    mergeIntervals([{ start: 7, stop: 8 }, { start: 0, stop: 1 }, { start: 2, stop: 3 }]),
    [{ start: 0, stop: 1 }, { start: 2, stop: 3 }, { start: 7, stop: 8 }],
  );
  assert.deepEqual(mergeIntervals([{ start: 0, stop: 10 }, { start: 1, stop: 2 }]), [
    { start: 0, stop: 10 },
  ]);
  assert.deepEqual(mergeIntervals([{ start: 0, stop: 5 }, { start: 3, stop: 8 }]), [
    { start: 0, stop: 8 },
  ]);
  assert.deepEqual(mergeIntervals([{ start: 0 }, { start: 3, stop: 8 }]), [{ start: 0 }]);
  assert.deepEqual(mergeIntervals([{ start: 0, stop: 5 }, { start: 3 }, { start: 9, stop: 10 }]), [
    { start: 0 },
  ]);
});

Deno.test("ProgressModel tracks statuses: order of first start, latest current/total", () => {
  const m = model();
  m.update(resp({ vertexes: [vtx("a", "A", { started: 0 })] }));
  m.update(resp({
    statuses: [
      st("a", "not started yet", { ts: 1 }),
      st("a", "layer", { current: 10, total: 100, ts: 2, started: 2 }),
    ],
  }));
  m.update(resp({ statuses: [st("a", "layer", { current: 60, total: 100, ts: 3, started: 2 })] }));
  m.update(resp({ statuses: [st("a", "not started yet", { ts: 4, started: 4 })] }));
  const v = m.get(dg("a"))!;
  assert.deepEqual(v.statuses.map((s) => s.id), ["layer", "not started yet"]);
  assert.equal(v.statusById.get("layer")!.status.current, 60n);
  assert.equal(v.statusById.get("layer")!.status.total, 100n);
  assert.deepEqual([...v.statusUpdates].sort(), ["layer", "not started yet"]);
  // statuses for unknown vertices are ignored
  m.update(resp({ statuses: [st("zz", "x", { ts: 1, started: 1 })] }));
  assert.equal(m.get(dg("zz")), undefined);
});

Deno.test("ProgressModel splits logs into lines prefixed with seconds since the run start", () => {
  const m = model();
  m.update(resp({ vertexes: [vtx("a", "A", { started: 0 })] }));
  m.update(resp({ logs: [lg("a", 182, "hi\nthere "), lg("a", 15_000, "you\n")] }));
  m.update(resp({ logs: [lg("a", 123_400, "late\n\n")] }));
  const v = m.get(dg("a"))!;
  assert.deepEqual(text(v.logs), ["0.182 hi", "0.182 there you", "123.4 late", "123.4 "]);
  assert.equal(v.logsPartial, false);
  m.update(resp({ logs: [lg("a", 20_000, "no newline")] }));
  assert.equal(v.logsPartial, true);
  assert.deepEqual(text(v.tail).at(-1), "20.00 no newline");
  assert.deepEqual(v.termLines.at(-1), "no newline");
  assert.equal(v.termBytes, "hi\nthere you\nlate\n\nno newline".length);
});

Deno.test("ProgressModel keeps the last 10 log lines per step for error reports", () => {
  const m = model();
  m.update(resp({ vertexes: [vtx("a", "A", { started: 0 })] }));
  for (let i = 1; i <= 25; i++) m.update(resp({ logs: [lg("a", i, `line ${i}\n`)] }));
  const v = m.get(dg("a"))!;
  assert.equal(v.tail.length, 10);
  assert.equal(dec.decode(v.tail[0]), "0.016 line 16");
  assert.equal(dec.decode(v.tail[9]), "0.025 line 25");
  assert.equal(v.termLines.length, 6);
});

Deno.test("ProgressModel cleans raw output for the terminal view", () => {
  const m = model();
  m.update(resp({ vertexes: [vtx("a", "A", { started: 0 })] }));
  m.update(resp({ logs: [lg("a", 1, "\x1b[32mgreen\x1b[0m\n10%\r50%")] }));
  m.update(resp({ logs: [lg("a", 2, "\r100%\n")] }));
  assert.deepEqual(m.get(dg("a"))!.termLines, ["green", "100%"]);
});

Deno.test("ProgressModel records warnings per step and in total", () => {
  const m = model();
  m.update(resp({ vertexes: [vtx("a", "A", { started: 0 })] }));
  m.update(resp({ warnings: [wn("a", "W1", 3), wn("zz", "orphan")] }));
  assert.equal(m.get(dg("a"))!.warnings.length, 1);
  assert.deepEqual(m.warnings.map((w) => dec.decode(w.short)), ["W1", "orphan"]);
});

Deno.test("ProgressModel reports errors; cancellations are not failures", () => {
  const m = model();
  m.update(resp({
    vertexes: [
      vtx("a", "A", { started: 0, completed: 5, error: "exit code: 1" }),
      vtx("b", "B", { started: 0, completed: 5, error: "rpc error: context canceled" }),
      vtx("c", "C", { started: 0, completed: 5, cached: true }),
    ],
  }));
  assert.deepEqual(m.failed().map((v) => v.name), ["A"]);
  assert.equal(m.get(dg("b"))!.canceled, true);
  assert.equal(m.get(dg("c"))!.cached, true);
  assert.deepEqual(m.counts(), { completed: 3, total: 3 });
});

Deno.test("ProgressModel folds a progress group into one step, hidden until a non-weak member starts", () => {
  const m = model();
  const weak = { id: "g", name: "Group", weak: true };
  m.update(resp({ vertexes: [vtx("w", "weak member", { started: 0, progressGroup: weak })] }));
  assert.equal(m.vertexes.length, 0);
  assert.equal(m.get(dg("w"))!.hidden, true);
  for (const u of GROUPED.slice(0, 3)) m.update(u);
  const g = m.get("pg1")!;
  assert.equal(g.isGroup, true);
  assert.equal(g.name, "[internal] booting buildkit");
  assert.equal(m.get(dg("k")), g);
  assert.equal(m.get(dg("l")), g);
  assert.deepEqual(m.vertexes.map((v) => v.name), ["[internal] booting buildkit"]);
  assert.deepEqual(g.merged, [{ start: T0, stop: T0 + 800 }]);
  assert.equal(g.isCompleted, true);
  // like upstream, members are counted along with the group itself
  assert.deepEqual(m.counts(), { completed: 3, total: 3 });
});

Deno.test("ProgressModel marks changed steps for the printer and counts updates", () => {
  const m = model();
  m.update(BASIC[0]!);
  assert.deepEqual([...m.updates], [dg("a")]);
  const v = m.get(dg("a"))!;
  assert.equal(v.count, 1);
  assert.equal(v.lastBlockTime, T0);
  m.updates.clear();
  m.update(BASIC[0]!); // identical report: no change
  assert.equal(m.updates.size, 0);
  m.update(BASIC[1]!);
  assert.deepEqual([...m.updates], [dg("a")]);
  assert.equal(v.count, 2);
});

Deno.test("ProgressModel tolerates missing optional fields", () => {
  const m = model();
  m.update({});
  m.update({ vertexes: [{ digest: dg("a") } as never] });
  m.update({ vertexes: [{ digest: dg("a"), started: at(0) } as never] });
  m.update({ logs: [{ vertex: dg("a") } as never], statuses: [{ vertex: dg("a") } as never] });
  const v = m.get(dg("a"))!;
  assert.equal(v.name, "");
  assert.equal(v.error, "");
  assert.equal(v.isStarted, true);
});

Deno.test("TimeShifter lines the first start up with the local clock", () => {
  const local = Date.UTC(2030, 0, 1);
  const s = new TimeShifter(local);
  const before = s.apply(resp({ logs: [lg("a", 5, "x")] }));
  assert.equal(optTime(before.logs[0]!.timestamp), T0 + 5); // no start seen yet
  const out = s.apply(resp({
    vertexes: [vtx("a", "A", { started: 100, completed: 300 })],
    statuses: [st("a", "s", { ts: 150, started: 120 }), {
      ...st("a", "t", { ts: 0 }),
      timestamp: undefined,
    }],
    logs: [lg("a", 200, "x")],
    warnings: [wn("a", "w")],
  }));
  assert.equal(s.offset, T0 + 100 - local);
  assert.equal(optTime(out.vertexes[0]!.started), local);
  assert.equal(optTime(out.vertexes[0]!.completed), local + 200);
  assert.equal(optTime(out.statuses[0]!.timestamp), local + 50);
  assert.equal(optTime(out.statuses[0]!.started), local + 20);
  assert.equal(out.statuses[0]!.completed, undefined);
  assert.equal(optTime(out.statuses[1]!.timestamp), -(T0 + 100 - local));
  assert.equal(optTime(out.logs[0]!.timestamp), local + 100);
  assert.equal(out.vertexes[0]!.name, "A");
  // the input is not modified
  assert.equal(out.warnings.length, 1);
});

Deno.test("ProgressModel and TimeShifter accept protobuf Timestamps with nanoseconds", () => {
  const ts = (ms: number, extraNs = 0) => ({
    seconds: BigInt(Math.floor((T0 + ms) / 1000)),
    nanos: ((T0 + ms) % 1000) * 1_000_000 + extraNs,
  });
  assert.equal(timeNs(ts(1500, 7)), BigInt(T0 + 1500) * 1_000_000n + 7n);
  assert.equal(optTime(ts(1500, 500_000)), T0 + 1500.5);
  assert.equal(timeNs({ seconds: 1, nanos: 2 }), 1_000_000_002n);
  assert.equal(timeNs({ seconds: "3", nanos: 0 }), 3_000_000_000n);
  assert.equal(timeNs(undefined), undefined);

  const m = model();
  m.update(resp({
    vertexes: [{ ...vtx("a", "A"), started: ts(0), completed: undefined }],
  }));
  m.update(resp({ logs: [{ ...lg("a", 0, "x\n"), timestamp: ts(1234, 600_000) }] }));
  const v = m.get(dg("a"))!;
  assert.equal(v.isStarted, true);
  assert.equal(dec.decode(v.logs[0]), "1.235 x");

  const shifter = new TimeShifter(Date.UTC(2030, 0, 1));
  const out = shifter.apply(resp({
    vertexes: [{ ...vtx("a", "A"), started: ts(0, 123) }],
    logs: [{ ...lg("a", 0, "x"), timestamp: ts(10, 999_999) }],
  }));
  // Timestamps stay Timestamps and keep their nanoseconds
  assert.deepEqual(out.vertexes[0]!.started, {
    seconds: BigInt(Date.UTC(2030, 0, 1) / 1000),
    nanos: 0,
  });
  assert.deepEqual(out.logs[0]!.timestamp, {
    seconds: BigInt(Date.UTC(2030, 0, 1) / 1000),
    nanos: 10_999_876,
  });
});
