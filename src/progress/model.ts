/**
 * The input shapes of the progress displays (structural twins of the
 * generated `moby.buildkit.v1` Status messages) and the pure model that
 * aggregates a stream of them: vertices in order of first start, merged run
 * intervals, transfer statuses, log lines, warnings and errors. It mirrors
 * the bookkeeping of upstream `progressui` (the "trace") so that the plain
 * printer and the tty renderer built on it behave like upstream buildctl.
 *
 * @module
 */

import { durationSeconds, formatFixed } from "./units.ts";

/** `google.protobuf.Timestamp` as ts-proto generates it (`seconds` may also be a number). */
export interface Timestamp {
  seconds: bigint | number;
  nanos: number;
}

/**
 * A point in time as generated code may hand it over: a `Date` (ts-proto
 * `useDate`) or a protobuf {@linkcode Timestamp} (nanosecond precision).
 */
export type TimeLike = Date | Timestamp;

/** `pb.ProgressGroup`: vertices sharing one are shown as a single step. */
export interface ProgressGroup {
  id: string;
  name: string;
  weak: boolean;
}

/** `moby.buildkit.v1.Vertex`: one step of the build graph. */
export interface Vertex {
  digest: string;
  inputs: string[];
  name: string;
  cached: boolean;
  started?: TimeLike | undefined;
  completed?: TimeLike | undefined;
  error: string;
  progressGroup?: ProgressGroup | undefined;
}

/** `moby.buildkit.v1.VertexStatus`: a sub-task (usually a transfer) of a vertex. */
export interface VertexStatus {
  ID: string;
  vertex: string;
  name: string;
  current: bigint;
  total: bigint;
  timestamp?: TimeLike | undefined;
  started?: TimeLike | undefined;
  completed?: TimeLike | undefined;
}

/** `moby.buildkit.v1.VertexLog`: a chunk of output of a vertex (stream 1 stdout, 2 stderr). */
export interface VertexLog {
  vertex: string;
  timestamp?: TimeLike | undefined;
  stream: bigint;
  msg: Uint8Array;
}

/** `pb.Position` (1-based line). */
export interface Position {
  line: number;
  character: number;
}

/** `pb.Range`. */
export interface Range {
  start?: Position | undefined;
  end?: Position | undefined;
}

/** `pb.SourceInfo` (the generated type also has an optional `definition`). */
export interface SourceInfo {
  filename: string;
  data: Uint8Array;
  language: string;
}

/** `moby.buildkit.v1.VertexWarning`. */
export interface VertexWarning {
  vertex: string;
  level: bigint;
  short: Uint8Array;
  detail: Uint8Array[];
  url: string;
  info?: SourceInfo | undefined;
  ranges: Range[];
}

/** `moby.buildkit.v1.StatusResponse`: one update of the Status stream. */
export interface StatusResponse {
  vertexes: Vertex[];
  statuses: VertexStatus[];
  logs: VertexLog[];
  warnings: VertexWarning[];
}

/** A run interval of a vertex, in epoch milliseconds; `stop` unset while running. */
export interface Interval {
  start: number;
  stop?: number | undefined;
}

/** A transfer status as last reported (the object is replaced by each update). */
export interface StatusState {
  /** Status ID, e.g. `transferring context` or a layer digest. */
  readonly id: string;
  /** The latest report. */
  status: VertexStatus;
}

/** Options of {@linkcode ProgressModel}. */
export interface ProgressModelOptions {
  /** Clock in epoch milliseconds (default `Date.now`). */
  now?: () => number;
  /** Number of recent log lines kept per vertex for error reports (default 10). */
  tailLines?: number;
  /** Number of recent raw output lines kept per vertex for the tty view (default 6). */
  termLines?: number;
}

const CANCELED_SUFFIX = "context canceled";
const NEWLINE = 0x0a;
const encoder = new TextEncoder();

const NS_PER_MS = 1_000_000n;
const NS_PER_S = 1_000_000_000n;

/** Exact nanoseconds since the epoch of a Date or Timestamp; undefined when absent or invalid. */
export function timeNs(t: unknown): bigint | undefined {
  if (t instanceof Date) {
    const ms = t.getTime();
    return Number.isFinite(ms) ? BigInt(ms) * NS_PER_MS : undefined;
  }
  if (t !== null && typeof t === "object" && "seconds" in t) {
    const { seconds, nanos } = t as { seconds: unknown; nanos?: unknown };
    let sec: bigint;
    if (typeof seconds === "bigint") sec = seconds;
    else if (typeof seconds === "number" && Number.isFinite(seconds)) {
      sec = BigInt(Math.trunc(seconds));
    } else if (typeof seconds === "string" && /^-?\d+$/.test(seconds)) sec = BigInt(seconds);
    else return undefined;
    const n = typeof nanos === "number" && Number.isFinite(nanos) ? Math.trunc(nanos) : 0;
    return sec * NS_PER_S + BigInt(n);
  }
  return undefined;
}

/** Milliseconds since the epoch (fractional for sub-millisecond Timestamps), or undefined. */
export function optTime(t: unknown): number | undefined {
  const ns = timeNs(t);
  if (ns === undefined) return undefined;
  const whole = ns / NS_PER_MS;
  return Number(whole) + Number(ns - whole * NS_PER_MS) / 1e6;
}

/** True when `t` is a usable time. */
export function hasTime(t: unknown): boolean {
  return timeNs(t) !== undefined;
}

/** Milliseconds of an optional time; a missing time counts as the epoch (like Go's `AsTime(nil)`). */
export function timeOf(t: unknown): number {
  return optTime(t) ?? 0;
}

/**
 * Merges overlapping intervals (an open interval swallows everything after
 * its start); the result is sorted by start.
 */
export function mergeIntervals(intervals: Iterable<Interval>): Interval[] {
  const list = [...intervals].filter((i) => Number.isFinite(i.start));
  if (list.length === 0) return [];
  list.sort((a, b) => a.start - b.start);
  const merged: Interval[] = [];
  let cur = list[0]!;
  for (let i = 1; i < list.length; i++) {
    const next = list[i]!;
    if (cur.stop === undefined) {
      merged.push(cur);
      return merged;
    }
    if (cur.stop < next.start) {
      merged.push(cur);
      cur = next;
      continue;
    }
    if (next.stop === undefined) {
      merged.push({ start: cur.start });
      return merged;
    }
    if (cur.stop >= next.stop) continue;
    cur = { start: cur.start, stop: next.stop };
  }
  merged.push(cur);
  return merged;
}

/** One displayed step: a vertex, or the pseudo-vertex of a progress group. */
export class VertexState {
  /** Digest (or progress group id). */
  readonly digest: string;
  /** True for the pseudo-vertex standing for a progress group. */
  readonly isGroup: boolean;
  /** Latest vertex data (synthesised for a group). */
  vertex: Vertex;
  /** Members of a group, by digest. */
  readonly members: Map<string, Vertex> = new Map();
  /** A group stays hidden until a non-weak member starts. */
  hidden = false;
  /** Run intervals keyed by start time. */
  readonly intervals: Map<number, Interval> = new Map();
  /** {@linkcode intervals} merged and sorted. */
  merged: Interval[] = [];
  /** Statuses in order of their first start. */
  readonly statuses: StatusState[] = [];
  /** Every status ever seen, by ID. */
  readonly statusById: Map<string, StatusState> = new Map();
  /** IDs of statuses updated since the plain printer last looked. */
  statusUpdates: Set<string> = new Set();
  /** Warnings in arrival order. */
  readonly warnings: VertexWarning[] = [];
  /** Log lines not yet consumed by the plain printer, each `"<secs> <text>"`. */
  logs: Uint8Array[] = [];
  /** True when the last log line has no newline yet. */
  logsPartial = false;
  /** The last few log lines (same format as {@linkcode logs}), kept for error reports. */
  readonly tail: Uint8Array[] = [];
  /** True when the last line of {@linkcode tail} is still open. */
  tailPartial = false;
  /** The last few raw output lines (decoded, no time prefix) for the tty view. */
  readonly termLines: string[] = [];
  /** Bytes of output received (tty ranks vertices by this). */
  termBytes = 0;
  /** How many frames showed this vertex's output (tty ranking). */
  termCount = 0;
  /** Updates since the plain printer last switched away (upstream's `count`). */
  count = 0;
  /** When {@linkcode count} went from 0 to 1 (epoch ms). */
  lastBlockTime: number | undefined = undefined;
  /** The last started vertex report, for change detection. */
  prev: Vertex | undefined = undefined;
  #termOpen = false;
  #decoder = new TextDecoder();

  constructor(digest: string, vertex: Vertex, isGroup = false) {
    this.digest = digest;
    this.vertex = vertex;
    this.isGroup = isGroup;
  }

  /** Display name. */
  get name(): string {
    return this.vertex.name ?? "";
  }

  /** True when served from cache. */
  get cached(): boolean {
    return Boolean(this.vertex.cached);
  }

  /** Error text (empty when none). */
  get error(): string {
    return this.vertex.error ?? "";
  }

  /** True when the error is a cancellation (`… context canceled`). */
  get canceled(): boolean {
    return this.error !== "" && this.error.endsWith(CANCELED_SUFFIX);
  }

  /** True once the vertex has run at least once. */
  get isStarted(): boolean {
    return this.merged.length > 0;
  }

  /** True when started and the latest run has stopped. */
  get isCompleted(): boolean {
    const ival = this.mostRecentInterval;
    return ival !== undefined && ival.stop !== undefined;
  }

  /** The latest merged interval. */
  get mostRecentInterval(): Interval | undefined {
    return this.merged[this.merged.length - 1];
  }

  /** Total run time in ms of the merged intervals (open ones up to `now`). */
  elapsedMs(now: number): number {
    let sum = 0;
    for (const ival of this.merged) sum += (ival.stop ?? now) - ival.start;
    return sum;
  }

  /** Counts one update (upstream `vertex.update`). */
  touch(now: number): void {
    if (this.count === 0) this.lastBlockTime = now;
    this.count++;
  }

  /** Recomputes {@linkcode merged} from {@linkcode intervals}. */
  remerge(): void {
    this.merged = mergeIntervals(this.intervals.values());
  }

  /** Adds raw output to the tty line buffer. */
  addTermOutput(data: Uint8Array, keep: number): void {
    this.termBytes += data.length;
    const text = this.#decoder.decode(data, { stream: true });
    const parts = text.split("\n");
    for (let i = 0; i < parts.length; i++) {
      const isLast = i === parts.length - 1;
      if (isLast && parts[i] === "") {
        this.#termOpen = false;
        break;
      }
      const cleaned = cleanTermLine(parts[i]!);
      if (i === 0 && this.#termOpen && this.termLines.length > 0) {
        const prevLine = this.termLines[this.termLines.length - 1]!;
        this.termLines[this.termLines.length - 1] = parts[i]!.includes("\r")
          ? cleaned
          : prevLine + cleaned;
      } else {
        this.termLines.push(cleaned);
      }
      this.#termOpen = isLast;
    }
    while (this.termLines.length > keep) this.termLines.shift();
  }
}

// Strips escape sequences and keeps what a terminal would show after `\r`.
function cleanTermLine(s: string): string {
  // deno-lint-ignore no-control-regex
  const noEsc = s.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]/g, "");
  const cr = noEsc.lastIndexOf("\r", noEsc.length - 2);
  const visible = cr >= 0 ? noEsc.slice(cr + 1) : noEsc;
  // deno-lint-ignore no-control-regex
  return visible.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "").replace(/\t/g, "    ");
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Formats seconds with upstream's precision: 3 decimals below 10 s, 2 below 100 s, else 1. */
export function logTimePrefix(seconds: number): string {
  const prec = seconds < 10 ? 3 : seconds < 100 ? 2 : 1;
  return formatFixed(seconds, prec);
}

/**
 * Aggregates StatusResponse updates. Read {@linkcode vertexes} for the
 * display order, {@linkcode get} for a digest, {@linkcode updates} for the
 * set of steps changed since the plain printer last ran.
 */
export class ProgressModel {
  /** Started steps, in order of first start (groups once revealed). */
  readonly vertexes: VertexState[] = [];
  /** Every key (vertex digest, group id, and group member digests) to its step. */
  readonly byDigest: Map<string, VertexState> = new Map();
  /** Steps with news for the plain printer, in order of change. */
  readonly updates: Set<string> = new Set();
  /** Every warning received, in order (including those of unknown vertices). */
  readonly warnings: VertexWarning[] = [];
  /** Start of the first vertex seen with a start time (epoch ms). */
  startTime: number | undefined = undefined;
  /** Local clock minus daemon clock, measured at the first start (ms). */
  localTimeDiff = 0;
  #timeDiffKnown = false;
  readonly #groups: Map<string, VertexState> = new Map();
  readonly #now: () => number;
  readonly #tailLines: number;
  readonly #termLines: number;

  constructor(options: ProgressModelOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#tailLines = options.tailLines ?? 10;
    this.#termLines = options.termLines ?? 6;
  }

  /** The step for a digest (a group member maps to its group). */
  get(digest: string): VertexState | undefined {
    return this.byDigest.get(digest);
  }

  /** Distinct steps in order of first appearance (started or not). */
  all(): VertexState[] {
    return [...new Set(this.byDigest.values())];
  }

  /** Steps that failed (cancellations excluded), in display order. */
  failed(): VertexState[] {
    return this.vertexes.filter((v) => v.error !== "" && !v.canceled);
  }

  /**
   * Upstream's `(completed/total)` counters. Like upstream, the total counts
   * map entries, so a group counts once per member plus once for itself.
   */
  counts(): { completed: number; total: number } {
    let total = 0;
    let completed = 0;
    for (const v of this.byDigest.values()) {
      if (v.hidden) continue;
      total++;
      if (v.isCompleted) completed++;
    }
    return { completed, total };
  }

  /** Applies one update. Missing optional fields are tolerated. */
  update(s: Partial<StatusResponse>): void {
    const now = this.#now();
    const groupsSeen: string[] = [];
    for (const v of s.vertexes ?? []) {
      if (!v || typeof v.digest !== "string") continue;
      const started = optTime(v.started);
      if (this.startTime === undefined && started !== undefined) this.startTime = started;
      if (v.progressGroup) {
        this.#addGroupMember(v, groupsSeen);
        continue;
      }
      let state = this.byDigest.get(v.digest);
      const isNew = state === undefined;
      if (state === undefined) {
        state = new VertexState(v.digest, normaliseVertex(v));
        this.byDigest.set(v.digest, state);
      }
      const wasStarted = !isNew && state.isStarted;
      this.#triggerEvent(state, v, now);
      if (started !== undefined && !wasStarted) {
        this.#measureTimeDiff(now, started);
        this.vertexes.push(state);
      }
      // A repeated report without a start time must not reset a started vertex.
      if (!wasStarted || started !== undefined) {
        const merged = normaliseVertex(v);
        if (merged.name === "" && !isNew) merged.name = state.vertex.name;
        if (merged.inputs.length === 0 && !isNew) merged.inputs = state.vertex.inputs;
        state.vertex = merged;
      }
      if (started !== undefined) {
        state.intervals.set(started, { start: started, stop: optTime(v.completed) });
        state.remerge();
      }
    }
    for (const id of groupsSeen) this.#refreshGroup(id, now);

    for (const st of s.statuses ?? []) {
      if (!st) continue;
      const v = this.byDigest.get(st.vertex);
      if (!v) continue;
      const id = st.ID ?? "";
      let entry = v.statusById.get(id);
      const hadStart = entry !== undefined && hasTime(entry.status.started);
      if (entry === undefined) {
        entry = { id, status: st };
        v.statusById.set(id, entry);
      }
      if (hasTime(st.started) && !hadStart) v.statuses.push(entry);
      entry.status = st;
      v.statusUpdates.add(id);
      this.updates.add(v.digest);
      v.touch(now);
    }

    for (const w of s.warnings ?? []) {
      if (!w) continue;
      this.warnings.push(w);
      const v = this.byDigest.get(w.vertex);
      if (!v) continue;
      v.warnings.push(w);
      v.touch(now);
    }

    for (const l of s.logs ?? []) {
      if (!l) continue;
      const v = this.byDigest.get(l.vertex);
      if (!v) continue;
      const data = l.msg instanceof Uint8Array ? l.msg : new Uint8Array();
      v.addTermOutput(data, this.#termLines);
      this.#addLog(v, data, timeOf(l.timestamp));
      this.updates.add(v.digest);
      v.touch(now);
    }
  }

  // Measured once, at the first start (upstream re-measures while the value is
  // exactly 0, which with nanosecond clocks means "not yet").
  #measureTimeDiff(now: number, started: number): void {
    if (this.#timeDiffKnown) return;
    this.#timeDiffKnown = true;
    this.localTimeDiff = now - started;
  }

  #addLog(v: VertexState, data: Uint8Array, ts: number): void {
    // Upstream quirk kept: an empty chunk marks the log as partial.
    if (data.length === 0) {
      v.logsPartial = true;
      v.tailPartial = true;
      return;
    }
    let start = 0;
    let first = true;
    while (start <= data.length) {
      const idx = data.indexOf(NEWLINE, start);
      const end = idx === -1 ? data.length : idx;
      if (idx === -1 && start === data.length) break;
      const seg = data.subarray(start, end);
      if (first && v.logsPartial && v.logs.length > 0) {
        v.logs[v.logs.length - 1] = concatBytes(v.logs[v.logs.length - 1]!, seg);
      } else {
        const ival = v.mostRecentInterval;
        const secs = ival ? durationSeconds(ts - ival.start) : 0;
        v.logs.push(concatBytes(encoder.encode(logTimePrefix(secs) + " "), seg));
      }
      if (first && v.tailPartial && v.tail.length > 0) {
        v.tail[v.tail.length - 1] = concatBytes(v.tail[v.tail.length - 1]!, seg);
      } else {
        v.tail.push(v.logs[v.logs.length - 1]!);
        while (v.tail.length > this.#tailLines) v.tail.shift();
      }
      first = false;
      if (idx === -1) {
        v.logsPartial = true;
        v.tailPartial = true;
        return;
      }
      start = idx + 1;
    }
    v.logsPartial = false;
    v.tailPartial = false;
  }

  #triggerEvent(state: VertexState, v: Vertex, now: number): void {
    if (!hasTime(v.started)) return;
    const old = state.prev;
    let changed = old === undefined || v.digest !== old.digest;
    if (old !== undefined) {
      if (v.name !== old.name) changed = true;
      if (optTime(v.started) !== optTime(old.started)) changed = true;
      if (hasTime(v.completed) && optTime(v.completed) !== optTime(old.completed)) {
        changed = true;
      }
      if (Boolean(v.cached) !== Boolean(old.cached)) changed = true;
      if ((v.error ?? "") !== (old.error ?? "")) changed = true;
    }
    if (changed) {
      state.touch(now);
      this.updates.add(state.digest);
    }
    state.prev = v;
  }

  #addGroupMember(v: Vertex, groupsSeen: string[]): void {
    const pg = v.progressGroup!;
    const id = pg.id ?? "";
    let group = this.#groups.get(id);
    if (group === undefined) {
      group = new VertexState(
        id,
        { digest: id, name: pg.name ?? "", inputs: [], cached: false, error: "" },
        true,
      );
      group.hidden = true;
      this.#groups.set(id, group);
      this.byDigest.set(id, group);
    }
    if (!groupsSeen.includes(id)) groupsSeen.push(id);
    group.members.set(v.digest, v);
    this.byDigest.set(v.digest, group);
  }

  #refreshGroup(id: string, now: number): void {
    const group = this.#groups.get(id)!;
    const alreadyStarted = group.isStarted;
    const wasHidden = group.hidden;
    let changed = false;
    let newlyStarted = false;
    let cached = true;
    let error = group.error;
    for (const member of group.members.values()) {
      const started = optTime(member.started);
      if (started !== undefined) {
        const stop = optTime(member.completed);
        const prev = group.intervals.get(started);
        if (prev === undefined || prev.start !== started || prev.stop !== stop) changed = true;
        if (!alreadyStarted) newlyStarted = true;
        group.intervals.set(started, { start: started, stop });
        if (!member.progressGroup?.weak) group.hidden = false;
      }
      cached = cached && Boolean(member.cached);
      if (error === "") error = member.error ?? "";
      else group.hidden = false;
    }
    if (group.cached !== cached || group.error !== error) changed = true;
    group.vertex = { ...group.vertex, cached, error };
    let newlyRevealed = false;
    if (!group.hidden && wasHidden) {
      changed = true;
      newlyRevealed = true;
    }
    group.remerge();
    if (newlyStarted && group.merged.length > 0) this.#measureTimeDiff(now, group.merged[0]!.start);
    if (group.hidden) return;
    if (newlyRevealed) this.vertexes.push(group);
    if (changed) {
      group.touch(now);
      this.updates.add(group.digest);
    }
  }
}

function normaliseVertex(v: Vertex): Vertex {
  return {
    ...v,
    digest: v.digest,
    name: v.name ?? "",
    inputs: Array.isArray(v.inputs) ? v.inputs : [],
    cached: Boolean(v.cached),
    error: v.error ?? "",
  };
}

function fromNs(ns: bigint, like: unknown): TimeLike {
  if (like instanceof Date) {
    const ms = ns >= 0n ? ns / NS_PER_MS : -((-ns + NS_PER_MS - 1n) / NS_PER_MS);
    return new Date(Number(ms));
  }
  let sec = ns / NS_PER_S;
  let nanos = ns - sec * NS_PER_S;
  if (nanos < 0n) {
    sec -= 1n;
    nanos += NS_PER_S;
  }
  return { seconds: sec, nanos: Number(nanos) };
}

/**
 * Shifts daemon timestamps so that the first started vertex lines up with
 * the local clock at creation time, as buildctl does before displaying
 * (rawjson and `--trace` see the shifted values too). Warnings are left
 * as they are. Dates stay Dates and Timestamps stay Timestamps (exact to
 * the nanosecond); a missing status/log time becomes the shifted epoch.
 */
export class TimeShifter {
  #origin: bigint;
  #diff: bigint | undefined = undefined;

  /** `origin`: local time (epoch ms) the first start is mapped to. */
  constructor(origin: number) {
    this.#origin = BigInt(Math.round(origin)) * NS_PER_MS;
  }

  /** The offset in ms subtracted from daemon times, once known. */
  get offset(): number | undefined {
    return this.#diff === undefined ? undefined : Number(this.#diff) / 1e6;
  }

  /** Returns a shifted copy of `s` (the input is not modified). */
  apply(s: Partial<StatusResponse>): StatusResponse {
    if (this.#diff === undefined) {
      for (const v of s.vertexes ?? []) {
        const ns = timeNs(v?.started);
        if (ns !== undefined) this.#diff = ns - this.#origin;
      }
    }
    const diff = this.#diff;
    if (diff === undefined) {
      return {
        ...s,
        vertexes: s.vertexes ?? [],
        statuses: s.statuses ?? [],
        logs: s.logs ?? [],
        warnings: s.warnings ?? [],
      };
    }
    const shift = (t: TimeLike | undefined): TimeLike | undefined => {
      const ns = timeNs(t);
      return ns === undefined ? undefined : fromNs(ns - diff, t);
    };
    const always = (t: TimeLike | undefined): TimeLike => fromNs((timeNs(t) ?? 0n) - diff, t);
    return {
      ...s,
      vertexes: (s.vertexes ?? []).map((v) => ({
        ...v,
        started: shift(v.started),
        completed: shift(v.completed),
      })),
      statuses: (s.statuses ?? []).map((st) => ({
        ...st,
        timestamp: always(st.timestamp),
        started: shift(st.started),
        completed: shift(st.completed),
      })),
      logs: (s.logs ?? []).map((l) => ({ ...l, timestamp: always(l.timestamp) })),
      warnings: s.warnings ?? [],
    };
  }
}
