/**
 * Converts Control API records into the Go-shaped values the renderers in
 * `cli/format/` print (upstream `client.UsageInfo`, `client.WorkerInfo`, …).
 *
 * @module
 */

import type { UsageRecord } from "../../gen/github.com/moby/buildkit/api/services/control/control_cache.ts";
import type {
  BuildkitVersion as WireVersion,
  WorkerRecord,
} from "../../gen/github.com/moby/buildkit/api/types/worker.ts";
import type { BuildkitVersion, UsageInfo, WorkerInfo } from "../format/types.ts";

const orNil = <T>(xs: T[]): T[] | null => (xs.length ? xs : null);

/** `UsageRecord` → Go `client.UsageInfo`. */
export function toUsageInfo(r: UsageRecord): UsageInfo {
  return {
    ID: r.ID,
    Mutable: r.Mutable,
    InUse: r.InUse,
    Size: r.Size,
    CreatedAt: r.CreatedAt ?? { seconds: 0n, nanos: 0 },
    LastUsedAt: r.LastUsedAt ?? null,
    UsageCount: Number(r.UsageCount),
    Parents: orNil(r.Parents),
    Description: r.Description,
    RecordType: r.RecordType,
    Shared: r.Shared,
  };
}

/** Wire `BuildkitVersion` → Go `client.BuildkitVersion`. */
export function toBuildkitVersion(v: WireVersion | undefined): BuildkitVersion {
  return {
    Package: v?.package ?? "",
    Version: v?.version ?? "",
    Revision: v?.revision ?? "",
    DockerfileVersion: v?.dockerfileVersion ?? "",
  };
}

/** `WorkerRecord` → Go `client.WorkerInfo`. */
export function toWorkerInfo(w: WorkerRecord): WorkerInfo {
  return {
    ID: w.ID,
    Labels: Object.keys(w.Labels).length ? w.Labels : null,
    Platforms: w.platforms.map((p) => ({
      OS: p.OS,
      Architecture: p.Architecture,
      Variant: p.Variant,
      OSVersion: p.OSVersion,
      OSFeatures: orNil(p.OSFeatures),
    })),
    GCPolicy: w.GCPolicy.map((g) => ({
      All: g.all,
      Filter: orNil(g.filters),
      KeepDuration: g.keepDuration,
      ReservedSpace: g.reservedSpace,
      MaxUsedSpace: g.maxUsedSpace,
      MinFreeSpace: g.minFreeSpace,
    })),
    BuildkitVersion: toBuildkitVersion(w.BuildkitVersion),
    CDIDevices: orNil(w.CDIDevices.map((d) => ({
      Name: d.Name,
      AutoAllow: d.AutoAllow,
      Annotations: Object.keys(d.Annotations).length ? d.Annotations : null,
      OnDemand: d.OnDemand,
    }))),
  };
}
