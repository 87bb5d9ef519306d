// The session (src/session) against a real buildkitd: Control/Solve driven directly with the
// dockerfile frontend, a parallel Status stream, and results compared with upstream buildctl.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  SolveRequest,
  type SolveResponse,
  type StatusResponse,
} from "../src/gen/github.com/moby/buildkit/api/services/control/control_solve.ts";
import { type BuildkitClient, connect, GrpcError, parseAddress } from "../src/client/mod.ts";
import { type Session, type SessionOptions, startSession } from "../src/session/session.ts";
import { daemonTest, type TestDaemon } from "./_util/daemon.ts";
import { runUpstream } from "./_util/run.ts";
import { busyboxRootfs } from "./_util/busybox.ts";

// ---------------------------------------------------------------------------------------------
// Helpers

interface SolveResult {
  response?: SolveResponse;
  error?: GrpcError;
  statuses: StatusResponse[];
}

/** Runs one Solve with a session, plus a parallel Status stream, then closes the session. */
async function build(
  d: TestDaemon,
  req: Partial<SolveRequest>,
  sessionOpts: SessionOptions,
): Promise<SolveResult & { session: Session }> {
  const client = await connect({ address: parseAddress(d.addr), timeoutMs: 10_000 });
  try {
    const session = await startSession(client, sessionOpts);
    const result = await solve(client, { ...req, Session: session.id });
    await session.close();
    await session.closed;
    return { ...result, session };
  } finally {
    client.close();
  }
}

async function solve(client: BuildkitClient, req: Partial<SolveRequest>): Promise<SolveResult> {
  const ref = `test${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
  const full = SolveRequest.fromPartial({ Frontend: "dockerfile.v0", ...req, Ref: ref });
  const statuses: StatusResponse[] = [];
  const statusDone = (await client.status(ref, (st) => statuses.push(st))).status;
  const result: SolveResult = await client.solve(full).then(
    (response) => ({ response, statuses }),
    (error: GrpcError) => ({ error, statuses }),
  );
  await Promise.race([statusDone, new Promise((r) => setTimeout(r, 5000))]);
  return result;
}

/** Fails with the daemon's error message if the build failed. */
function assertOk(res: SolveResult): void {
  if (res.error) assert.fail(`build failed: ${res.error.details}`);
}

/** `transferring <name>:` progress seen in the Status stream. */
function sawTransfer(statuses: StatusResponse[], name: string): boolean {
  return statuses.some((s) => s.statuses.some((v) => v.ID.startsWith(`transferring ${name}`)));
}

interface Entry {
  path: string;
  type: string;
  perm: string;
  mtimeMs: number | undefined;
  target?: string;
  sha256?: string;
  links?: string;
}

/** A comparable description of a tree: types, permission bits, symlink targets, contents, hard-link groups. */
async function describeTree(root: string, opts: { mtimes?: boolean } = {}): Promise<Entry[]> {
  const out: Entry[] = [];
  const inodes = new Map<number, string[]>();
  const walk = async (dir: string, rel: string) => {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    names.sort();
    for (const name of names) {
      const abs = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await Deno.lstat(abs);
      const e: Entry = {
        path: r,
        type: st.isDirectory
          ? "dir"
          : st.isSymlink
          ? "symlink"
          : st.isFile
          ? "file"
          : st.isFifo
          ? "fifo"
          : "other",
        perm: ((st.mode ?? 0) & 0o7777).toString(8),
        mtimeMs: opts.mtimes ? st.mtime?.getTime() : undefined,
      };
      if (st.isSymlink) e.target = await Deno.readLink(abs);
      if (st.isFile) {
        e.sha256 = createHash("sha256").update(await Deno.readFile(abs)).digest("hex");
        if ((st.nlink ?? 1) > 1) {
          const list = inodes.get(st.ino!) ?? [];
          list.push(r);
          inodes.set(st.ino!, list);
        }
      }
      out.push(e);
      if (st.isDirectory) await walk(abs, r);
    }
  };
  await walk(root, "");
  for (const list of inodes.values()) {
    const group = [...list].sort().join(",");
    for (const p of list) out.find((e) => e.path === p)!.links = group;
  }
  return out;
}

/**
 * Writes a context exercising the sender: nesting, links, modes, unicode, ignore rules, special
 * files. Returns the listener that keeps the socket file alive: close it when done.
 */
async function makeRichContext(dir: string): Promise<Deno.Listener> {
  const w = (p: string, text: string, mode = 0o644) => {
    Deno.mkdirSync(join(dir, p, ".."), { recursive: true });
    Deno.writeTextFileSync(join(dir, p), text);
    Deno.chmodSync(join(dir, p), mode);
  };
  w("Dockerfile", "FROM scratch\nCOPY . /\n");
  w("a/b/c/deep.txt", "deep\n");
  w("a/b/sibling.txt", "sibling\n");
  w("a-b", "dash sorts after a/ as a name, before it as a path\n");
  w("a.b", "dot\n");
  w("run.sh", "#!/bin/sh\necho hi\n", 0o755);
  w("private.key", "secret-ish\n", 0o600);
  w("unicodé/naïve 文件.txt", "unicode\n");
  w("emoji/😀.txt", "emoji\n");
  w("big.bin", "x".repeat(3 * 1024 * 1024 + 17));
  w("empty-file", "");
  await Deno.mkdir(join(dir, "empty-dir"));
  await Deno.mkdir(join(dir, "sticky"));
  await Deno.chmod(join(dir, "sticky"), 0o1777);
  await Deno.symlink("a/b/c/deep.txt", join(dir, "link-rel"));
  await Deno.symlink("/etc/hostname", join(dir, "link-abs"));
  await Deno.symlink("does/not/exist", join(dir, "link-dangling"));
  await Deno.symlink("a", join(dir, "link-dir"));
  // Special files: a FIFO travels as a named pipe; a socket as an empty regular file (as upstream).
  await new Deno.Command("mkfifo", { args: [join(dir, "fifo")] }).output();
  const listener = Deno.listen({ transport: "unix", path: join(dir, "sock") });
  w("hard/one", "hard linked\n");
  await Deno.link(join(dir, "hard/one"), join(dir, "hard/two"));
  await Deno.link(join(dir, "hard/one"), join(dir, "hard-three"));
  // Ignore rules: drop logs and the build dir, but keep one log and one build file.
  w("logs/a.log", "a\n");
  w("logs/keep.log", "keep\n");
  w("logs/readme.txt", "readme\n");
  w("build/out.o", "obj\n");
  w("build/keep/me.txt", "me\n");
  w("node_modules/pkg/index.js", "x\n");
  w("sub/node_modules/pkg/index.js", "y\n");
  w(
    ".dockerignore",
    "# comment\n**/*.log\n!logs/keep.log\nbuild\n!build/keep\nnode_modules\n**/node_modules\n",
  );
  return listener;
}

function tempDir(prefix: string): Promise<string> {
  return Deno.makeTempDir({ prefix });
}

// ---------------------------------------------------------------------------------------------
// Tests

daemonTest(
  "session: type=local export of a rich context matches upstream buildctl",
  async (_t, d) => {
    const ctx = await tempDir("sess-ctx-");
    const outOurs = await tempDir("sess-ours-");
    const outUp = await tempDir("sess-up-");
    try {
      using _ = await makeRichContext(ctx);
      const res = await build(d, {
        Exporters: [{ Type: "local", Attrs: {} }],
      }, {
        localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
        exporters: [{ kind: "local", dir: join(outOurs, "dest") }],
      });
      assertOk(res);
      assert.ok(sawTransfer(res.statuses, "context"), "Status shows the context transfer");

      const up = await runUpstream([
        "--addr",
        d.addr,
        "build",
        "--progress=plain",
        "--frontend",
        "dockerfile.v0",
        "--local",
        `context=${ctx}`,
        "--local",
        `dockerfile=${ctx}`,
        "--output",
        `type=local,dest=${join(outUp, "dest")}`,
      ]);
      assert.equal(up.code, 0, up.stderr);

      const ours = await describeTree(join(outOurs, "dest"), { mtimes: true });
      const theirs = await describeTree(join(outUp, "dest"), { mtimes: true });
      assert.deepEqual(ours, theirs);
      if (Deno.env.get("SESS_DEBUG")) console.log(ours);
      // Spot checks of what the comparison covers.
      const byPath = new Map(ours.map((e) => [e.path, e]));
      assert.equal(byPath.get("run.sh")?.perm, "755");
      assert.equal(byPath.get("sticky")?.perm, "1777");
      assert.equal(byPath.get("link-dangling")?.target, "does/not/exist");
      assert.equal(byPath.get("hard/two")?.links, "hard-three,hard/one,hard/two");
      assert.equal(byPath.get("empty-dir")?.type, "dir");
      assert.ok(byPath.has("unicodé/naïve 文件.txt") && byPath.has("emoji/😀.txt"));
      assert.ok(byPath.has("logs/keep.log") && !byPath.has("logs/a.log"));
      assert.ok(byPath.has("build/keep/me.txt") && !byPath.has("build/out.o"));
      assert.ok(!byPath.has("node_modules") && !byPath.has("sub/node_modules"));
      assert.equal(byPath.get("fifo")?.type, "fifo");
      assert.equal(byPath.get("sock")?.type, "file");
    } finally {
      for (const p of [ctx, outOurs, outUp]) {
        await Deno.remove(p, { recursive: true }).catch(
          () => {},
        );
      }
    }
  },
);

/** Member names of a tar archive (ustar, PAX `path` records honoured). */
function tarMembers(data: Uint8Array): string[] {
  const names: string[] = [];
  const dec = new TextDecoder();
  let off = 0;
  let paxPath: string | undefined;
  while (off + 512 <= data.length) {
    const h = data.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (a: number, n: number) => dec.decode(h.subarray(a, a + n)).replace(/\0.*$/s, "");
    const size = parseInt(str(124, 12).trim() || "0", 8);
    const type = String.fromCharCode(h[156]!);
    const prefix = str(345, 155);
    let name = prefix ? `${prefix}/${str(0, 100)}` : str(0, 100);
    const body = data.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === "x") {
      const m = /\d+ path=([^\n]*)\n/.exec(dec.decode(body));
      paxPath = m?.[1];
      continue;
    }
    if (type === "g") continue;
    if (paxPath !== undefined) name = paxPath;
    paxPath = undefined;
    names.push(`${type}:${name}`);
  }
  return names;
}

daemonTest(
  "session: type=tar export through a stream target lists the same members as upstream",
  async (_t, d) => {
    const ctx = await tempDir("sess-tarctx-");
    const out = await tempDir("sess-tarout-");
    try {
      using _ = await makeRichContext(ctx);
      const chunks: Uint8Array[] = [];
      const res = await build(d, { Exporters: [{ Type: "tar", Attrs: {} }] }, {
        localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
        exporters: [{
          kind: "stream",
          open: () =>
            Promise.resolve(
              new WritableStream<Uint8Array>({
                write(c) {
                  chunks.push(c.slice());
                },
              }),
            ),
        }],
      });
      assertOk(res);
      const ours = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let off = 0;
      for (const c of chunks) {
        ours.set(c, off);
        off += c.length;
      }
      const up = await runUpstream([
        "--addr",
        d.addr,
        "build",
        "--frontend",
        "dockerfile.v0",
        "--local",
        `context=${ctx}`,
        "--local",
        `dockerfile=${ctx}`,
        "--output",
        `type=tar,dest=${join(out, "up.tar")}`,
      ]);
      assert.equal(up.code, 0, up.stderr);
      const theirs = await Deno.readFile(join(out, "up.tar"));
      const oursMembers = tarMembers(ours);
      assert.ok(oursMembers.length > 20, `few members: ${oursMembers.join(" ")}`);
      assert.deepEqual(oursMembers, tarMembers(theirs));
    } finally {
      for (const p of [ctx, out]) await Deno.remove(p, { recursive: true }).catch(() => {});
    }
  },
);

const SECRET_DOCKERFILE = `FROM busybox AS b
RUN --mount=type=secret,id=s cat /run/secrets/s > /out
RUN --mount=type=secret,id=e,required=true cat /run/secrets/e > /out-env
FROM scratch
COPY --from=b /out /out
COPY --from=b /out-env /out-env
`;

daemonTest("session: RUN --mount=type=secret sees file and env secrets", async (_t, d) => {
  const ctx = await tempDir("sess-secctx-");
  const out = await tempDir("sess-secout-");
  try {
    await Deno.writeTextFile(join(ctx, "Dockerfile"), SECRET_DOCKERFILE);
    await Deno.writeTextFile(join(ctx, "secret.txt"), "s3cr3t-from-file");
    Deno.env.set("BUILDCTL_TEST_SECRET_ENV", "s3cr3t-from-env");
    const res = await build(d, {
      FrontendAttrs: { "context:busybox": "local:bb" },
      Exporters: [{ Type: "local", Attrs: {} }],
    }, {
      localDirs: new Map([["context", ctx], ["dockerfile", ctx], ["bb", await busyboxRootfs()]]),
      exporters: [{ kind: "local", dir: out }],
      secrets: new Map([
        ["s", { kind: "file", path: join(ctx, "secret.txt") }],
        ["e", { kind: "env", name: "BUILDCTL_TEST_SECRET_ENV" }],
      ]),
    });
    assertOk(res);
    assert.equal(await Deno.readTextFile(join(out, "out")), "s3cr3t-from-file");
    assert.equal(await Deno.readTextFile(join(out, "out-env")), "s3cr3t-from-env");
  } finally {
    Deno.env.delete("BUILDCTL_TEST_SECRET_ENV");
    for (const p of [ctx, out]) await Deno.remove(p, { recursive: true }).catch(() => {});
  }
});

daemonTest(
  "session: a missing required secret fails the build, naming the secret",
  async (_t, d) => {
    const ctx = await tempDir("sess-nosec-");
    try {
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        "FROM busybox\nRUN --mount=type=secret,id=nope,required=true cat /run/secrets/nope\n",
      );
      const res = await build(d, { FrontendAttrs: { "context:busybox": "local:bb" } }, {
        localDirs: new Map([["context", ctx], ["dockerfile", ctx], ["bb", await busyboxRootfs()]]),
        secrets: new Map([["other", { kind: "env", name: "HOME" }]]),
      });
      assert.ok(res.error, "the build must fail");
      if (Deno.env.get("SESS_DEBUG")) console.log(res.error.details);
      assert.match(res.error.details, /secret nope/);
      assert.match(res.error.details, /not found/);
    } finally {
      await Deno.remove(ctx, { recursive: true }).catch(() => {});
    }
  },
);

daemonTest(
  "session: a second build of an unchanged context only transfers changed files",
  async (_t, d) => {
    const ctx = await tempDir("sess-incr-");
    const out = await tempDir("sess-incr-out-");
    try {
      await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY . /\n");
      await Deno.mkdir(join(ctx, "dir"));
      for (let i = 0; i < 20; i++) {
        await Deno.writeTextFile(
          join(ctx, "dir", `f${i}.txt`),
          `file ${i}\n`,
        );
      }
      await Deno.writeTextFile(join(ctx, "changes.txt"), "version 1\n");
      const opts = (dest: string): SessionOptions => ({
        localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
        exporters: [{ kind: "local", dir: dest }],
        sender: { recordPaths: true },
      });
      const first = await build(
        d,
        { Exporters: [{ Type: "local", Attrs: {} }] },
        opts(join(out, "1")),
      );
      assertOk(first);
      const firstCtx = first.session.stats.get("context")!;
      assert.ok(
        firstCtx.requested!.includes("changes.txt") && firstCtx.requested!.includes("dir/f7.txt"),
      );

      await Deno.writeTextFile(join(ctx, "changes.txt"), "version 2, longer\n");
      const second = await build(
        d,
        { Exporters: [{ Type: "local", Attrs: {} }] },
        opts(join(out, "2")),
      );
      assertOk(second);
      const secondCtx = second.session.stats.get("context")!;
      assert.deepEqual(secondCtx.requested, ["changes.txt"]);
      assert.equal(await Deno.readTextFile(join(out, "2", "changes.txt")), "version 2, longer\n");
      assert.equal(await Deno.readTextFile(join(out, "2", "dir", "f7.txt")), "file 7\n");
    } finally {
      for (const p of [ctx, out]) await Deno.remove(p, { recursive: true }).catch(() => {});
    }
  },
);

daemonTest(
  "session: a file that cannot be read fails the build with an error naming it",
  async (_t, d) => {
    const ctx = await tempDir("sess-unread-");
    try {
      await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY . /\n");
      await Deno.writeTextFile(join(ctx, "fine.txt"), "fine\n");
      await Deno.writeTextFile(join(ctx, "broken.txt"), "cannot be read\n");
      const res = await build(d, {}, {
        localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
        sender: {
          openFile: (p) =>
            p.endsWith("broken.txt")
              ? Promise.reject(new Deno.errors.PermissionDenied("Permission denied (os error 13)"))
              : Deno.open(p),
        },
      });
      assert.ok(res.error, "the build must fail");
      if (Deno.env.get("SESS_DEBUG")) console.log(res.error.details);
      assert.match(res.error.details, /broken\.txt/);
      assert.match(res.error.details, /Permission denied/);
    } finally {
      await Deno.remove(ctx, { recursive: true }).catch(() => {});
    }
  },
);

daemonTest(
  "session: a missing --local directory fails the build with an error naming it",
  async (_t, d) => {
    const ctx = await Deno.makeTempDir({ prefix: "sess-missing-" });
    try {
      await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY . /\n");
      const res = await build(d, {}, {
        localDirs: new Map([["context", join(ctx, "nope")], ["dockerfile", ctx]]),
      });
      assert.ok(res.error, "the build must fail");
      if (Deno.env.get("SESS_DEBUG")) console.log(res.error.details);
      assert.match(res.error.details, /nope/);
    } finally {
      await Deno.remove(ctx, { recursive: true }).catch(() => {});
    }
  },
);

daemonTest(
  "session: a failed type=local export leaves the destination untouched",
  async (_t, d) => {
    const ctx = await tempDir("sess-atomic-");
    const out = await tempDir("sess-atomic-out-");
    try {
      await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY . /\n");
      await Deno.writeTextFile(join(ctx, "new.txt"), "new\n");
      await Deno.writeTextFile(join(out, "old.txt"), "old\n");
      // The second exporter (a stream) fails after the local one has received everything.
      const res = await build(d, {
        Exporters: [{ Type: "local", Attrs: {} }, { Type: "tar", Attrs: {} }],
      }, {
        localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
        exporters: [
          { kind: "local", dir: out },
          { kind: "stream", open: () => Promise.reject(new Error("disk full")) },
        ],
      });
      assert.ok(res.error, "the build must fail");
      if (Deno.env.get("SESS_DEBUG")) console.log(res.error.details);
      assert.match(res.error.details, /disk full/);
      const names = [];
      for await (const e of Deno.readDir(out)) names.push(e.name);
      // Either the local export completed (new.txt merged in) or nothing changed; never a staging leftover.
      assert.ok(names.includes("old.txt"));
      assert.ok(
        names.every((n) => n === "old.txt" || n === "new.txt" || n === "Dockerfile"),
        names.join(","),
      );
    } finally {
      for (const p of [ctx, out]) await Deno.remove(p, { recursive: true }).catch(() => {});
    }
  },
);

daemonTest("session: answers the daemon's health checks during a long build", async (_t, d) => {
  const ctx = await tempDir("sess-health-");
  const out = await tempDir("sess-health-out-");
  try {
    await Deno.writeTextFile(
      join(ctx, "Dockerfile"),
      "FROM busybox AS b\nRUN sleep 4 && echo done > /done\nFROM scratch\nCOPY --from=b /done /done\n",
    );
    // Health checks every second, and a single miss drops the session (the export would then fail).
    const res = await build(d, {
      FrontendAttrs: { "context:busybox": "local:bb" },
      Exporters: [{ Type: "local", Attrs: {} }],
    }, {
      localDirs: new Map([["context", ctx], ["dockerfile", ctx], ["bb", await busyboxRootfs()]]),
      exporters: [{ kind: "local", dir: out }],
      healthCheckTimeoutMs: 1000,
    });
    assertOk(res);
    assert.equal(await Deno.readTextFile(join(out, "done")), "done\n");
  } finally {
    for (const p of [ctx, out]) await Deno.remove(p, { recursive: true }).catch(() => {});
  }
});

daemonTest(
  "session: a non-ASCII Dockerfile name arrives -encoded and is decoded",
  async (_t, d) => {
    const ctx = await tempDir("sess-enc-");
    const out = await tempDir("sess-enc-out-");
    try {
      await Deno.writeTextFile(join(ctx, "Dockérfile"), "FROM scratch\nCOPY ünïcode.txt /\n");
      await Deno.writeTextFile(join(ctx, "Dockérfile.dockerignore"), "*\n!ünïcode.txt\n");
      await Deno.writeTextFile(join(ctx, "ünïcode.txt"), "ok\n");
      await Deno.writeTextFile(join(ctx, "other.txt"), "ignored\n");
      const res = await build(d, {
        FrontendAttrs: { filename: "Dockérfile" },
        Exporters: [{ Type: "local", Attrs: {} }],
      }, {
        localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
        exporters: [{ kind: "local", dir: out }],
        sender: { recordPaths: true },
      });
      assertOk(res);
      assert.equal(await Deno.readTextFile(join(out, "ünïcode.txt")), "ok\n");
      assert.ok(
        !res.session.stats.get("context")!.requested!.includes("other.txt"),
        "ignored file not sent",
      );
    } finally {
      for (const p of [ctx, out]) await Deno.remove(p, { recursive: true }).catch(() => {});
    }
  },
);

daemonTest(
  "session: a multi-platform type=local export matches upstream buildctl",
  async (_t, d) => {
    const ctx = await tempDir("sess-mp-");
    const out = await tempDir("sess-mp-out-");
    try {
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY a.txt /a-$TARGETARCH.txt\n",
      );
      await Deno.writeTextFile(join(ctx, "a.txt"), "a\n");
      const res = await build(d, {
        FrontendAttrs: { platform: "linux/amd64,linux/arm64,linux/riscv64" },
        Exporters: [{ Type: "local", Attrs: {} }],
      }, {
        localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
        exporters: [{ kind: "local", dir: join(out, "ours") }],
      });
      assertOk(res);
      const up = await runUpstream([
        "--addr",
        d.addr,
        "build",
        "--frontend",
        "dockerfile.v0",
        "--opt",
        "platform=linux/amd64,linux/arm64,linux/riscv64",
        "--local",
        `context=${ctx}`,
        "--local",
        `dockerfile=${ctx}`,
        "--output",
        `type=local,dest=${join(out, "up")}`,
      ]);
      assert.equal(up.code, 0, up.stderr);
      const ours = await describeTree(join(out, "ours"));
      assert.deepEqual(ours, await describeTree(join(out, "up")));
      assert.ok(ours.some((e) => e.path === "linux_arm64/a-arm64.txt"), JSON.stringify(ours));
    } finally {
      for (const p of [ctx, out]) await Deno.remove(p, { recursive: true }).catch(() => {});
    }
  },
);

daemonTest(
  "session: close() ends the tunnel promptly; aborting the signal tears it down",
  async (_t, d) => {
    const client = await connect({ address: parseAddress(d.addr), timeoutMs: 10_000 });
    try {
      const t0 = performance.now();
      const s1 = await startSession(client, {});
      await s1.close();
      await s1.closed;
      assert.ok(performance.now() - t0 < 2000, "close() waits for the daemon, not for its timeout");
      await s1.close(); // idempotent

      const ac = new AbortController();
      const s2 = await startSession(client, { signal: ac.signal });
      ac.abort();
      await s2.closed;

      // Extra services are served and advertised; duplicates are refused.
      await assert.rejects(
        startSession(client, {
          services: new Map([["/grpc.health.v1.Health/Check", () => Promise.resolve()]]),
        }),
        /served twice/,
      );
    } finally {
      client.close();
    }
  },
);
