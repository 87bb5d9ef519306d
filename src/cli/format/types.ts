/**
 * Plain data types mirroring upstream's Go client structs (field names as in Go, so templates can
 * use `{{.ID}}`), plus their Go type descriptors for templates and JSON.
 *
 * Go `nil` (nil pointer / slice / map) is `null` or `undefined`. Because every list and map here comes
 * from a decoded protobuf message (where Go yields nil for "no entries"), the descriptors below mark
 * which fields Go leaves nil when empty (JSON `null`: Parents, Labels, CDIDevices, Annotations,
 * Filter, and the top-level du/workers lists) and which upstream always allocates (JSON `[]`:
 * Platforms, GCPolicy). So passing `[]`/`{}` straight from protobuf-es gives Go's exact JSON.
 *
 * @module
 */

import {
  type GoType,
  mapOfNil,
  ptrTo,
  sliceOfNil,
  tBool,
  tDuration,
  tInt,
  tInt64,
  tString,
  tTime,
} from "./gotypes.ts";
import type { GoTime } from "./units.ts";

/** Go `client.UsageInfo` (one build cache record). */
export interface UsageInfo {
  ID: string;
  Mutable: boolean;
  InUse: boolean;
  /** int64 bytes. */
  Size: number | bigint;
  CreatedAt: GoTime;
  /** Go `*time.Time`: null/undefined = nil. */
  LastUsedAt?: GoTime | null;
  UsageCount: number;
  /** Empty, null or undefined = Go nil (JSON `null`). */
  Parents?: string[] | null;
  Description: string;
  /** Go `client.UsageRecordType` (e.g. "regular", "internal"). */
  RecordType: string;
  Shared: boolean;
}

/** Go `client.PruneInfo` (also used as a GC policy rule). */
export interface PruneInfo {
  All: boolean;
  Filter?: string[] | null;
  /** Go `time.Duration` in nanoseconds. */
  KeepDuration: number | bigint;
  ReservedSpace: number | bigint;
  MaxUsedSpace: number | bigint;
  MinFreeSpace: number | bigint;
}

/** Go `ocispecs.Platform`. */
export interface Platform {
  OS: string;
  Architecture: string;
  Variant?: string;
  OSVersion?: string;
  OSFeatures?: string[] | null;
}

/** Go `client.BuildkitVersion`. */
export interface BuildkitVersion {
  Package: string;
  Version: string;
  Revision: string;
  DockerfileVersion?: string;
}

/** Go `client.CDIDevice`. */
export interface CDIDevice {
  Name: string;
  AutoAllow: boolean;
  Annotations?: Record<string, string> | null;
  OnDemand: boolean;
}

/** Go `client.WorkerInfo`. */
export interface WorkerInfo {
  ID: string;
  Labels?: Record<string, string> | null;
  Platforms?: Platform[] | null;
  /** Upstream always allocates this slice (`[]` in JSON even if null/undefined here). */
  GCPolicy?: PruneInfo[] | null;
  BuildkitVersion: BuildkitVersion;
  /** Empty/null = nil (`null` in JSON). */
  CDIDevices?: CDIDevice[] | null;
}

/** Go `client.Info`. */
export interface Info {
  BuildkitVersion: BuildkitVersion;
}

/** Go type of `client.UsageInfo`. */
export const UsageInfoType: GoType = {
  kind: "struct",
  name: "client.UsageInfo",
  fields: [
    { name: "ID", json: "id", type: tString },
    { name: "Mutable", json: "mutable", type: tBool },
    { name: "InUse", json: "inUse", type: tBool },
    { name: "Size", json: "size", type: tInt64 },
    { name: "CreatedAt", json: "createdAt", type: tTime },
    { name: "LastUsedAt", json: "lastUsedAt", type: ptrTo(tTime) },
    { name: "UsageCount", json: "usageCount", type: tInt },
    { name: "Parents", json: "parents", type: sliceOfNil(tString, "ifEmpty") },
    { name: "Description", json: "description", type: tString },
    {
      name: "RecordType",
      json: "recordType",
      type: { kind: "string", name: "client.UsageRecordType" },
    },
    { name: "Shared", json: "shared", type: tBool },
  ],
};

/** Go type of `client.PruneInfo`. */
export const PruneInfoType: GoType = {
  kind: "struct",
  name: "client.PruneInfo",
  fields: [
    { name: "All", json: "all", type: tBool },
    { name: "Filter", json: "filter", type: sliceOfNil(tString, "ifEmpty") },
    { name: "KeepDuration", json: "keepDuration", type: tDuration },
    { name: "ReservedSpace", json: "reservedSpace", type: tInt64 },
    { name: "MaxUsedSpace", json: "maxUsedSpace", type: tInt64 },
    { name: "MinFreeSpace", json: "minFreeSpace", type: tInt64 },
  ],
};

/** Go type of `v1.Platform` (JSON field order as declared upstream). */
export const PlatformType: GoType = {
  kind: "struct",
  name: "v1.Platform",
  fields: [
    { name: "Architecture", json: "architecture", type: tString },
    { name: "OS", json: "os", type: tString },
    { name: "OSVersion", json: "os.version", omitempty: true, type: tString },
    {
      name: "OSFeatures",
      json: "os.features",
      omitempty: true,
      type: sliceOfNil(tString, "ifEmpty"),
    },
    { name: "Variant", json: "variant", omitempty: true, type: tString },
  ],
};

/** Go type of `client.BuildkitVersion`. */
export const BuildkitVersionType: GoType = {
  kind: "struct",
  name: "client.BuildkitVersion",
  fields: [
    { name: "Package", json: "package", type: tString },
    { name: "Version", json: "version", type: tString },
    { name: "Revision", json: "revision", type: tString },
    { name: "DockerfileVersion", json: "dockerfileVersion", omitempty: true, type: tString },
  ],
};

/** Go type of `client.CDIDevice`. */
export const CDIDeviceType: GoType = {
  kind: "struct",
  name: "client.CDIDevice",
  fields: [
    { name: "Name", json: "name", type: tString },
    { name: "AutoAllow", json: "autoAllow", type: tBool },
    { name: "Annotations", json: "annotations", type: mapOfNil(tString, tString, "ifEmpty") },
    { name: "OnDemand", json: "onDemand", type: tBool },
  ],
};

/** Go type of `client.WorkerInfo`. */
export const WorkerInfoType: GoType = {
  kind: "struct",
  name: "client.WorkerInfo",
  fields: [
    { name: "ID", json: "id", type: tString },
    { name: "Labels", json: "labels", type: mapOfNil(tString, tString, "ifEmpty") },
    { name: "Platforms", json: "platforms", type: sliceOfNil(PlatformType, "never") },
    { name: "GCPolicy", json: "gcPolicy", type: sliceOfNil(PruneInfoType, "never") },
    { name: "BuildkitVersion", json: "buildkitVersion", type: BuildkitVersionType },
    { name: "CDIDevices", json: "cdiDevices", type: sliceOfNil(CDIDeviceType, "ifEmpty") },
  ],
};

/** Go type of `[]*client.UsageInfo` as returned by `client.DiskUsage` (nil when empty). */
export const UsageInfoListType: GoType = sliceOfNil(ptrTo(UsageInfoType), "ifEmpty");
/** Go type of `[]*client.WorkerInfo` as returned by `client.ListWorkers` (nil when empty). */
export const WorkerInfoListType: GoType = sliceOfNil(ptrTo(WorkerInfoType), "ifEmpty");

/** Go type of `client.Info`. */
export const InfoType: GoType = {
  kind: "struct",
  name: "client.Info",
  fields: [{ name: "BuildkitVersion", json: "buildkitVersion", type: BuildkitVersionType }],
};

/** Go type of `*client.Info` (what `debug info --format` executes on). */
export const InfoPtrType: GoType = ptrTo(InfoType);
