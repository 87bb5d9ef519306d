import { renderDu, sortUsage } from "./du.ts";
import { createPrunePrinter } from "./prune.ts";
import { formatPlatform, joinPlatforms, normalizePlatform, renderWorkers } from "./workers.ts";
import { renderInfo } from "./info.ts";
import { parseTemplate } from "./template.ts";
import type { UsageInfo, WorkerInfo } from "./types.ts";

function eq(a: unknown, b: unknown): void {
  if (a !== b) throw new Error(`expected ${JSON.stringify(b)}\n     got ${JSON.stringify(a)}`);
}

const u = (id: string, size: number, extra: Partial<UsageInfo> = {}): UsageInfo => ({
  ID: id,
  Mutable: false,
  InUse: false,
  Size: size,
  CreatedAt: { seconds: 1764429600, nanos: 0 },
  LastUsedAt: null,
  UsageCount: 1,
  Parents: null,
  Description: "",
  RecordType: "regular",
  Shared: false,
  ...extra,
});

const pad = (s: string, n: number) => s + " ".repeat(n - s.length);

Deno.test("du: sorted by size then ID", () => {
  eq(sortUsage([u("b", 5), u("a", 5), u("c", 1)]).map((x) => x.ID).join(), "c,a,b");
});

const duCases: [string, UsageInfo[], Parameters<typeof renderDu>[1], string][] = [
  [
    "table with summary",
    [u("x", 2048, { Mutable: true, Shared: true }), u("y", 100, { InUse: true })],
    {},
    "ID\t\t\t\t\t\t\t\t\tRECLAIMABLE\tSIZE\tLAST ACCESSED\n" +
    `${pad("y", 71)}\t${pad("false", 11)}\t100B\t\n` +
    `${pad("x*", 71)}\t${pad("true", 11)}\t2.05kB*\t\n` +
    "Shared:\t\t2.05kB\nPrivate:\t100B\nReclaimable:\t2.05kB\nTotal:\t\t2.15kB\n",
  ],
  ["empty", [], {}, "ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED\nReclaimable:\t0B\nTotal:\t\t0B\n"],
  [
    "filter suppresses summary",
    [u("x", 1)],
    { filter: ["id==x"] },
    `ID\t\t\t\t\t\t\t\t\tRECLAIMABLE\tSIZE\tLAST ACCESSED\n${pad("x", 71)}\t${
      pad("true", 11)
    }\t1B\t\n`,
  ],
  [
    "verbose",
    [u("x", 1, {
      Parents: ["p1", "p2"],
      Description: "desc",
      LastUsedAt: { seconds: 1764429601, nanos: 0 },
    })],
    { verbose: true, filter: ["f"] },
    "ID:\t\tx\nParents:\tp1;p2\nCreated at:\t2025-11-29 15:20:00 +0000 UTC\nMutable:\tfalse\n" +
    "Reclaimable:\ttrue\nShared:\t\tfalse\nSize:\t\t1B\nDescription:\tdesc\nUsage count:\t1\n" +
    "Last used:\t2025-11-29 15:20:01 +0000 UTC\nType:\t\tregular\n\n",
  ],
  [
    "format",
    [u("b", 2), u("a", 1)],
    { template: parseTemplate("{{range .}}{{.ID}}{{end}}") },
    "ab\n",
  ],
];

for (const [name, records, opts, want] of duCases) {
  Deno.test(`du: ${name}`, () => eq(renderDu(records, opts), want));
}

Deno.test("prune: header with first row, rows as they arrive, fresh tabwriter for Total", () => {
  const p = createPrunePrinter({});
  eq(
    p.record(u("x", 1500)),
    `ID\t\t\t\t\t\t\t\t\tRECLAIMABLE\tSIZE\tLAST ACCESSED\n${pad("x", 71)}\t${
      pad("true", 11)
    }\t1.50kB\t\n`,
  );
  eq(p.record(u("y", 10, { InUse: true })), `${pad("y", 71)}\t${pad("false", 11)}\t10B\t\n`);
  eq(p.end(), "Total:\t1.51kB\n");
  eq(createPrunePrinter({}).end(), "Total:\t0B\n");
});

Deno.test("prune: --format applies per record, no total", () => {
  const p = createPrunePrinter({ template: parseTemplate("{{.ID}}:{{.Size}}"), verbose: true });
  eq(p.record(u("x", 1)) + p.record(u("y", 2)) + p.end(), "x:1\ny:2\n");
});

Deno.test("platforms: containerd Normalize + Format", () => {
  const cases: [string, string, string | undefined, string][] = [
    ["linux", "amd64", undefined, "linux/amd64"],
    ["linux", "x86_64", "v1", "linux/amd64"],
    ["linux", "amd64", "v3", "linux/amd64/v3"],
    ["linux", "i386", "", "linux/386"],
    ["linux", "aarch64", "v8", "linux/arm64"],
    ["linux", "arm64", "9", "linux/arm64/v9"],
    ["linux", "arm", "", "linux/arm/v7"],
    ["linux", "armhf", "", "linux/arm/v7"],
    ["linux", "armel", "", "linux/arm/v6"],
    ["linux", "arm", "5", "linux/arm/v5"],
    ["MacOS", "arm64", "", "darwin/arm64"],
    ["windows", "amd64", "", "windows/amd64"],
  ];
  for (const [os, arch, variant, want] of cases) {
    eq(formatPlatform(normalizePlatform({ OS: os, Architecture: arch, Variant: variant })), want);
  }
  eq(formatPlatform({ OS: "", Architecture: "amd64" }), "unknown");
  eq(
    joinPlatforms([{ OS: "linux", Architecture: "amd64" }, { OS: "linux", Architecture: "386" }]),
    "linux/amd64,linux/386",
  );
});

const worker: WorkerInfo = {
  ID: "w1",
  Labels: { "b": "2", "a.long.label": "1" },
  Platforms: [{ OS: "linux", Architecture: "amd64" }, {
    OS: "linux",
    Architecture: "arm",
    Variant: "",
  }],
  GCPolicy: [
    {
      All: false,
      Filter: ["type==source.local"],
      KeepDuration: 172800e9,
      ReservedSpace: 0,
      MaxUsedSpace: 512e6,
      MinFreeSpace: 0,
    },
    {
      All: true,
      Filter: null,
      KeepDuration: 0,
      ReservedSpace: 1234,
      MaxUsedSpace: 0,
      MinFreeSpace: 20e9,
    },
  ],
  BuildkitVersion: { Package: "github.com/moby/buildkit", Version: "v0.32.2", Revision: "abc" },
  CDIDevices: null,
};

Deno.test("workers: table", () => {
  eq(renderWorkers([worker]), "ID\tPLATFORMS\nw1\tlinux/amd64,linux/arm/v7\n");
  eq(renderWorkers([]), "ID\tPLATFORMS\n");
});

Deno.test("workers: verbose", () => {
  eq(
    renderWorkers([worker], { verbose: true }),
    "ID:\t\tw1\nPlatforms:\tlinux/amd64,linux/arm/v7\nBuildKit:\tgithub.com/moby/buildkit v0.32.2 abc\n" +
      "Labels:\n\ta.long.label:\t1\n\tb:\t\t2\n" +
      "GC Policy rule#0:\n\tAll:\t\t\tfalse\n\tFilters:\t\ttype==source.local\n\tKeep duration:\t\t48h0m0s\n" +
      "\tMaximum used space:\t512MB\n" +
      "GC Policy rule#1:\n\tAll:\t\t\ttrue\n\tReserved space:\t\t1.234kB\n\tMinimum free space:\t20GB\n\n",
  );
});

Deno.test("workers: --format json", () => {
  eq(
    renderWorkers([{ ...worker, GCPolicy: [], Labels: {} }], { template: parseTemplate("json") }),
    '[{"id":"w1","labels":null,"platforms":[{"architecture":"amd64","os":"linux"},' +
      '{"architecture":"arm","os":"linux"}],"gcPolicy":[],"buildkitVersion":{"package":' +
      '"github.com/moby/buildkit","version":"v0.32.2","revision":"abc"},"cdiDevices":null}]\n',
  );
  eq(renderWorkers([], { template: parseTemplate("json") }), "null\n");
});

Deno.test("info", () => {
  const v = { Package: "github.com/moby/buildkit", Version: "v0.32.2", Revision: "abc" };
  eq(renderInfo({ BuildkitVersion: v }), "BuildKit: github.com/moby/buildkit v0.32.2 abc\n");
  eq(
    renderInfo({ BuildkitVersion: { ...v, DockerfileVersion: "1.19.0" } }),
    "BuildKit:   github.com/moby/buildkit v0.32.2 abc\nDockerfile: 1.19.0\n",
  );
  eq(
    renderInfo({ BuildkitVersion: v }, { template: parseTemplate("json") }),
    '{"buildkitVersion":{"package":"github.com/moby/buildkit","version":"v0.32.2","revision":"abc"}}\n',
  );
});
