/**
 * `buildctl prune` output, byte-for-byte as upstream (cmd/buildctl/prune.go).
 *
 * @module
 */

import { TabWriter } from "./tabwriter.ts";
import type { Template } from "./template.ts";
import { goValue } from "./gotypes.ts";
import { type UsageInfo, UsageInfoType } from "./types.ts";
import { USAGE_TABLE_HEADER, usageTableRow, writeUsageVerbose } from "./du.ts";
import { formatBytes } from "./units.ts";

/** Options of `buildctl prune` that affect output. */
export interface PruneOutputOptions {
  /** `--verbose` (ignored when `template` is set). */
  verbose?: boolean;
  /** The parsed `--format` (Go template or `json`), applied to each record. */
  template?: Template;
}

/** A streaming printer for prune records. */
export interface PrunePrinter {
  /** Text to print for a record as it arrives (throws a TemplateError on template failures). */
  record(u: UsageInfo): string;
  /** Text to print after a successful prune (`Total:` summary; empty with a template). */
  end(): string;
}

/**
 * Creates the printer. The caller parses the template before pruning starts, so a syntax error
 * throws first — as upstream, which parses before calling Prune. Note: upstream panics on
 * template *execution* errors (goroutine `panic(err)`); here `record` throws the TemplateError.
 * Upstream prints nothing after a failed prune, so call `end()` only on success.
 */
export function createPrunePrinter(opts: PruneOutputOptions = {}): PrunePrinter {
  const tmpl = opts.template;
  if (tmpl) {
    return {
      record: (u) => tmpl.execute(goValue(UsageInfoType, u)) + "\n",
      end: () => "",
    };
  }
  const tw = new TabWriter(1, 8, 1, "\t");
  let first = true;
  let total = 0n;
  return {
    record(u) {
      total += typeof u.Size === "bigint" ? u.Size : BigInt(Math.trunc(u.Size));
      if (opts.verbose) {
        writeUsageVerbose(tw, [u]);
      } else {
        if (first) {
          tw.write(USAGE_TABLE_HEADER);
          first = false;
        }
        tw.write(usageTableRow(u));
        tw.flush();
      }
      return tw.take();
    },
    end() {
      return new TabWriter(1, 8, 1, "\t").write(`Total:\t${formatBytes(total)}\n`).flush().take();
    },
  };
}
