/**
 * `--progress=tty`: a live, redrawn view in the style of upstream buildctl:
 * a `[+] Building 1.2s (3/5)` header, one line per step and transfer with
 * the timer on the right, the last output lines of running steps, colours
 * for finished/failed/cancelled steps (off with `NO_COLOR`).
 *
 * @module
 */

import type { TextSink } from "./_sink.ts";
import {
  type Interval,
  mergeIntervals,
  optTime,
  type ProgressModel,
  type VertexState,
} from "./model.ts";
import { toBigInt } from "./plain.ts";
import { durationSeconds, formatBytes, formatFixed } from "./units.ts";

const ESC = "\x1b[";
const RESET = "\x1b[0m";
const HIDE_CURSOR = "\x1b[?25l";
const SHOW_CURSOR = "\x1b[?25h";
const FAINT = "\x1b[2m";
const TERM_PAD = 10;
const TERM_HEIGHT_MIN = 6;
const BAR_WIDTH = 12;

/** SGR colours of the tty view (empty string = no colour). */
export interface TtyColors {
  run: string;
  cancel: string;
  error: string;
  warning: string;
}

const NAMED_COLORS: Record<string, string> = {
  default: "\x1b[39m",
  black: "\x1b[30m",
  red: "\x1b[31m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  blue: "\x1b[34m",
  magenta: "\x1b[35m",
  cyan: "\x1b[36m",
  white: "\x1b[37m",
  "light-black": "\x1b[90m",
  "light-red": "\x1b[91m",
  "light-green": "\x1b[92m",
  "light-yellow": "\x1b[93m",
  "light-blue": "\x1b[94m",
  "light-magenta": "\x1b[95m",
  "light-cyan": "\x1b[96m",
  "light-white": "\x1b[97m",
};

/**
 * The colours upstream uses, honouring `NO_COLOR` (no colours at all) and
 * `BUILDKIT_COLORS` (`run=green:error=yellow`, names or `r,g,b`).
 */
export function resolveColors(env: (key: string) => string | undefined): TtyColors {
  if ((env("NO_COLOR") ?? "") !== "") return { run: "", cancel: "", error: "", warning: "" };
  const colors: TtyColors = {
    run: NAMED_COLORS.blue!,
    cancel: NAMED_COLORS.yellow!,
    error: NAMED_COLORS.red!,
    warning: NAMED_COLORS.yellow!,
  };
  const spec = env("BUILDKIT_COLORS");
  if (spec) {
    for (const field of spec.split(":")) {
      const eq = field.indexOf("=");
      if (eq < 0) continue;
      const key = field.slice(0, eq).trim().toLowerCase();
      const value = field.slice(eq + 1).trim().toLowerCase().replace(/^"|"$/g, "");
      let sgr = NAMED_COLORS[value];
      if (sgr === undefined && value.includes(",")) {
        const parts = value.split(",").map((p) => Number(p.trim()));
        if (parts.length === 3 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)) {
          sgr = `\x1b[38;2;${parts[0]};${parts[1]};${parts[2]}m`;
        }
      }
      if (sgr === undefined) continue;
      if (key === "run" || key === "cancel" || key === "error" || key === "warning") {
        colors[key] = sgr;
      }
    }
  }
  return colors;
}

/** Options of {@linkcode TtyRenderer}. */
export interface TtyRendererOptions {
  /** Clock in epoch ms. */
  now?: () => number;
  /** Terminal size (default: `Deno.consoleSize()`, falling back to 80×10). */
  size?: () => { columns: number; rows: number };
  /** Colours (see {@linkcode resolveColors}); default: upstream's. */
  colors?: TtyColors;
  /** Header verb (default `Building`). */
  phase?: string;
  /** Output lines shown per running step (upstream `BUILDKIT_TTY_LOG_LINES`, default 6). */
  logLines?: number;
}

interface Job {
  intervals: Interval[];
  isCompleted: boolean;
  name: string;
  status: string;
  hasError: boolean;
  isCanceled: boolean;
  vertex: VertexState | undefined;
  showTerm: boolean;
}

/** Reads the console size, falling back to 80 columns × 10 rows. */
export function consoleSize(): { columns: number; rows: number } {
  try {
    const s = Deno.consoleSize();
    if (s.columns > 0 && s.rows > 0) return s;
  } catch {
    // not a terminal
  }
  return { columns: 80, rows: 10 };
}

/** Draws frames of a {@linkcode ProgressModel}, overwriting the previous frame. */
export class TtyRenderer {
  #out: TextSink;
  #now: () => number;
  #size: () => { columns: number; rows: number };
  #colors: TtyColors;
  #phase: string;
  #logLinesInitial: number;
  #lineCount = 0;
  #repeated = false;
  #barWidth = 0;

  constructor(out: TextSink, options: TtyRendererOptions = {}) {
    this.#out = out;
    this.#now = options.now ?? Date.now;
    this.#size = options.size ?? consoleSize;
    this.#colors = options.colors ?? resolveColors(() => undefined);
    this.#phase = options.phase ?? "Building";
    this.#logLinesInitial = options.logLines && options.logLines > 0
      ? options.logLines
      : TERM_HEIGHT_MIN;
  }

  /** Draws one frame; `final` shows every step (no height limit) and `FINISHED`. */
  render(model: ProgressModel, final: boolean): void {
    const { columns, rows } = this.#size();
    const width = columns > 0 ? columns : 80;
    const height = rows > 0 ? rows : 10;
    const now = this.#now();
    const out = this.#out;
    const termHeight = Math.max(
      TERM_HEIGHT_MIN,
      Math.min(this.#logLinesInitial, height - TERM_HEIGHT_MIN - 1),
    );
    this.#barWidth = width >= 60 ? BAR_WIDTH : 0;
    const jobs = this.#setupTerminals(this.#jobs(model), height, final, termHeight);

    // Go back to the top of the previous frame.
    const up = this.#repeated ? this.#lineCount + 1 : 0;
    this.#repeated = true;
    out.text((up > 0 ? `${ESC}${up}A` : "") + "\r");
    out.text(HIDE_CURSOR);

    const { completed, total } = model.counts();
    const start = model.startTime !== undefined ? model.startTime + model.localTimeDiff : now;
    const status = completed > 0 && completed === total && final ? "FINISHED" : "";
    let header = `[+] ${this.#phase} ${formatFixed(durationSeconds(now - start), 1)}s ` +
      `(${completed}/${total}) ${status}`;
    header = align(header, "", width);
    if (header.length > width) header = header.slice(0, width);
    out.text(header + "\n");

    let lineCount = 0;
    for (const j of jobs) {
      if (j.intervals.length === 0) continue;
      let dt = 0;
      for (const ival of j.intervals) {
        if (Number.isFinite(ival.start)) dt += durationSeconds((ival.stop ?? now) - ival.start);
      }
      if (dt < 0.05) dt = 0;
      const pfx = " => ";
      const timer = ` ${formatFixed(dt, 1).padStart(3)}s\n`;
      let left = width - pfx.length - timer.length - 1;
      let showStatus = false;
      if (j.status !== "" && left + j.status.length > 20) {
        showStatus = true;
        left -= j.status.length + 1;
      }
      if (left < 12) continue; // too narrow to show anything useful
      let line = pfx + (j.name.length > left ? j.name.slice(0, left) : j.name);
      if (showStatus) line += " " + j.status;
      line = align(line, timer, width);
      if (j.isCompleted) {
        const color = j.isCanceled
          ? this.#colors.cancel
          : j.hasError
          ? this.#colors.error
          : this.#colors.run;
        if (color !== "") line = color + line + RESET;
      }
      out.text(line);
      lineCount++;
      if (j.showTerm && j.vertex) {
        const faint = this.#colors.run === "" ? "" : FAINT;
        const maxLen = Math.max(1, width - TERM_PAD);
        for (const l of j.vertex.termLines.slice(-termHeight)) {
          if (l.trim() === "") continue;
          const text = ` => => # ${l.length > maxLen ? l.slice(0, maxLen) : l}\n`;
          out.text(faint !== "" ? faint + text + RESET : text);
          lineCount++;
        }
        j.vertex.termCount++;
      }
    }
    // Blank out what is left of a taller previous frame.
    const diff = this.#lineCount - lineCount;
    if (diff > 0) {
      out.text(`${ESC}2K\n`.repeat(diff));
      out.text(`${ESC}${diff}A\r`);
    }
    this.#lineCount = lineCount;
    out.text(SHOW_CURSOR);
  }

  /**
   * Prints, below the final frame, the last `lines` log lines of every
   * failed step between `------` rules.
   */
  printErrorLogs(model: ProgressModel, lines = 10): void {
    const out = this.#out;
    for (const v of model.failed()) {
      out.text("------\n");
      out.text(` > ${v.name}:\n`);
      for (const line of v.tail.slice(-lines)) {
        out.bytes(line);
        out.text("\n");
      }
      out.text("------\n");
    }
  }

  #jobs(model: ProgressModel): Job[] {
    const shift = model.localTimeDiff;
    const jobs: Job[] = [];
    const sh = (t: number | undefined) => (t === undefined ? undefined : t + shift);
    for (const v of model.vertexes) {
      let name = v.name.replaceAll("\t", " ");
      let hasError = false;
      let isCanceled = false;
      let isCompleted = true;
      const ivals: Interval[] = [];
      for (const ival of v.intervals.values()) {
        ivals.push({ start: ival.start + shift, stop: sh(ival.stop) });
        if (ival.stop === undefined) isCompleted = false;
      }
      if (v.error !== "") {
        if (v.canceled) {
          isCanceled = true;
          name = "CANCELED " + name;
        } else {
          hasError = true;
          name = "ERROR " + name;
        }
      }
      if (v.cached) name = "CACHED " + name;
      jobs.push({
        intervals: mergeIntervals(ivals),
        isCompleted,
        name,
        status: "",
        hasError,
        isCanceled,
        vertex: v,
        showTerm: false,
      });
      for (const s of v.statuses) {
        const st = s.status;
        const current = toBigInt(st.current);
        const total = toBigInt(st.total);
        let status = "";
        if (total !== 0n) status = `${formatBytes(current)} / ${formatBytes(total)}`;
        else if (current !== 0n) status = formatBytes(current);
        const startMs = optTime(st.started);
        const stopMs = optTime(st.completed);
        if (total > 0n && stopMs === undefined && this.#barWidth > 0) {
          status += " " + progressBar(current, total, this.#barWidth);
        }
        const started = startMs === undefined ? NaN : startMs + shift;
        const stop = stopMs === undefined ? undefined : stopMs + shift;
        jobs.push({
          intervals: [{ start: started, stop }],
          isCompleted: stopMs !== undefined,
          name: "=> " + s.id,
          status,
          hasError: false,
          isCanceled: false,
          vertex: undefined,
          showTerm: false,
        });
      }
      for (const w of v.warnings) {
        const mr = v.mostRecentInterval;
        const short = w.short instanceof Uint8Array ? new TextDecoder().decode(w.short) : "";
        jobs.push({
          intervals: [{ start: mr ? mr.start + shift : NaN, stop: sh(mr?.stop) }],
          isCompleted: false,
          name: "WARN: " + short,
          status: "",
          hasError: false,
          isCanceled: true,
          vertex: undefined,
          showTerm: false,
        });
      }
    }
    return jobs;
  }

  #setupTerminals(jobs: Job[], height: number, all: boolean, termHeight: number): Job[] {
    const candidates: Job[] = [];
    let numInUse = 0;
    for (const j of jobs) {
      if (j.vertex && j.vertex.termBytes > 0 && !j.isCompleted) candidates.push(j);
      if (!j.isCompleted) numInUse++;
    }
    const rank = (j: Job) => j.vertex!.termBytes + j.vertex!.termCount * 50;
    candidates.sort((a, b) => rank(b) - rank(a));
    let numFree = height - 2 - numInUse;
    let numToHide = 0;
    const termLimit = termHeight + 3;
    for (let i = 0; numFree > termLimit && i < candidates.length; i++) {
      const c = candidates[i]!;
      c.showTerm = true;
      numToHide += c.vertex!.termLines.slice(-termHeight).filter((l) => l.trim() !== "").length;
      numFree -= termLimit;
    }
    return all ? jobs : wrapHeight(jobs, height - 2 - numToHide);
  }
}

/** A transfer bar such as `[=====>    ]` of `width` characters. */
export function progressBar(current: bigint, total: bigint, width: number): string {
  const inner = Math.max(1, width - 2);
  let ratio = total > 0n ? Number(current) / Number(total) : 0;
  if (!(ratio >= 0)) ratio = 0;
  if (ratio > 1) ratio = 1;
  const filled = Math.floor(ratio * inner);
  const body = filled >= inner
    ? "=".repeat(inner)
    : "=".repeat(filled) + ">" + " ".repeat(inner - filled - 1);
  return `[${body}]`;
}

function align(l: string, r: string, w: number): string {
  const pad = w - r.length - 1;
  return (l.length < pad ? l.padEnd(pad) : l) + " " + r;
}

// Keeps the last `limit` jobs, pulling unfinished ones that would be cut back in.
function wrapHeight(j: Job[], limit: number): Job[] {
  if (limit < 0) return [];
  if (j.length <= limit) return [...j];
  let wrapped = j.slice(j.length - limit);
  const invisible = j.slice(0, j.length - limit).filter((x) => !x.isCompleted);
  let l = invisible.length;
  if (l > 0) {
    const rewrapped: Job[] = [];
    for (const x of wrapped) {
      if (!x.isCompleted || l <= 0) rewrapped.push(x);
      l--;
    }
    const free = wrapped.length - rewrapped.length;
    wrapped = [...invisible.slice(Math.max(0, invisible.length - free)), ...rewrapped];
  }
  return wrapped;
}
