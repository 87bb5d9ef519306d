/**
 * `buildctl debug workers` output, byte-for-byte as upstream (cmd/buildctl/debug/workers.go),
 * including containerd's `platforms.Format(platforms.Normalize(p))`.
 *
 * @module
 */

import { cleanPath } from "../../path.ts";
import { TabWriter } from "./tabwriter.ts";
import type { Template } from "./template.ts";
import { type Platform, type WorkerInfo, WorkerInfoListType } from "./types.ts";
import { formatBytesG, formatGoDuration } from "./units.ts";
import { goValue, sortedMapKeys } from "./gotypes.ts";

/** Options of `buildctl debug workers`. */
export interface WorkersOptions {
  /** `--verbose` (ignored when `template` is set). */
  verbose?: boolean;
  /** The parsed `--format` (Go template or `json`), applied to the whole worker list. */
  template?: Template;
}

/** `runtime.GOOS` equivalent of the running Deno binary. */
function goos(): string {
  const os = Deno.build.os as string;
  return os === "darwin" || os === "windows" || os === "freebsd" || os === "netbsd" ||
      os === "aix" ||
      os === "solaris" || os === "illumos" || os === "android"
    ? os
    : "linux";
}

/** containerd `normalizeArch`. */
export function normalizeArch(arch: string, variant: string): [string, string] {
  arch = arch.toLowerCase();
  variant = variant.toLowerCase();
  switch (arch) {
    case "i386":
      arch = "386";
      variant = "";
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      arch = "amd64";
      if (variant === "v1") variant = "";
      break;
    case "aarch64":
    case "arm64":
      arch = "arm64";
      if (variant === "8" || variant === "v8" || variant === "v8.0") variant = "";
      else if (variant === "9" || variant === "9.0" || variant === "v9.0") variant = "v9";
      break;
    case "armhf":
      arch = "arm";
      variant = "v7";
      break;
    case "armel":
      arch = "arm";
      variant = "v6";
      break;
    case "arm":
      if (variant === "" || variant === "7") variant = "v7";
      else if (variant === "5" || variant === "6" || variant === "8") variant = "v" + variant;
      break;
  }
  return [arch, variant];
}

/** containerd `platforms.Normalize`. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.OS === ""
    ? goos()
    : (p.OS.toLowerCase() === "macos" ? "darwin" : p.OS.toLowerCase());
  const [arch, variant] = normalizeArch(p.Architecture, p.Variant ?? "");
  const out: Platform = { ...p, OS: os, Architecture: arch, Variant: variant };
  if (p.OSFeatures && p.OSFeatures.length > 0) {
    out.OSFeatures = [...new Set([...p.OSFeatures].sort())];
  }
  return out;
}

/** Go `path.Join`. */
export function joinPath(...elems: string[]): string {
  const nonEmpty = elems.filter((e) => e !== "");
  if (nonEmpty.length === 0) return "";
  return cleanPath(nonEmpty.join("/"));
}

/** containerd `platforms.Format`. */
export function formatPlatform(p: Platform): string {
  if (p.OS === "") return "unknown";
  return joinPath(p.OS, p.Architecture, p.Variant ?? "");
}

/** Upstream `joinPlatforms`: normalised, formatted and comma-joined. */
export function joinPlatforms(ps: readonly Platform[] | null | undefined): string {
  return (ps ?? []).map((p) => formatPlatform(normalizePlatform(p))).join(",");
}

function toBig(n: number | bigint): bigint {
  return typeof n === "bigint" ? n : BigInt(Math.trunc(n));
}

/** Renders the stdout of `buildctl debug workers`. Throws TemplateError on template errors. */
export function renderWorkers(workers: readonly WorkerInfo[], opts: WorkersOptions = {}): string {
  if (opts.template) return opts.template.execute(goValue(WorkerInfoListType, workers)) + "\n";
  const tw = new TabWriter(1, 8, 1, "\t");
  const w = (s: string) => tw.write(s);
  if (opts.verbose) {
    for (const wi of workers) {
      const bv = wi.BuildkitVersion;
      w(`ID:\t${wi.ID}\n`);
      w(`Platforms:\t${joinPlatforms(wi.Platforms)}\n`);
      w(`BuildKit:\t${bv.Package} ${bv.Version} ${bv.Revision}\n`);
      if (bv.DockerfileVersion) w(`Dockerfile:\t${bv.DockerfileVersion}\n`);
      w("Labels:\n");
      const labels = wi.Labels ?? {};
      for (const k of sortedMapKeys(labels)) w(`\t${k}:\t${labels[k]}\n`);
      const devices = wi.CDIDevices ?? [];
      if (devices.length > 0) {
        w("Devices:\n");
        for (const d of devices) {
          w(`\tName:\t${d.Name}\n`);
          if (d.OnDemand) w(`\tOnDemand:\t${d.OnDemand}\n`);
          else w(`\tAutoAllow:\t${d.AutoAllow}\n`);
          const ann = d.Annotations ?? {};
          for (const k of sortedMapKeys(ann)) w(`\tAnnotations:\t${k}:\t${ann[k]}\n`);
        }
        w("\n");
      }
      (wi.GCPolicy ?? []).forEach((rule, i) => {
        w(`GC Policy rule#${i}:\n`);
        w(`\tAll:\t${rule.All}\n`);
        if (rule.Filter && rule.Filter.length > 0) w(`\tFilters:\t${rule.Filter.join(" ")}\n`);
        if (toBig(rule.KeepDuration) > 0n) {
          w(`\tKeep duration:\t${formatGoDuration(rule.KeepDuration)}\n`);
        }
        if (toBig(rule.ReservedSpace) > 0n) {
          w(`\tReserved space:\t${formatBytesG(rule.ReservedSpace)}\n`);
        }
        if (toBig(rule.MinFreeSpace) > 0n) {
          w(`\tMinimum free space:\t${formatBytesG(rule.MinFreeSpace)}\n`);
        }
        if (toBig(rule.MaxUsedSpace) > 0n) {
          w(`\tMaximum used space:\t${formatBytesG(rule.MaxUsedSpace)}\n`);
        }
      });
      w("\n");
    }
    tw.flush();
  } else {
    w("ID\tPLATFORMS\n");
    for (const wi of workers) w(`${wi.ID}\t${joinPlatforms(wi.Platforms)}\n`);
    tw.flush();
  }
  return tw.take();
}
