/**
 * Build progress display for `buildctl build --progress=auto|tty|plain|rawjson|quiet`,
 * compatible with upstream buildctl's output.
 *
 * @example Usage
 * ```ts
 * import { createDisplay, resolveMode } from "./mod.ts";
 *
 * const isTerminal = Deno.stderr.isTerminal();
 * const display = createDisplay(resolveMode("auto", isTerminal), {
 *   out: Deno.stderr,
 *   isTerminal,
 * });
 * display.update({ vertexes: [], statuses: [], logs: [], warnings: [] });
 * await display.close();
 * ```
 *
 * @module
 */

import { ByteBuffer, type ByteWriter, SerialWriter } from "./_sink.ts";
import { after } from "../timer.ts";
import { ProgressModel, type StatusResponse, TimeShifter, type VertexWarning } from "./model.ts";
import { PlainPrinter } from "./plain.ts";
import { encodeSolveStatus } from "./rawjson.ts";
import { consoleSize, resolveColors, TtyRenderer } from "./tty.ts";
import { envGetter, type ProgressEnv, type ResolvedProgressMode, resolveMode } from "./mode.ts";

export type {
  ProgressGroup,
  Range,
  SourceInfo,
  StatusResponse,
  Vertex,
  VertexLog,
  VertexStatus,
  VertexWarning,
} from "./model.ts";
export type { TimeLike, Timestamp } from "./model.ts";
export { TimeShifter } from "./model.ts";
export { encodeSolveStatus } from "./rawjson.ts";
export { formatBytes, formatDuration } from "./units.ts";

export {
  PROGRESS_MODES,
  type ProgressEnv,
  type ProgressMode,
  type ResolvedProgressMode,
  resolveMode,
} from "./mode.ts";

/** Options of {@linkcode createDisplay}. */
export interface DisplayOptions {
  /** Where output goes (normally `Deno.stderr`). */
  out: ByteWriter;
  /** Whether `out` is a terminal (decides `auto`, allows `tty`). */
  isTerminal: boolean;
  /** Environment (default: the process environment). Read: `BUILDKIT_PROGRESS`,
   * `NO_COLOR`, `BUILDKIT_COLORS`, `BUILDKIT_TTY_LOG_LINES`, `TTY_DISPLAY_RATE`,
   * `PROGRESS_NO_TRUNC`. */
  env?: ProgressEnv;
  /** Clock in epoch ms (default `Date.now`). */
  now?: () => number;
  /** Terminal size for tty mode (default `Deno.consoleSize()`, else 80×10). */
  consoleSize?: () => { columns: number; rows: number };
  /**
   * Shift daemon times so the first started step lines up with the local
   * clock, as buildctl does (default true). Turn off when the caller has
   * already shifted the stream (e.g. to share it with `--trace`).
   */
  shiftTimes?: boolean;
  /** Header verb in tty mode (default `Building`). */
  phase?: string;
  /**
   * plain/tty only: on close, also print {@linkcode formatWarningsSummary}
   * of the warnings received (default false: upstream buildctl prints none).
   */
  warningsSummary?: boolean;
}

/** A running progress display. */
export interface Display {
  /** The mode in effect. */
  readonly mode: ResolvedProgressMode;
  /** Feeds one Status update (never throws on malformed input). */
  update(status: Partial<StatusResponse>): void;
  /**
   * Ends the display: prints the final state and, for failed steps, their
   * last log lines and error; resolves once everything is written.
   */
  close(): Promise<void>;
  /** Every warning received so far, in order. */
  warnings(): VertexWarning[];
}

const DEFAULT_DISPLAY_MS = 100;
const DEFAULT_TICK_MS = 150;

/**
 * Creates a display for `mode` (`auto` is resolved with
 * {@linkcode resolveMode}) that writes to `options.out`.
 *
 * @throws {Error} as {@linkcode resolveMode} does.
 */
export function createDisplay(mode: string, options: DisplayOptions): Display {
  const get = envGetter(options.env);
  const resolved = resolveMode(mode, options.isTerminal, options.env);
  const now = options.now ?? Date.now;
  const writer = new SerialWriter(options.out);
  const shifter = options.shiftTimes === false ? undefined : new TimeShifter(now());
  const shift = (s: Partial<StatusResponse>) => (shifter ? shifter.apply(s) : s);
  const collected: VertexWarning[] = [];

  if (resolved === "quiet") {
    return {
      mode: resolved,
      update(s) {
        collected.push(...(s?.warnings ?? []));
      },
      close: () => Promise.resolve(),
      warnings: () => [...collected],
    };
  }

  if (resolved === "rawjson") {
    const enc = new TextEncoder();
    let closed = false;
    return {
      mode: resolved,
      update(s) {
        if (closed || !s) return;
        collected.push(...(s.warnings ?? []));
        writer.push(enc.encode(encodeSolveStatus(shift(s)) + "\n"));
      },
      async close() {
        closed = true;
        await writer.flush();
      },
      warnings: () => [...collected],
    };
  }

  return new LiveDisplay(resolved, {
    get,
    now,
    writer,
    shift,
    size: options.consoleSize ?? consoleSize,
    phase: options.phase ?? "Building",
    warningsSummary: options.warningsSummary ?? false,
  });
}

interface LiveDisplayDeps {
  get: (key: string) => string | undefined;
  now: () => number;
  writer: SerialWriter;
  shift: (s: Partial<StatusResponse>) => Partial<StatusResponse>;
  size: () => { columns: number; rows: number };
  phase: string;
  warningsSummary: boolean;
}

/** plain and tty: a model, a rate-limited refresh and a periodic tick. */
class LiveDisplay implements Display {
  readonly mode: "plain" | "tty";
  #deps: LiveDisplayDeps;
  #model: ProgressModel;
  #buf = new ByteBuffer();
  #plain: PlainPrinter | undefined;
  #tty: TtyRenderer | undefined;
  #displayMs: number;
  #tickMs: number;
  #lastRefresh = -Infinity;
  /** Cancels the pending tick; one timer at a time, re-armed as needed. */
  #cancelTick: (() => void) | undefined;
  /** When the next tick is due (performance.now()): `#tickMs` after the last update or tick. */
  #tickDue = 0;
  #closed = false;

  constructor(mode: "plain" | "tty", deps: LiveDisplayDeps) {
    this.mode = mode;
    this.#deps = deps;
    const logLines = Number.parseInt(deps.get("BUILDKIT_TTY_LOG_LINES") ?? "", 10);
    this.#model = new ProgressModel({
      now: deps.now,
      termLines: Number.isInteger(logLines) && logLines > 0 ? logLines : 6,
    });
    this.#displayMs = DEFAULT_DISPLAY_MS;
    this.#tickMs = DEFAULT_TICK_MS;
    const rate = deps.get("TTY_DISPLAY_RATE");
    if (rate !== undefined && /^-?\d+$/.test(rate.trim())) {
      const r = Number.parseInt(rate, 10);
      this.#displayMs = r;
      this.#tickMs = r;
    }
    if (mode === "plain") {
      this.#plain = new PlainPrinter(this.#buf, {
        now: deps.now,
        truncateNames: deps.get("PROGRESS_NO_TRUNC") === "0",
      });
    } else {
      this.#tty = new TtyRenderer(this.#buf, {
        now: deps.now,
        size: deps.size,
        colors: resolveColors(deps.get),
        phase: deps.phase,
        logLines: Number.isInteger(logLines) && logLines > 0 ? logLines : undefined,
      });
    }
  }

  update(status: Partial<StatusResponse>): void {
    if (this.#closed || !status) return;
    try {
      this.#model.update(this.#deps.shift(status));
    } catch {
      return; // a malformed update must not break the build
    }
    const t = this.#deps.now();
    if (this.#displayMs <= 0 || t - this.#lastRefresh >= this.#displayMs) {
      this.#lastRefresh = t;
      this.#refresh();
    }
    this.#resetTicker();
  }

  warnings(): VertexWarning[] {
    return [...this.#model.warnings];
  }

  async close(): Promise<void> {
    if (this.#closed) return this.#deps.writer.flush();
    this.#closed = true;
    this.#stopTicker();
    if (this.#plain) {
      this.#plain.print(this.#model);
      this.#plain.printErrorLogs(this.#model);
    } else if (this.#tty) {
      this.#tty.render(this.#model, true);
      this.#tty.printErrorLogs(this.#model);
    }
    if (this.#deps.warningsSummary) this.#buf.text(formatWarningsSummary(this.#model.warnings));
    this.#flushBuffer();
    await this.#deps.writer.flush();
  }

  #refresh(): void {
    if (this.#plain) this.#plain.print(this.#model);
    else this.#tty?.render(this.#model, false);
    this.#flushBuffer();
  }

  #flushBuffer(): void {
    if (this.#buf.size > 0) this.#deps.writer.push(this.#buf.take());
  }

  /**
   * Refreshes every `#tickMs` without updates (running steps' timers move).
   * An update only moves the due time; the one pending timer re-arms
   * itself when it fires early. (Not setInterval: see `timer.ts`. A pending
   * tick keeps the process alive until `close()`, which every caller runs.)
   */
  #resetTicker(): void {
    if (this.#tickMs <= 0) return;
    this.#tickDue = performance.now() + this.#tickMs;
    if (!this.#cancelTick) this.#armTicker(this.#tickMs);
  }

  #armTicker(ms: number): void {
    this.#cancelTick = after(ms, () => {
      this.#cancelTick = undefined;
      if (this.#closed) return;
      const left = this.#tickDue - performance.now();
      if (left > 1) return this.#armTicker(left);
      this.#refresh();
      this.#tickDue = performance.now() + this.#tickMs;
      this.#armTicker(this.#tickMs);
    });
  }

  #stopTicker(): void {
    this.#cancelTick?.();
    this.#cancelTick = undefined;
  }
}

/**
 * Formats a summary of build warnings (buildctl itself prints none; this
 * is for callers that want one): a blank line, `N warning(s) found:`, then
 * ` - <short> (line L)` per warning.
 */
export function formatWarningsSummary(warnings: readonly VertexWarning[]): string {
  if (warnings.length === 0) return "";
  const dec = new TextDecoder();
  const lines = [
    "",
    `${warnings.length} warning${warnings.length === 1 ? "" : "s"} found:`,
  ];
  for (const w of warnings) {
    const short = w.short instanceof Uint8Array ? dec.decode(w.short) : "";
    const line = w.ranges?.[0]?.start?.line;
    lines.push(` - ${short}${line ? ` (line ${line})` : ""}`);
  }
  return lines.join("\n") + "\n";
}
