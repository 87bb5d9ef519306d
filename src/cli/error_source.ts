/**
 * Renders the source location BuildKit attaches to a failed solve (the
 * `errdefs.Source` detail inside `grpc-status-details-bin`): the Dockerfile
 * lines around the failing instruction, as upstream buildctl prints them.
 *
 * @module
 */

import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Status } from "../gen/google/rpc/status.ts";
import { Range, SourceInfo } from "../gen/github.com/moby/buildkit/solver/pb/graph.ts";

/** One source location: the file and the marked line ranges. */
export interface SourceLocation {
  info: SourceInfo;
  ranges: Range[];
}

/** Decodes the source locations carried by a gRPC status-details blob. */
export function decodeSourceLocations(detailsBin: Uint8Array): SourceLocation[] {
  let status: Status;
  try {
    status = Status.decode(detailsBin);
  } catch {
    return [];
  }
  const out: SourceLocation[] = [];
  for (const any of status.details) {
    // BuildKit registers the type through typeurl as "…/errdefs.Source+json"
    // (a JSON body); the protobuf form is accepted too.
    const m = /(^|[./])errdefs\.Source(\+json)?$/.exec(any.typeUrl);
    if (!m) continue;
    try {
      out.push(m[2] ? decodeSourceJson(any.value) : decodeSource(any.value));
    } catch { /* ignore a malformed detail */ }
  }
  return out;
}

function decodeSourceJson(bytes: Uint8Array): SourceLocation {
  // deno-lint-ignore no-explicit-any
  const j: any = JSON.parse(new TextDecoder().decode(bytes));
  const info = SourceInfo.fromJSON(j.info ?? j.Info ?? {});
  const ranges = ((j.ranges ?? j.Ranges ?? []) as unknown[]).map((r) => Range.fromJSON(r));
  return { info, ranges };
}

function decodeSource(bytes: Uint8Array): SourceLocation {
  const reader = new BinaryReader(bytes);
  let info: SourceInfo | undefined;
  const ranges: Range[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if (field === 1 && (tag & 7) === 2) info = SourceInfo.decode(reader.bytes());
    else if (field === 2 && (tag & 7) === 2) ranges.push(Range.decode(reader.bytes()));
    else reader.skip(tag & 7);
  }
  if (!info) throw new Error("source without info");
  return { info, ranges };
}

/** Renders one location as upstream does (`Dockerfile:3`, a rule, numbered lines, `>>>` marks). */
export function renderSourceLocation(loc: SourceLocation): string {
  const lines = new TextDecoder().decode(loc.info.data).split("\n");
  if (!loc.ranges.length) return "";
  let start = Infinity;
  let end = 0;
  for (const r of loc.ranges) {
    const s = r.start?.line ?? 0;
    const e = Math.max(r.end?.line ?? 0, s);
    start = Math.min(start, s);
    end = Math.max(end, e);
  }
  if (start > lines.length || start < 1) return "";
  end = Math.min(end, lines.length);
  const pad = end === start ? 4 : 2;
  const marked = start;
  let p = 0;
  while (p < pad) {
    if (start > 1) {
      start--;
      p++;
    }
    if (end !== lines.length) {
      end++;
      p++;
    }
    p++;
  }
  const contains = (l: number) =>
    loc.ranges.some((r) =>
      (r.start?.line ?? 0) <= l && Math.max(r.end?.line ?? 0, r.start?.line ?? 0) >= l
    );
  let out = `${loc.info.filename}:${marked}\n--------------------\n`;
  for (let i = start; i <= end; i++) {
    out += ` ${String(i).padStart(3)} | ${contains(i) ? ">>>" : "   "} ${lines[i - 1]}\n`;
  }
  return out + "--------------------\n";
}
