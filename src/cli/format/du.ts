/**
 * `buildctl du` output, byte-for-byte as upstream (cmd/buildctl/diskusage.go).
 *
 * @module
 */

import { TabWriter } from "./tabwriter.ts";
import type { Template } from "./template.ts";
import { goValue } from "./gotypes.ts";
import { type UsageInfo, UsageInfoListType } from "./types.ts";
import { formatBytes, type GoTime, goTimeString } from "./units.ts";

/** Options of `buildctl du`. */
export interface DuOptions {
  /** `--verbose`. */
  verbose?: boolean;
  /** The parsed `--format` (Go template or the alias `json`); wins over `verbose`. */
  template?: Template;
  /** The `--filter` values; the summary is printed only when there are none. */
  filter?: string[];
}

function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function toBig(n: number | bigint): bigint {
  return typeof n === "bigint" ? n : BigInt(Math.trunc(n));
}

/** Sorts records by size, then ID, as `client.DiskUsage` does (returns a new array). */
export function sortUsage(records: readonly UsageInfo[]): UsageInfo[] {
  return [...records].sort((a, b) => {
    const sa = toBig(a.Size);
    const sb = toBig(b.Size);
    if (sa !== sb) return sa < sb ? -1 : 1;
    return compareBytes(a.ID, b.ID);
  });
}

/** Pads with spaces on the right to `width` runes, like Go's `%-<width>s`. */
export function padRight(s: string, width: number): string {
  const n = [...s].length;
  return n >= width ? s : s + " ".repeat(width - n);
}

/** Writes the verbose block(s) of upstream `printVerbose` into `tw` and flushes it. */
export function writeUsageVerbose(tw: TabWriter, records: readonly UsageInfo[]): void {
  const kv = (k: string, v: string) => tw.write(`${k}:\t${v}\n`);
  for (const di of records) {
    kv("ID", di.ID);
    if (di.Parents && di.Parents.length > 0) kv("Parents", di.Parents.join(";"));
    kv("Created at", goTimeString(di.CreatedAt));
    kv("Mutable", String(di.Mutable));
    kv("Reclaimable", String(!di.InUse));
    kv("Shared", String(di.Shared));
    kv("Size", formatBytes(di.Size));
    if (di.Description !== "") kv("Description", di.Description);
    kv("Usage count", String(di.UsageCount));
    if (di.LastUsedAt !== null && di.LastUsedAt !== undefined) {
      kv("Last used", goTimeString(di.LastUsedAt as GoTime));
    }
    if (di.RecordType !== "") kv("Type", di.RecordType);
    tw.write("\n");
  }
  tw.flush();
}

/** The table header line of `du`/`prune`. */
export const USAGE_TABLE_HEADER = "ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED\n";

/** One table row of `du`/`prune` (upstream `printTableRow`), before tabwriter processing. */
export function usageTableRow(di: UsageInfo): string {
  let id = di.ID;
  if (di.Mutable) id += "*";
  let size = formatBytes(di.Size);
  if (di.Shared) size += "*";
  return `${padRight(id, 71)}\t${padRight(String(!di.InUse), 11)}\t${size}\t\n`;
}

/**
 * Renders the complete stdout of `buildctl du` for the records returned by the daemon (they are
 * sorted by size then ID first, like the Go client). With `format`, throws
 * {@link import("./template.ts").TemplateError} on template errors.
 */
export function renderDu(records: readonly UsageInfo[], opts: DuOptions = {}): string {
  const du = sortUsage(records);
  if (opts.template) return opts.template.execute(goValue(UsageInfoListType, du)) + "\n";
  const tw = new TabWriter(1, 8, 1, "\t");
  if (opts.verbose) {
    writeUsageVerbose(tw, du);
  } else {
    tw.write(USAGE_TABLE_HEADER);
    for (const di of du) tw.write(usageTableRow(di));
    tw.flush();
  }
  if (!opts.filter || opts.filter.length === 0) {
    let total = 0n;
    let reclaimable = 0n;
    let shared = 0n;
    for (const di of du) {
      const size = toBig(di.Size);
      if (size > 0n) {
        total += size;
        if (!di.InUse) reclaimable += size;
      }
      if (di.Shared) shared += size;
    }
    if (shared > 0n) {
      tw.write(`Shared:\t${formatBytes(shared)}\n`);
      tw.write(`Private:\t${formatBytes(total - shared)}\n`);
    }
    tw.write(`Reclaimable:\t${formatBytes(reclaimable)}\n`);
    tw.write(`Total:\t${formatBytes(total)}\n`);
    tw.flush();
  }
  return tw.take();
}
