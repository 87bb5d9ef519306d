// Walk order and filtering of the file-sync sender. Expected lists were
// produced by fsutil itself (NewFS + NewFilterFS + WithHardlinkReset, as the
// Go sender builds them) on the same tree, and are kept here as data.

import assert from "node:assert/strict";
import { join } from "node:path";
import { compareNames, compileFilter, type FilterOptions, walk } from "./walker.ts";
import { FileMode } from "./fsutil_wire.ts";

async function makeTree(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "walker-" });
  const w = (p: string, t = "x") => {
    Deno.mkdirSync(join(root, p, ".."), { recursive: true });
    Deno.writeTextFileSync(join(root, p), t);
  };
  w("a/b");
  w("a-b");
  w("a.b");
  w("a/c/d");
  w("\uffff");
  w("😀");
  w("é");
  w("Z");
  w("_");
  w("logs/a.log");
  w("logs/keep.log");
  w("logs/sub/b.log");
  w("build/out.o");
  w("build/keep/me.txt");
  w("docs/dockerfiles/Dockerfile.real", "FROM scratch");
  await Deno.symlink("docs/dockerfiles/Dockerfile.real", join(root, "Dockerfile"));
  await Deno.symlink("/docs", join(root, "abs-docs"));
  w("h/first");
  await Deno.link(join(root, "h/first"), join(root, "h/second"));
  await Deno.link(join(root, "h/first"), join(root, "hz"));
  await Deno.mkdir(join(root, "empty"));
  return root;
}

const CASES: { opts: FilterOptions; want: string[] }[] = [
  {
    opts: {},
    want: [
      "Dockerfile -> docs/dockerfiles/Dockerfile.real",
      "Z",
      "_",
      "a",
      "a/b",
      "a/c",
      "a/c/d",
      "a-b",
      "a.b",
      "abs-docs -> /docs",
      "build",
      "build/keep",
      "build/keep/me.txt",
      "build/out.o",
      "docs",
      "docs/dockerfiles",
      "docs/dockerfiles/Dockerfile.real",
      "empty",
      "h",
      "h/first",
      "h/second -> h/first",
      "hz -> h/first",
      "logs",
      "logs/a.log",
      "logs/keep.log",
      "logs/sub",
      "logs/sub/b.log",
      "é",
      "￿",
      "😀",
    ],
  },
  {
    opts: { excludePatterns: ["**/*.log", "!logs/keep.log", "build", "!build/keep"] },
    want: [
      "Dockerfile -> docs/dockerfiles/Dockerfile.real",
      "Z",
      "_",
      "a",
      "a/b",
      "a/c",
      "a/c/d",
      "a-b",
      "a.b",
      "abs-docs -> /docs",
      "build",
      "build/keep",
      "build/keep/me.txt",
      "docs",
      "docs/dockerfiles",
      "docs/dockerfiles/Dockerfile.real",
      "empty",
      "h",
      "h/first",
      "h/second -> h/first",
      "hz -> h/first",
      "logs",
      "logs/keep.log",
      "logs/sub",
      "é",
      "￿",
      "😀",
    ],
  },
  {
    opts: { excludePatterns: ["h/first"] },
    want: [
      "Dockerfile -> docs/dockerfiles/Dockerfile.real",
      "Z",
      "_",
      "a",
      "a/b",
      "a/c",
      "a/c/d",
      "a-b",
      "a.b",
      "abs-docs -> /docs",
      "build",
      "build/keep",
      "build/keep/me.txt",
      "build/out.o",
      "docs",
      "docs/dockerfiles",
      "docs/dockerfiles/Dockerfile.real",
      "empty",
      "h",
      "h/second",
      "hz -> h/second",
      "logs",
      "logs/a.log",
      "logs/keep.log",
      "logs/sub",
      "logs/sub/b.log",
      "é",
      "￿",
      "😀",
    ],
  },
  {
    opts: { includePatterns: ["a", "h"] },
    want: ["a", "a/b", "a/c", "a/c/d", "h", "h/first", "h/second -> h/first"],
  },
  { opts: { includePatterns: ["*/b"] }, want: ["a", "a/b"] },
  {
    opts: { followPaths: ["Dockerfile", "Dockerfile.dockerignore", "dockerfile"] },
    want: [
      "Dockerfile -> docs/dockerfiles/Dockerfile.real",
      "docs",
      "docs/dockerfiles",
      "docs/dockerfiles/Dockerfile.real",
    ],
  },
  {
    opts: { followPaths: ["abs-docs/dockerfiles/*.real"] },
    want: ["abs-docs -> /docs", "docs", "docs/dockerfiles", "docs/dockerfiles/Dockerfile.real"],
  },
  { opts: { excludePatterns: ["*", "!logs/sub"] }, want: ["logs", "logs/sub", "logs/sub/b.log"] },
  {
    opts: { excludePatterns: ["logs", "!**/keep.log"] },
    want: [
      "Dockerfile -> docs/dockerfiles/Dockerfile.real",
      "Z",
      "_",
      "a",
      "a/b",
      "a/c",
      "a/c/d",
      "a-b",
      "a.b",
      "abs-docs -> /docs",
      "build",
      "build/keep",
      "build/keep/me.txt",
      "build/out.o",
      "docs",
      "docs/dockerfiles",
      "docs/dockerfiles/Dockerfile.real",
      "empty",
      "h",
      "h/first",
      "h/second -> h/first",
      "hz -> h/first",
      "logs",
      "logs/keep.log",
      "é",
      "￿",
      "😀",
    ],
  },
];

async function list(root: string, opts: FilterOptions): Promise<string[]> {
  const out: string[] = [];
  await walk(root, await compileFilter(root, opts), (st) => {
    out.push(st.path + (st.linkname ? ` -> ${st.linkname}` : ""));
  });
  return out;
}

Deno.test("walk() sends entries in fsutil order with fsutil's filtering", async () => {
  const root = await makeTree();
  try {
    for (const c of CASES) {
      assert.deepEqual(await list(root, c.opts), c.want, JSON.stringify(c.opts));
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("walk() stats: Go FileMode bits, uid/gid 0, ns mtimes, symlink and hard-link details", async () => {
  const root = await Deno.makeTempDir({ prefix: "walker-stat-" });
  try {
    await Deno.writeTextFile(join(root, "exec"), "#!/bin/sh\n");
    await Deno.chmod(join(root, "exec"), 0o4755);
    await Deno.mkdir(join(root, "dir"));
    await Deno.chmod(join(root, "dir"), 0o1777);
    await Deno.symlink("exec", join(root, "link"));
    await Deno.link(join(root, "exec"), join(root, "zz-hard"));
    await Deno.utime(join(root, "exec"), 1_600_000_000.5, 1_600_000_000.25);
    const stats = new Map<
      string,
      { mode: number; size: bigint; modTime: bigint; linkname: string; uid: number }
    >();
    await walk(root, await compileFilter(root, {}), (st) => {
      stats.set(st.path, st);
    });
    const exec = stats.get("exec")!;
    assert.equal(exec.mode, (FileMode.Setuid | 0o755) >>> 0);
    assert.equal(exec.size, 10n);
    assert.equal(exec.modTime, 1_600_000_000_250_000_000n);
    assert.equal(exec.uid, 0);
    assert.equal(stats.get("dir")!.mode, (FileMode.Dir | FileMode.Sticky | 0o777) >>> 0);
    assert.equal(stats.get("dir")!.size, 0n);
    const link = stats.get("link")!;
    assert.equal(link.mode, (FileMode.Symlink | 0o777) >>> 0);
    assert.equal(link.linkname, "exec");
    assert.equal(link.size, 4n);
    const hard = stats.get("zz-hard")!;
    assert.equal(hard.linkname, "exec");
    assert.equal(hard.size, 10n); // fsutil keeps the size on hard-link entries
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("compareNames() orders by code point (UTF-8 byte order), not UTF-16 units", () => {
  const names = ["😀", "\uffff", "é", "a-b", "a", "Z", "a.b"];
  assert.deepEqual([...names].sort(compareNames), ["Z", "a", "a-b", "a.b", "é", "\uffff", "😀"]);
});

Deno.test("compileFilter() reports invalid patterns like fsutil", async () => {
  await assert.rejects(
    compileFilter("/", { excludePatterns: ["a["] }),
    /invalid excludepatterns: \[a\[\]: syntax error in pattern/,
  );
  await assert.rejects(compileFilter("/", { includePatterns: ["!"] }), /invalid includepatterns/);
});
