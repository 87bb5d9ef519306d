/**
 * Recorded-style StatusResponse fixtures shared by the progress tests. They
 * follow the shape of a real `buildctl build` of a two-stage Dockerfile
 * (digests shortened, times relative to {@linkcode T0}).
 *
 * @module
 */

import type {
  ProgressGroup,
  StatusResponse,
  Vertex,
  VertexLog,
  VertexStatus,
  VertexWarning,
} from "./model.ts";

/** Daemon time of the first vertex start: 2024-01-01T00:00:00Z. */
export const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);

const enc = new TextEncoder();

/** A date `ms` after {@linkcode T0}. */
export function at(ms: number): Date {
  return new Date(T0 + ms);
}

/** A fake digest made from a short label. */
export function dg(label: string): string {
  return "sha256:" + label.padEnd(64, "0");
}

/** Builds a Vertex. */
export function vtx(
  label: string,
  name: string,
  opts: {
    started?: number;
    completed?: number;
    cached?: boolean;
    error?: string;
    inputs?: string[];
    progressGroup?: ProgressGroup;
  } = {},
): Vertex {
  return {
    digest: dg(label),
    inputs: opts.inputs ?? [],
    name,
    cached: opts.cached ?? false,
    started: opts.started === undefined ? undefined : at(opts.started),
    completed: opts.completed === undefined ? undefined : at(opts.completed),
    error: opts.error ?? "",
    progressGroup: opts.progressGroup,
  };
}

/** Builds a VertexStatus. */
export function st(
  label: string,
  id: string,
  opts: { current?: number; total?: number; ts: number; started?: number; completed?: number },
): VertexStatus {
  return {
    ID: id,
    vertex: dg(label),
    name: "",
    current: BigInt(opts.current ?? 0),
    total: BigInt(opts.total ?? 0),
    timestamp: at(opts.ts),
    started: opts.started === undefined ? undefined : at(opts.started),
    completed: opts.completed === undefined ? undefined : at(opts.completed),
  };
}

/** Builds a VertexLog. */
export function lg(label: string, ts: number, text: string, stream = 1): VertexLog {
  return { vertex: dg(label), timestamp: at(ts), stream: BigInt(stream), msg: enc.encode(text) };
}

/** Builds a VertexWarning. */
export function wn(label: string, short: string, line = 0): VertexWarning {
  return {
    vertex: dg(label),
    level: 1n,
    short: enc.encode(short),
    detail: [enc.encode("detail of " + short)],
    url: "https://docs.docker.com/go/dockerfile/rule/x/",
    info: { filename: "Dockerfile", data: enc.encode("FROM alpine\n"), language: "Dockerfile" },
    ranges: line ? [{ start: { line, character: 0 }, end: { line, character: 0 } }] : [],
  };
}

/** A StatusResponse from parts. */
export function resp(parts: Partial<StatusResponse>): StatusResponse {
  return {
    vertexes: parts.vertexes ?? [],
    statuses: parts.statuses ?? [],
    logs: parts.logs ?? [],
    warnings: parts.warnings ?? [],
  };
}

const DEF = "[internal] load build definition from Dockerfile";
const META = "[internal] load metadata for docker.io/library/alpine:latest";
const CTX = "[internal] load .dockerignore";
const FROM =
  "[1/2] FROM docker.io/library/alpine:latest@sha256:beefdbd8a1da6d2915566fde36db9db0b524eb737fc57cd1367effd16dc0d06d";
const RUN = "[2/2] RUN echo hi";

/** A successful build: transfer statuses, a cached step, a RUN with output. */
export const BASIC: StatusResponse[] = [
  resp({ vertexes: [vtx("a", DEF, { started: 0 })] }),
  resp({
    statuses: [st("a", "transferring dockerfile", { current: 92, ts: 10, started: 5 })],
  }),
  resp({
    vertexes: [vtx("a", DEF, { started: 0, completed: 30 })],
    statuses: [
      st("a", "transferring dockerfile", { current: 92, ts: 20, started: 5, completed: 20 }),
    ],
  }),
  resp({ vertexes: [vtx("b", CTX, { started: 31 })] }),
  resp({
    vertexes: [vtx("b", CTX, { started: 31, completed: 40 })],
    statuses: [st("b", "transferring context", { current: 2, ts: 39, started: 32, completed: 39 })],
  }),
  resp({ vertexes: [vtx("c", META, { started: 41 })] }),
  resp({ vertexes: [vtx("c", META, { started: 41, completed: 650 })] }),
  resp({
    vertexes: [vtx("d", FROM, { started: 660, completed: 660, cached: true })],
  }),
  resp({ vertexes: [vtx("e", RUN, { started: 700, inputs: [dg("d")] })] }),
  resp({ logs: [lg("e", 882, "hi\n")] }),
  resp({ vertexes: [vtx("e", RUN, { started: 700, completed: 905, inputs: [dg("d")] })] }),
];

const FAIL = "[2/2] RUN echo start && ls /nope";
const FAIL_ERR =
  'process "/bin/sh -c echo start && ls /nope" did not complete successfully: exit code: 2';

/** A failing RUN with a few log lines on both streams. */
export const FAILED: StatusResponse[] = [
  resp({ vertexes: [vtx("d", FROM, { started: 0, completed: 0, cached: true })] }),
  resp({ vertexes: [vtx("f", FAIL, { started: 100 })] }),
  resp({
    logs: [
      lg("f", 150, "start\n"),
      lg("f", 160, "ls: /nope: No such file or directory\n", 2),
    ],
  }),
  resp({ vertexes: [vtx("f", FAIL, { started: 100, completed: 1234, error: FAIL_ERR })] }),
];

/** The error text of {@linkcode FAILED}. */
export const FAILED_ERROR = FAIL_ERR;

/** Two steps running at once whose output interleaves. */
export const INTERLEAVED: StatusResponse[] = [
  resp({ vertexes: [vtx("g", "[a 1/1] RUN loop a", { started: 0 })] }),
  resp({ vertexes: [vtx("h", "[b 1/1] RUN loop b", { started: 10 })] }),
  resp({ logs: [lg("g", 100, "a1\n")] }),
  resp({ logs: [lg("h", 110, "b1\n")] }),
  resp({ logs: [lg("g", 200, "a2\n"), lg("h", 210, "b2\n")] }),
  resp({ vertexes: [vtx("g", "[a 1/1] RUN loop a", { started: 0, completed: 300 })] }),
  resp({ logs: [lg("h", 310, "b3\n")] }),
  resp({ vertexes: [vtx("h", "[b 1/1] RUN loop b", { started: 10, completed: 400 })] }),
];

/**
 * Two long-running steps with output every second; {@linkcode SLOW_CLOCK}
 * gives the local time of each update, so the printer's fair-share
 * switching (`#N ...`) kicks in.
 */
export const SLOW: StatusResponse[] = [
  resp({ vertexes: [vtx("s", "[a 1/1] RUN long a", { started: 0 })] }),
  resp({ vertexes: [vtx("t", "[b 1/1] RUN long b", { started: 0 })] }),
  ...Array.from({ length: 14 }, (_, i) =>
    resp({
      logs: [lg("s", (i + 1) * 1000, `a${i + 1}\n`), lg("t", (i + 1) * 1000 + 10, `b${i + 1}\n`)],
    })),
  resp({ vertexes: [vtx("s", "[a 1/1] RUN long a", { started: 0, completed: 15_000 })] }),
  resp({ vertexes: [vtx("t", "[b 1/1] RUN long b", { started: 0, completed: 15_100 })] }),
];

/** Local clock (epoch ms) at each update of {@linkcode SLOW}. */
export const SLOW_CLOCK: number[] = SLOW.map((_, i) => T0 + Math.max(0, i - 1) * 1000 + 20);

/** Like {@linkcode SLOW}, but the first step writes a progress line without newlines. */
export const PARTIAL: StatusResponse[] = [
  resp({ vertexes: [vtx("s", "[a 1/1] RUN dots", { started: 0 })] }),
  resp({ vertexes: [vtx("t", "[b 1/1] RUN lines", { started: 0 })] }),
  ...Array.from({ length: 14 }, (_, i) =>
    resp({
      logs: [
        lg("s", (i + 1) * 1000, i === 0 ? "working." : "."),
        lg("t", (i + 1) * 1000 + 10, `b${i + 1}\n`),
      ],
    })),
  resp({ logs: [lg("s", 14_500, "ok\n")] }),
  resp({ vertexes: [vtx("s", "[a 1/1] RUN dots", { started: 0, completed: 15_000 })] }),
  resp({ vertexes: [vtx("t", "[b 1/1] RUN lines", { started: 0, completed: 15_100 })] }),
];

/** Local clock (epoch ms) at each update of {@linkcode PARTIAL}. */
export const PARTIAL_CLOCK: number[] = PARTIAL.map((_, i) => T0 + Math.max(0, i - 1) * 1000 + 20);

/** One logical update split across several messages (partial lines included). */
export const SPLIT: StatusResponse[] = [
  resp({ vertexes: [vtx("i", "[1/1] RUN printf", { started: 0 })] }),
  resp({ logs: [lg("i", 1500, "first line\nsecond ")] }),
  resp({ logs: [lg("i", 1600, "half\nthird")] }),
  resp({ logs: [lg("i", 1700, " line\n")] }),
  resp({ vertexes: [vtx("i", "[1/1] RUN printf", { started: 0, completed: 12345 })] }),
];

/** A layer download with a total, reported several times. */
export const PULL: StatusResponse[] = [
  resp({ vertexes: [vtx("j", "[1/1] FROM docker.io/library/busybox:latest", { started: 0 })] }),
  resp({
    statuses: [
      st("j", "resolve docker.io/library/busybox:latest", {
        ts: 50,
        started: 0,
        completed: 50,
      }),
    ],
  }),
  resp({
    statuses: [st("j", "sha256:0a2b", { current: 0, total: 2_150_000, ts: 100, started: 100 })],
  }),
  resp({
    statuses: [
      st("j", "sha256:0a2b", { current: 50_000, total: 2_150_000, ts: 200, started: 100 }),
    ],
  }),
  resp({
    statuses: [
      st("j", "sha256:0a2b", { current: 1_234_567, total: 2_150_000, ts: 400, started: 100 }),
    ],
  }),
  resp({
    statuses: [
      st("j", "sha256:0a2b", {
        current: 2_150_000,
        total: 2_150_000,
        ts: 700,
        started: 100,
        completed: 700,
      }),
      st("j", "extracting sha256:0a2b", { ts: 700, started: 700 }),
    ],
  }),
  resp({
    statuses: [st("j", "extracting sha256:0a2b", { ts: 900, started: 700, completed: 900 })],
  }),
  resp({
    vertexes: [
      vtx("j", "[1/1] FROM docker.io/library/busybox:latest", { started: 0, completed: 910 }),
    ],
  }),
];

/** Lint warnings attached to the definition step. */
export const WARNINGS: StatusResponse[] = [
  resp({ vertexes: [vtx("a", DEF, { started: 0 })] }),
  resp({
    warnings: [wn("a", "JSONArgsRecommended: JSON arguments recommended for CMD", 3)],
  }),
  resp({
    vertexes: [vtx("a", DEF, { started: 0, completed: 80 })],
    warnings: [wn("a", "FromAsCasing: 'as' and 'FROM' keywords' casing do not match", 1)],
  }),
];

const PG: ProgressGroup = { id: "pg1", name: "[internal] booting buildkit", weak: false };

/** A progress group folding two steps, and a cancelled step. */
export const GROUPED: StatusResponse[] = [
  resp({
    vertexes: [vtx("k", "pulling image moby/buildkit", { started: 0, progressGroup: PG })],
  }),
  resp({
    vertexes: [
      vtx("k", "pulling image moby/buildkit", { started: 0, completed: 500, progressGroup: PG }),
      vtx("l", "creating container", { started: 500, progressGroup: PG }),
    ],
  }),
  resp({
    vertexes: [vtx("l", "creating container", { started: 500, completed: 800, progressGroup: PG })],
  }),
  resp({ vertexes: [vtx("m", "[1/1] RUN sleep 100", { started: 900 })] }),
  resp({
    vertexes: [
      vtx("m", "[1/1] RUN sleep 100", { started: 900, completed: 1900, error: "context canceled" }),
    ],
  }),
];

/** All fixtures by name. */
export const FIXTURES: Record<string, StatusResponse[]> = {
  BASIC,
  FAILED,
  INTERLEAVED,
  SLOW,
  PARTIAL,
  SPLIT,
  PULL,
  WARNINGS,
  GROUPED,
};

/** A fake synchronous writer that records everything written. */
export class Capture {
  readonly chunks: Uint8Array[] = [];

  write(b: Uint8Array): number {
    this.chunks.push(b.slice());
    return b.length;
  }

  /** Everything written, decoded. */
  text(): string {
    const dec = new TextDecoder();
    return this.chunks.map((c) => dec.decode(c)).join("");
  }
}
