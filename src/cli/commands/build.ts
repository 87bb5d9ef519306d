/**
 * `buildctl build`: flags as upstream, a session for local dirs, secrets,
 * auth and exports, Solve and Status run concurrently, progress on stderr.
 *
 * @module
 */

import { dirname, resolve } from "../../path.ts";
import type { FlagValues } from "../command.ts";
import type { Globals } from "../globals.ts";
import { connectDaemon } from "../connect.ts";
import {
  type CacheEntry,
  type OutputSpec,
  parseAllow,
  parseExportCache,
  parseImportCache,
  parseKeyValues,
  parseOutput,
  parseSecret,
  type SecretSource,
} from "../flags/build.ts";
import { after } from "../../timer.ts";
import { BuildctlError, ExitCode, usageError } from "../../errors.ts";
import type { BuildkitClient } from "../../client/mod.ts";
import { GrpcError } from "../../client/grpc.ts";
import {
  type SolveRequest,
  SolveRequest as SolveRequestCodec,
  type SolveResponse,
  type StatusResponse,
} from "../../gen/github.com/moby/buildkit/api/services/control/control_solve.ts";
import { Definition, OpMetadata } from "../../gen/github.com/moby/buildkit/solver/pb/graph.ts";
import { Policy } from "../../gen/github.com/moby/buildkit/sourcepolicy/pb/policy.ts";
import {
  type ExporterTarget,
  newSessionId as randomId,
  startSession,
} from "../../session/session.ts";
import { resolveMode } from "../../progress/mode.ts";
import type { Display } from "../../progress/mod.ts";
import type { LogEntry } from "../format/logrus.ts";

// Loaded when needed: the displays once the Solve is on its way (their
// loading then overlaps the daemon's work), the cache and OCI-layout
// helpers only for builds that use them, the source excerpts of a failure
// only on failure.
const progressModule = () => import("../../progress/mod.ts");
const cacheModule = () => import("../flags/cache_local.ts");

/** Everything `build` needs, parsed from flags before any connection is made. */
export interface BuildPlan {
  frontend: string;
  frontendAttrs: Record<string, string>;
  localDirs: Map<string, string>;
  outputs: OutputSpec[];
  exportCache: CacheEntry[];
  importCache: CacheEntry[];
  secrets: SecretSource[];
  entitlements: string[];
  progress: string;
  noCache: boolean;
  metadataFile: string | undefined;
  refFile: string | undefined;
  traceFile: string | undefined;
  sourcePolicyFile: string | undefined;
  proxyNetwork: boolean;
}

const list = (f: FlagValues, k: string) => (f[k] as string[] | undefined) ?? [];
const str = (
  f: FlagValues,
  k: string,
) => (typeof f[k] === "string" && f[k] !== "" ? (f[k] as string) : undefined);

/** Parses and validates the flags of `build` (no I/O except checking local dirs). */
export async function planBuild(
  flags: FlagValues,
  env: (k: string) => string | undefined,
): Promise<BuildPlan> {
  if (list(flags, "ssh").length) {
    throw usageError(
      "--ssh is not supported by this buildctl yet",
      "forward credentials with --secret instead",
    );
  }
  if (list(flags, "oci-layout").length) {
    throw usageError("--oci-layout is not supported by this buildctl yet");
  }
  if (list(flags, "registry-auth-tlscontext").length) {
    throw usageError("--registry-auth-tlscontext is not supported by this buildctl yet");
  }
  const frontend = str(flags, "frontend") ?? "";
  const frontendAttrs: Record<string, string> = {};
  const sde = env("SOURCE_DATE_EPOCH");
  if (sde) frontendAttrs["build-arg:SOURCE_DATE_EPOCH"] = sde;
  for (const [k, v] of parseKeyValues(list(flags, "opt"), "--opt")) frontendAttrs[k] = v;

  const localDirs = new Map<string, string>();
  for (const [name, dir] of parseKeyValues(list(flags, "local"), "--local")) {
    localDirs.set(name, await checkLocalDir(name, dir));
  }
  // `type=cacheonly` (as in buildx) means "build, keep the cache, export
  // nothing": the daemon has no such exporter, so it is dropped here.
  const outputs = list(flags, "output").map(parseOutput).filter((o) => o.type !== "cacheonly");
  const exportCache = list(flags, "export-cache").map((v) => parseExportCache(v, env));
  const importCache = list(flags, "import-cache").map((v) => parseImportCache(v, env));
  const secrets = list(flags, "secret").map((v) => parseSecret(v, env));
  const seen = new Set<string>();
  for (const s of secrets) {
    if (seen.has(s.id)) throw usageError(`invalid --secret: duplicate secret id "${s.id}"`);
    seen.add(s.id);
  }
  const entitlements = parseAllow(list(flags, "allow"));
  let progress = str(flags, "progress") ?? "auto";
  if (progress === "auto" && env("BUILDKIT_PROGRESS")) progress = env("BUILDKIT_PROGRESS")!;
  const noCache = flags["no-cache"] === true;
  if (noCache && frontend !== "") frontendAttrs["no-cache"] = "";
  const cacheImports = importCache.filter((c) =>
    c.type !== "local" || c.attrs["digest"] !== undefined
  );
  if (frontend !== "" && importCache.length) {
    frontendAttrs["cache-imports"] = JSON.stringify(
      importCache.map((c) => ({ Type: c.type, Attrs: c.attrs })),
    );
  }
  void cacheImports;
  return {
    frontend,
    frontendAttrs,
    localDirs,
    outputs,
    exportCache,
    importCache,
    secrets,
    entitlements,
    progress,
    noCache,
    metadataFile: str(flags, "metadata-file"),
    refFile: str(flags, "ref-file"),
    traceFile: str(flags, "trace"),
    sourcePolicyFile: str(flags, "source-policy-file"),
    proxyNetwork: flags["proxy-network"] === true,
  };
}

async function checkLocalDir(name: string, dir: string): Promise<string> {
  let real: string;
  try {
    real = await Deno.realPath(dir);
  } catch (err) {
    throw new BuildctlError(`invalid --local ${name}=${dir}: ${describeFsError(err)}`, {
      exitCode: ExitCode.Usage,
      cause: err,
    });
  }
  const info = await Deno.stat(real);
  if (!info.isDirectory) {
    throw new BuildctlError(`invalid --local ${name}=${dir}: not a directory`, {
      exitCode: ExitCode.Usage,
    });
  }
  return real;
}

function describeFsError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  return err instanceof Error ? err.message : String(err);
}

/** Reads and decodes an LLB definition from stdin (no `--frontend`). */
async function readDefinition(g: Globals, noCache: boolean): Promise<Definition> {
  if (g.io.stdin.isTerminal) {
    throw usageError("please specify --frontend or pipe LLB definition to stdin");
  }
  const bytes = new Uint8Array(await new Response(g.io.stdin.readable).arrayBuffer());
  let def: Definition;
  try {
    def = Definition.decode(bytes);
  } catch (err) {
    throw new BuildctlError(
      `cannot read the LLB definition on stdin: ${(err as Error).message}`,
      {
        exitCode: ExitCode.Usage,
        hint: "pipe the output of llb.Definition marshalling, or use --frontend",
        cause: err,
      },
    );
  }
  if (def.def.length === 0) {
    throw usageError("empty definition sent to build. Specify --frontend instead?");
  }
  if (noCache) {
    for (const op of def.def) {
      const digest = `sha256:${await sha256Hex(op)}`;
      const md = def.metadata[digest] ?? OpMetadata.create();
      md.ignoreCache = true;
      def.metadata[digest] = md;
    }
  }
  return def;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const buf = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Opens the client side of each exporter: files, stdout, dirs. */
async function openTargets(
  outputs: OutputSpec[],
  g: Globals,
): Promise<(ExporterTarget | undefined)[]> {
  const targets: (ExporterTarget | undefined)[] = [];
  let stdoutUsed = false;
  for (const o of outputs) {
    const t = o.target;
    if (t.kind === "dir") {
      targets.push({
        kind: "local",
        dir: resolve(t.path),
        deleteMode: o.attrs["mode"] === "delete",
      });
    } else if (t.kind === "file") {
      const path = resolve(t.path);
      try {
        const st = await Deno.stat(path);
        if (st.isDirectory) {
          throw usageError(`invalid --output: destination file "${t.path}" is a directory`);
        }
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      try {
        await Deno.stat(dirname(path));
      } catch (err) {
        throw new BuildctlError(
          `invalid --output: cannot write "${t.path}": ${describeFsError(err)}`,
          {
            exitCode: ExitCode.Usage,
          },
        );
      }
      targets.push({
        kind: "stream",
        open: async () =>
          (await Deno.open(path, { write: true, create: true, truncate: true })).writable,
      });
    } else if (t.kind === "stdout") {
      if (g.io.stdout.isTerminal) {
        throw usageError(
          `output file is required for ${o.type} exporter. refusing to write to console`,
        );
      }
      if (stdoutUsed) throw usageError("only one --output can write to stdout");
      stdoutUsed = true;
      targets.push({ kind: "stream", open: () => Promise.resolve(stdoutWritable(g)) });
    } else targets.push(undefined);
  }
  return targets;
}

function stdoutWritable(g: Globals): WritableStream<Uint8Array> {
  // Do not let the exporter close the process's stdout.
  return new WritableStream({ write: (chunk) => g.io.stdout.writeBytes(chunk) });
}

/** Runs `buildctl build` with parsed flags (loaded on demand by `build_command.ts`). */
export async function runBuild(flags: FlagValues, g: Globals): Promise<number> {
  const plan = await planBuild(flags, g.io.env);
  const mode = progressMode(plan.progress, g);
  const definition = plan.frontend === "" ? await readDefinition(g, plan.noCache) : undefined;
  const sourcePolicy = plan.sourcePolicyFile
    ? await readSourcePolicy(plan.sourcePolicyFile)
    : undefined;
  const targets = await openTargets(plan.outputs, g);
  const secrets = new Map(plan.secrets.map((s) => [s.id, s] as const));
  for (const s of plan.secrets) {
    if (s.kind === "file") {
      try {
        await Deno.stat(s.path);
      } catch (err) {
        throw new BuildctlError(
          `invalid --secret id=${s.id}: cannot read "${s.path}": ${describeFsError(err)}`,
          {
            exitCode: ExitCode.Usage,
          },
        );
      }
    }
  }

  const ociDirs = plan.outputs.flatMap((o) =>
    (o.type === "oci" || o.type === "docker") && o.target.kind === "dir" ? [o.target.path] : []
  );
  const cache = plan.exportCache.length || plan.importCache.length || ociDirs.length
    ? await cacheModule()
    : undefined;
  const log = cache ? await logger(g) : () => {};
  const cacheExports = cache ? await cache.prepareCacheExports(plan.exportCache) : { stores: [] };
  const cacheImports = cache
    ? await cache.prepareCacheImports(plan.importCache)
    : { entries: [], stores: [], warnings: [] };
  cacheImports.warnings.forEach(log);
  const contentStores = new Map([...cacheExports.stores, ...cacheImports.stores]);
  for (const dir of ociDirs) await cache!.prepareOciDirExport(dir, contentStores);
  if (plan.frontend !== "" && cacheImports.entries.length) {
    plan.frontendAttrs["cache-imports"] = JSON.stringify(
      cacheImports.entries.map((c) => ({ Type: c.type, Attrs: c.attrs })),
    );
  }

  const ref = randomId();
  const client = await connectDaemon(g);
  let succeeded = false;
  try {
    const session = await startSession(client, {
      localDirs: plan.localDirs,
      secrets,
      exporters: targets,
      contentStores,
      signal: g.io.signal,
    });
    const startedAt = Date.now();
    const trace = plan.traceFile
      ? await Deno.open(plan.traceFile, { write: true, create: true, append: true, mode: 0o600 })
      : undefined;

    const req: SolveRequest = SolveRequestCodec.fromPartial({
      Ref: ref,
      Session: session.id,
      Frontend: plan.frontend,
      FrontendAttrs: plan.frontendAttrs,
      Exporters: plan.outputs.map((o) => ({ Type: o.type, Attrs: o.attrs })),
      ExporterDeprecated: plan.outputs[0]?.type ?? "",
      ExporterAttrsDeprecated: plan.outputs[0]?.attrs ?? {},
      Cache: {
        Exports: plan.exportCache.map((c) => ({ Type: c.type, Attrs: c.attrs })),
        Imports: cacheImports.entries.map((c) => ({ Type: c.type, Attrs: c.attrs })),
      },
      Entitlements: plan.entitlements,
      ProxyNetwork: plan.proxyNetwork,
    });
    if (definition) req.Definition = definition;
    if (sourcePolicy) req.SourcePolicy = sourcePolicy;

    // Status updates wait in `early` until the display is loaded.
    const early: StatusResponse[] = [];
    let show: ((s: StatusResponse) => void) | undefined;
    const status = await followStatus(
      client,
      ref,
      (s) => show ? show(s) : early.push(s),
      g.io.signal,
    );
    let display: Display | undefined;
    let response: SolveResponse;
    try {
      const solved = solve(client, req, g.io.signal);
      // Awaited below; until then a quick failure must not count as unhandled.
      solved.catch(() => {});
      const [progress] = await Promise.all([progressModule(), session.preload()]);
      display = progress.createDisplay(mode, {
        out: { write: (b: Uint8Array) => (g.io.stderr.writeBytes(b), b.length) },
        isTerminal: g.io.stderr.isTerminal,
        env: progressEnv(g),
        shiftTimes: false,
      });
      const shifter = new progress.TimeShifter(startedAt);
      const encoder = new TextEncoder();
      show = (s) => {
        const shifted = shifter.apply(s);
        display!.update(shifted);
        if (trace) {
          writeAll(trace, encoder.encode(progress.encodeSolveStatus(shifted) + "\n"));
        }
      };
      for (const s of early.splice(0)) show(s);
      response = await solved;
    } finally {
      await status.finish(5000);
      await display?.close();
      await session.close();
      trace?.close();
    }
    if (cache) {
      const finished = await cache.finishCacheExports(plan.exportCache, response.ExporterResponse, {
        ociDirs,
      });
      finished.warnings.forEach(log);
    }
    if (plan.metadataFile) await writeMetadataFile(plan.metadataFile, response.ExporterResponse);
    succeeded = true;
    return ExitCode.Ok;
  } finally {
    client.close();
    // Written at exit, success or failure, as upstream; a write error only
    // fails an otherwise successful build.
    if (plan.refFile) {
      await Deno.writeTextFile(plan.refFile, ref, { mode: 0o666 }).catch((err) => {
        if (succeeded) throw err;
      });
    }
  }
}

function progressMode(flag: string, g: Globals): string {
  try {
    return resolveMode(flag, g.io.stderr.isTerminal, { BUILDKIT_PROGRESS: undefined });
  } catch (err) {
    throw usageError(
      `invalid --progress "${flag}": ${(err as Error).message}`,
      "use auto, plain, tty, rawjson or quiet",
    );
  }
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

const PROGRESS_ENV = [
  "NO_COLOR",
  "BUILDKIT_COLORS",
  "BUILDKIT_TTY_LOG_LINES",
  "TTY_DISPLAY_RATE",
  "PROGRESS_NO_TRUNC",
];

function progressEnv(g: Globals): Record<string, string | undefined> {
  return Object.fromEntries(PROGRESS_ENV.map((k) => [k, g.io.env(k)]));
}

async function readSourcePolicy(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new BuildctlError(`invalid --source-policy-file "${path}": ${describeFsError(err)}`, {
      exitCode: ExitCode.Usage,
    });
  }
  try {
    return Policy.fromJSON(JSON.parse(text));
  } catch (err) {
    throw new BuildctlError(`invalid --source-policy-file "${path}": ${(err as Error).message}`, {
      exitCode: ExitCode.Usage,
    });
  }
}

async function solve(
  client: BuildkitClient,
  req: SolveRequest,
  signal: AbortSignal,
): Promise<SolveResponse> {
  try {
    return await client.solve(req, signal);
  } catch (err) {
    if (signal.aborted) {
      throw new BuildctlError("build canceled", { exitCode: ExitCode.Interrupted });
    }
    const mapped = client.mapError(err);
    if (mapped.exitCode === ExitCode.Unavailable) {
      throw new BuildctlError(
        `lost the connection to buildkitd at ${client.address.url} during the build: ${
          (err as GrpcError).details || "connection dropped"
        }`,
        {
          exitCode: ExitCode.Unavailable,
          cause: err,
          hint: "the daemon stopped or crashed; its log tells why (buildctl daemon logs)",
        },
      );
    }
    if (mapped.exitCode === ExitCode.Failure) {
      throw new BuildctlError(`failed to solve: ${mapped.message}`, {
        exitCode: ExitCode.Failure,
        cause: err,
        preamble: await sourcePreamble(err),
      });
    }
    throw mapped;
  }
}

/** The Dockerfile lines of the failure, when the daemon attached them. */
async function sourcePreamble(err: unknown): Promise<string | undefined> {
  const details = err instanceof GrpcError ? err.statusDetails : undefined;
  if (!details) return undefined;
  const { decodeSourceLocations, renderSourceLocation } = await import("../error_source.ts");
  const text = decodeSourceLocations(details).map(renderSourceLocation).join("");
  return text || undefined;
}

/** Prints daemon-side log entries (cache warnings) as upstream's logrus does. */
async function logger(g: Globals): Promise<(e: LogEntry) => void> {
  const { formatLogEntry } = await import("../format/logrus.ts");
  return (e) =>
    g.io.stderr.write(
      formatLogEntry(e, { format: g.logFormat, isTerminal: g.io.stderr.isTerminal }),
    );
}

interface StatusFollower {
  /** Waits for the stream's end, at most `ms` after the build ended. */
  finish(ms: number): Promise<void>;
}

async function followStatus(
  client: BuildkitClient,
  ref: string,
  onUpdate: (s: StatusResponse) => void,
  signal: AbortSignal,
): Promise<StatusFollower> {
  let lastActivity = Date.now();
  const call = await client.status(ref, (s) => {
    lastActivity = Date.now();
    try {
      onUpdate(s);
    } catch { /* a display error must not break the build */ }
  }, signal);
  const done = call.status.then(() => {});
  return {
    async finish(ms: number) {
      // Upstream stops following status 5 s after the last update once Solve returned.
      for (;;) {
        const left = lastActivity + ms - Date.now();
        if (left <= 0) break;
        let cancelTimer: (() => void) | undefined;
        const settled = await Promise.race([
          done.then(() => true),
          new Promise((r) => cancelTimer = after(left, () => r(false))),
        ]);
        cancelTimer?.();
        if (settled) break;
      }
      call.cancel();
    },
  };
}

/** Writes `--metadata-file` as upstream: base64 JSON objects embedded, others as strings, keys sorted. */
export async function writeMetadataFile(
  path: string,
  response: Record<string, string>,
): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(response).sort()) {
    const value = response[key]!;
    out[key] = decodeJsonObject(value) ?? value;
  }
  const text = JSON.stringify(sortKeys(out), null, 2);
  const tmp = `${path}.tmp-${randomId().slice(0, 8)}`;
  await Deno.writeTextFile(tmp, text, { mode: 0o666 });
  await Deno.rename(tmp, path);
}

function decodeJsonObject(value: string): Record<string, unknown> | undefined {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return undefined;
  try {
    const parsed = JSON.parse(
      new TextDecoder().decode(Uint8Array.from(atob(value), (c) => c.charCodeAt(0))),
    );
    if (
      parsed && typeof parsed === "object" && !Array.isArray(parsed) && Object.keys(parsed).length
    ) return parsed;
  } catch { /* not JSON */ }
  return undefined;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
