/**
 * The `--progress=plain` printer: append-only text, line-compatible with
 * upstream buildctl (`#N <name>`, `#N <secs> <log line>`, status lines,
 * `#N DONE 0.2s` / `CACHED` / `ERROR: …` / `CANCELED`, and the error log
 * report at the end).
 *
 * @module
 */

import type { TextSink } from "./_sink.ts";
import { optTime, type ProgressModel, timeOf, type VertexState } from "./model.ts";
import { durationSeconds, formatBytes, formatFixed } from "./units.ts";

const MIN_PROGRESS_DELTA = 0.05;
const MIN_TIME_DELTA_MS = 5000;
const MAX_DELAY_MS = 10_000;
const ANTI_FLICKER_S = 5;
const NAME_LIMIT = 72;

/** Options of {@linkcode PlainPrinter}. */
export interface PlainPrinterOptions {
  /** Cut names to 72 characters plus `...` (upstream: `PROGRESS_NO_TRUNC=0`). */
  truncateNames?: boolean;
  /** Clock in epoch ms, for the fair-share switching between busy steps. */
  now?: () => number;
}

interface PrintState {
  index: number;
  logsOffset: number;
  warningIdx: number;
}

interface VtxStat {
  blockTime: number;
  speed: number;
  share: number;
  overLimit: boolean;
}

/** Coerces a protobuf int64 (bigint, or number from looser producers) to bigint. */
export function toBigInt(v: unknown): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number" && Number.isFinite(v)) return BigInt(Math.trunc(v));
  return 0n;
}

/**
 * Prints the changes of a {@linkcode ProgressModel} as upstream's plain
 * text multiplexer does: one step is "current"; switching away from an
 * unfinished step prints `#N ...`; busy steps take turns fairly.
 */
export class PlainPrinter {
  #out: TextSink;
  #truncate: boolean;
  #now: () => number;
  #current = "";
  #notFirst = false;
  #nextIndex = 0;
  #last: Map<string, { current: bigint; timestamp: number }> = new Map();
  #state: WeakMap<VertexState, PrintState> = new WeakMap();

  constructor(out: TextSink, options: PlainPrinterOptions = {}) {
    this.#out = out;
    this.#truncate = options.truncateNames ?? false;
    this.#now = options.now ?? Date.now;
  }

  /** The `#N` number given to a step, or 0 if it has not been printed. */
  indexOf(v: VertexState): number {
    return this.#state.get(v)?.index ?? 0;
  }

  /** Prints whatever changed in `model` since the last call. */
  print(model: ProgressModel): void {
    const completed: string[] = [];
    const rest: string[] = [];
    for (const dgst of model.updates) {
      const v = model.get(dgst);
      if (!v || v.hidden) continue;
      (v.isCompleted ? completed : rest).push(dgst);
    }
    const current = this.#current;

    // Finished steps first, the current one before the others.
    if (completed.includes(current)) this.#printVtx(model, current);
    const sorted = completed
      .map((d) => ({ d, stop: model.get(d)!.mostRecentInterval?.stop ?? 0 }))
      .sort((a, b) => a.stop - b.stop);
    for (const { d } of sorted) {
      if (d !== current) this.#printVtx(model, d);
    }

    if (rest.length === 0) {
      if (current !== "") {
        const v = model.get(current);
        if (v && v.isStarted && !v.isCompleted) return;
      }
      // Make any open step the active one.
      for (const v of model.vertexes) {
        if (v.isStarted && !v.isCompleted && !v.hidden) {
          this.#printVtx(model, v.digest);
          return;
        }
      }
      return;
    }

    if (rest.includes(current)) this.#printVtx(model, current);

    const stats = new Map<string, VtxStat>();
    const now = this.#now();
    let sum = 0;
    let max: string | undefined;
    if (current !== "" && !rest.includes(current)) rest.push(current);
    for (const dgst of rest) {
      const v = model.get(dgst);
      if (!v || v.lastBlockTime === undefined) continue;
      const tm = now - v.lastBlockTime;
      const speed = v.count / durationSeconds(tm);
      const overLimit = tm > MAX_DELAY_MS && dgst !== current;
      stats.set(dgst, { blockTime: tm, speed, share: 0, overLimit });
      sum += speed;
      if (overLimit || max === undefined || stats.get(max)!.speed < speed) max = dgst;
    }
    for (const s of stats.values()) s.share = s.speed / sum;

    if (completed.includes(current) || current === "") {
      if (max !== undefined) this.#printVtx(model, max);
      return;
    }
    // Show steps that were left waiting for too long.
    for (const dgst of rest) {
      if (stats.get(dgst)?.overLimit) {
        this.#printVtx(model, dgst);
        return;
      }
    }
    // Fair split between busy steps.
    const cs = stats.get(current);
    if (
      cs !== undefined && max !== undefined &&
      (1.0 / (1.0 - cs.share)) * ANTI_FLICKER_S < durationSeconds(cs.blockTime)
    ) {
      this.#printVtx(model, max);
    }
  }

  /** Prints the last log lines of every failed step between `------` rules. */
  printErrorLogs(model: ProgressModel): void {
    printErrorReport(this.#out, model);
  }

  #stateOf(v: VertexState): PrintState {
    let st = this.#state.get(v);
    if (st === undefined) {
      st = { index: 0, logsOffset: 0, warningIdx: 0 };
      this.#state.set(v, st);
    }
    return st;
  }

  #printVtx(model: ProgressModel, dgst: string): void {
    const v = model.get(dgst);
    if (!v) return;
    const out = this.#out;
    const st = this.#stateOf(v);
    if (st.index === 0) st.index = ++this.#nextIndex;
    const idx = st.index;

    if (dgst !== this.#current) {
      if (this.#current !== "") {
        const old = model.get(this.#current);
        if (old) {
          const ost = this.#stateOf(old);
          if (old.logsPartial) out.text("\n");
          ost.logsOffset = 0;
          old.count = 0;
          out.text(`#${ost.index} ...\n`);
        }
      }
      if (this.#notFirst) out.text("\n");
      else this.#notFirst = true;
      const name = this.#truncate && v.name.length > NAME_LIMIT
        ? v.name.slice(0, NAME_LIMIT) + "..."
        : v.name;
      out.text(`#${idx} ${name}\n`);
    }

    let isOpenStatus = false;
    for (const s of v.statuses) {
      if (!v.statusUpdates.has(s.id)) continue;
      const cur = s.status;
      const completed = optTime(cur.completed);
      const timestamp = timeOf(cur.timestamp);
      const current = toBigInt(cur.current);
      const total = toBigInt(cur.total);
      const last = this.#last.get(s.id);
      if (last !== undefined && completed === undefined) {
        const progressDelta = total > 0n ? Number(current - last.current) / Number(total) : 0;
        const timeDelta = timestamp - last.timestamp;
        if (progressDelta < MIN_PROGRESS_DELTA && timeDelta < MIN_TIME_DELTA_MS) continue;
      }
      this.#last.set(s.id, { current, timestamp });

      let bytes = "";
      if (total !== 0n) bytes = ` ${formatBytes(current)} / ${formatBytes(total)}`;
      else if (current !== 0n) bytes = ` ${formatBytes(current)}`;
      let tm = "";
      const end = completed ?? timestamp;
      const started = optTime(cur.started);
      if (started !== undefined) {
        const diff = durationSeconds(end - started);
        if (diff > 0.01) tm = ` ${formatFixed(diff, 1)}s`;
      }
      if (completed !== undefined) tm += " done";
      else isOpenStatus = true;
      out.text(`#${idx} ${s.id}${bytes}${tm}\n`);
    }
    v.statusUpdates = new Set();

    for (; st.warningIdx < v.warnings.length; st.warningIdx++) {
      const w = v.warnings[st.warningIdx]!;
      out.text(`#${idx} WARN: `);
      if (w.short instanceof Uint8Array) out.bytes(w.short);
      out.text("\n");
    }

    const logs = v.logs;
    for (let i = 0; i < logs.length; i++) {
      const line = logs[i]!;
      if (i === 0 && st.logsOffset !== 0) {
        out.bytes(line.subarray(st.logsOffset));
      } else {
        out.text(`#${idx} `);
        out.bytes(line);
      }
      if (i !== logs.length - 1 || !v.logsPartial) out.text("\n");
    }
    if (logs.length > 0) {
      if (v.logsPartial) {
        const lastLine = logs[logs.length - 1]!;
        v.logs = [lastLine];
        st.logsOffset = lastLine.length;
      } else {
        v.logs = [];
        st.logsOffset = 0;
      }
    }

    this.#current = dgst;
    if (v.isCompleted && !isOpenStatus) {
      this.#current = "";
      v.count = 0;
      if (v.logsPartial) out.text("\n");
      if (v.error !== "") {
        if (v.canceled) out.text(`#${idx} CANCELED\n`);
        else out.text(`#${idx} ERROR: ${v.error}\n`);
      } else if (v.cached) {
        out.text(`#${idx} CACHED\n`);
      } else {
        let tm = "";
        if (v.merged.length > 0) {
          let dt = 0;
          for (const ival of v.merged) {
            dt += durationSeconds((ival.stop ?? ival.start) - ival.start);
          }
          tm = ` ${formatFixed(dt, 1)}s`;
        }
        out.text(`#${idx} DONE${tm}\n`);
      }
    }
    model.updates.delete(dgst);
  }
}

/**
 * Writes the end-of-build report of failed steps: `------`, ` > <name>:`,
 * the step's last log lines (`<secs> <text>`), `------`.
 */
export function printErrorReport(out: TextSink, model: ProgressModel): void {
  for (const v of model.failed()) {
    out.text("------\n");
    out.text(` > ${v.name}:\n`);
    for (const line of v.tail) {
      out.bytes(line);
      out.text("\n");
    }
    out.text("------\n");
  }
}
