/**
 * What `du`, `prune`, `debug workers` and `debug info` do, loaded when one
 * of them runs (their flags and help live in `du.ts`, `prune.ts` and
 * `debug.ts`): the Control API call, and the output as upstream prints it
 * (tables or `--format` Go templates).
 *
 * @module
 */

import type { FlagValues, Invocation } from "../command.ts";
import type { Globals } from "../globals.ts";
import { connectDaemon } from "../connect.ts";
import { renderDu } from "../format/du.ts";
import { renderInfo } from "../format/info.ts";
import { createPrunePrinter } from "../format/prune.ts";
import type { Template, TemplateError } from "../format/template.ts";
import { parseGoDuration } from "../format/units.ts";
import { renderWorkers } from "../format/workers.ts";
import { toBuildkitVersion, toUsageInfo, toWorkerInfo } from "./convert.ts";
import { filters } from "./common.ts";
import { BuildctlError, ExitCode, usageError } from "../../errors.ts";

/** `buildctl du`. */
export async function runDu({ flags, globals }: Invocation<Globals>): Promise<void> {
  const filter = filters(flags);
  const fmt = await format(flags);
  const client = await connectDaemon(globals);
  try {
    const records = (await client.diskUsage({ filter })).map(toUsageInfo);
    render(
      globals,
      fmt,
      () =>
        renderDu(records, { verbose: flags["verbose"] === true, template: fmt?.template, filter }),
    );
  } finally {
    client.close();
  }
}

/** `buildctl prune`. */
export async function runPrune({ flags, globals }: Invocation<Globals>): Promise<void> {
  const req = {
    filter: filters(flags),
    all: flags["all"] === true,
    keepDuration: keepDuration(flags),
    reservedSpace: megabytes(flags, "keep-storage-min"),
    maxUsedSpace: megabytes(flags, "keep-storage"),
    minFreeSpace: megabytes(flags, "free-storage"),
  };
  const fmt = await format(flags);
  const printer = createPrunePrinter({
    verbose: flags["verbose"] === true,
    template: fmt?.template,
  });
  const client = await connectDaemon(globals);
  try {
    for await (const record of client.prune(req, globals.io.signal)) {
      const info = toUsageInfo(record);
      render(globals, fmt, () => printer.record(info));
    }
    render(globals, fmt, () => printer.end());
  } finally {
    client.close();
  }
}

/** `buildctl debug workers`. */
export async function runWorkers({ flags, globals }: Invocation<Globals>): Promise<void> {
  const filter = filters(flags);
  const fmt = await format(flags);
  const client = await connectDaemon(globals);
  try {
    const workers = (await client.listWorkers(filter)).map(toWorkerInfo);
    render(
      globals,
      fmt,
      () => renderWorkers(workers, { verbose: flags["verbose"] === true, template: fmt?.template }),
    );
  } finally {
    client.close();
  }
}

/** `buildctl debug info`. */
export async function runInfo({ flags, globals }: Invocation<Globals>): Promise<void> {
  const fmt = await format(flags);
  const client = await connectDaemon(globals);
  try {
    const res = await client.info();
    render(
      globals,
      fmt,
      () =>
        renderInfo({ BuildkitVersion: toBuildkitVersion(res.buildkitVersion) }, {
          template: fmt?.template,
        }),
    );
  } finally {
    client.close();
  }
}

/** The `--format` value, checked to parse before any call is made. */
/** A parsed `--format`, with the error class of the template engine it came from. */
interface Format {
  text: string;
  template: Template;
  TemplateError: typeof TemplateError;
}

/**
 * The `--format` value, parsed before any call is made. The template engine
 * is loaded only for it: the tables need none of it.
 */
async function format(flags: FlagValues): Promise<Format | undefined> {
  const f = flags["format"];
  if (typeof f !== "string" || f === "") return undefined;
  const engine = await import("../format/template.ts");
  try {
    return { text: f, template: engine.parseTemplate(f), TemplateError: engine.TemplateError };
  } catch (err) {
    throw templateError(f, err);
  }
}

/** Runs a renderer, turning template failures into a usage error after printing partial output. */
function render(g: Globals, fmt: Format | undefined, fn: () => string): void {
  try {
    g.io.stdout.write(fn());
  } catch (err) {
    if (fmt && err instanceof fmt.TemplateError) {
      if (err.partialOutput) g.io.stdout.write(err.partialOutput);
      throw templateError(fmt.text, err);
    }
    throw err;
  }
}

function templateError(fmt: string, err: unknown): BuildctlError {
  return new BuildctlError(`invalid --format "${fmt}": ${(err as Error).message}`, {
    exitCode: ExitCode.Usage,
    cause: err,
  });
}

function keepDuration(flags: FlagValues): bigint {
  const v = flags["keep-duration"];
  if (typeof v !== "string" || v === "") return 0n;
  try {
    return parseGoDuration(v);
  } catch {
    throw usageError(
      `invalid value "${v}" for flag --keep-duration: expected a duration such as 24h, 90m or 1h30m`,
    );
  }
}

/** A size in MB (float, as upstream) converted to bytes. */
function megabytes(flags: FlagValues, name: string): bigint {
  const v = flags[name];
  if (typeof v !== "string" || v === "") return 0n;
  if (!/^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(v.trim())) {
    throw usageError(
      `invalid value "${v}" for flag --${name}: expected a number of megabytes, e.g. 512 or 1.5`,
    );
  }
  const n = Number(v);
  if (!Number.isFinite(n)) {
    throw usageError(`invalid value "${v}" for flag --${name}: out of range`);
  }
  return BigInt(Math.trunc(n * 1e6));
}
