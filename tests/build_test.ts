/**
 * `buildctl build` through our CLI against a real buildkitd with runc, and the
 * same command lines through upstream Go buildctl: identical local output
 * trees and tar member lists; LLB from stdin; secrets; every bad input.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { daemonTest, startDaemon, type TestDaemon } from "./_util/daemon.ts";
import { buildctlCommand, runBuildctl, type RunResult, runUpstream } from "./_util/run.ts";
import { TEST_PATH } from "./_util/paths.ts";
import { busyboxArgs } from "./_util/busybox.ts";
import { describeTree, tarMembers } from "./_util/tree.ts";
import { Definition } from "../src/gen/github.com/moby/buildkit/solver/pb/graph.ts";
import { Op } from "../src/gen/github.com/moby/buildkit/solver/pb/ops.ts";

/** A context with nested dirs, symlinks, hard links, an empty dir, exec bits, unicode names and a .dockerignore. */
async function makeContext(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "bctx-" });
  const w = async (p: string, text: string, mode = 0o644) => {
    await Deno.mkdir(join(dir, p, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, p), text);
    await Deno.chmod(join(dir, p), mode);
  };
  await w("a.txt", "alpha\n");
  await w("nested/deep/er/file.txt", "deep\n");
  await w("nested/run.sh", "#!/bin/sh\necho run\n", 0o755);
  await w("ünïcödé/名前.txt", "unicode\n");
  await w("ignored/secret.txt", "ignored\n");
  await w("ignored/keep.txt", "kept by exception\n");
  await w("skip.log", "log\n");
  await w("big.bin", "x".repeat(300_000));
  await Deno.mkdir(join(dir, "empty"));
  await Deno.symlink("a.txt", join(dir, "link-to-a"));
  await Deno.symlink("../a.txt", join(dir, "nested/up-link"));
  await Deno.symlink("/nonexistent/target", join(dir, "dangling"));
  await Deno.link(join(dir, "a.txt"), join(dir, "nested/hard-a"));
  await Deno.writeTextFile(join(dir, ".dockerignore"), "ignored\n!ignored/keep.txt\n*.log\n");
  await Deno.writeTextFile(join(dir, "Dockerfile"), "FROM scratch\nCOPY . /\n");
  return dir;
}

async function build(
  d: TestDaemon,
  runner: typeof runBuildctl,
  args: string[],
  opts: { stdin?: Uint8Array; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return await runner(["--addr", d.addr, "build", "--progress=plain", ...args], opts);
}

function dockerfileArgs(ctx: string, dockerfileDir = ctx): string[] {
  return [
    "--frontend=dockerfile.v0",
    "--local",
    `context=${ctx}`,
    "--local",
    `dockerfile=${dockerfileDir}`,
  ];
}

daemonTest(
  "build --output type=local: same tree as upstream (modes, links, unicode, .dockerignore)",
  async (t, d) => {
    const ctx = await makeContext();
    const out = await Deno.makeTempDir({ prefix: "bout-" });
    try {
      const ours = await build(d, runBuildctl, [
        ...dockerfileArgs(ctx),
        "--output",
        `type=local,dest=${out}/ours`,
      ]);
      assert.equal(ours.code, 0, ours.stderr);
      const theirs = await build(d, runUpstream, [
        ...dockerfileArgs(ctx),
        "--output",
        `type=local,dest=${out}/theirs`,
      ]);
      assert.equal(theirs.code, 0, theirs.stderr);
      const a = await describeTree(join(out, "ours"));
      const b = await describeTree(join(out, "theirs"));
      assert.deepEqual(a, b);
      await t.step("the tree has what the context promised", () => {
        const paths = new Set(a.map((e) => e.path));
        for (
          const p of [
            "a.txt",
            "empty",
            "link-to-a",
            "dangling",
            "nested/hard-a",
            "ünïcödé/名前.txt",
            "ignored/keep.txt",
          ]
        ) {
          assert.ok(paths.has(p), `missing ${p}`);
        }
        for (const p of ["ignored/secret.txt", "skip.log"]) {
          assert.ok(!paths.has(p), `${p} should be excluded`);
        }
        assert.equal(a.find((e) => e.path === "nested/run.sh")?.mode, 0o755);
        assert.deepEqual(a.find((e) => e.path === "a.txt")?.links, ["a.txt", "nested/hard-a"]);
        assert.equal(a.find((e) => e.path === "nested/up-link")?.target, "../a.txt");
      });
      await t.step("plain progress shows the context transfer and no error", () => {
        assert.match(ours.stderr, /#\d+ \[internal\] load build context/);
        assert.match(ours.stderr, /transferring context: /);
      });
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await Deno.remove(out, { recursive: true });
    }
  },
);

daemonTest(
  "build --output type=tar and type=oci: same tar members as upstream; stdout works",
  async (t, d) => {
    const ctx = await makeContext();
    const out = await Deno.makeTempDir({ prefix: "bout-" });
    try {
      for (const type of ["tar", "oci", "docker"]) {
        await t.step(type, async () => {
          const name = type === "tar" ? "" : ",name=example.local/x:1";
          const ours = await build(d, runBuildctl, [
            ...dockerfileArgs(ctx),
            "--output",
            `type=${type}${name},dest=${out}/ours.${type}`,
          ]);
          assert.equal(ours.code, 0, ours.stderr);
          const theirs = await build(d, runUpstream, [
            ...dockerfileArgs(ctx),
            "--output",
            `type=${type}${name},dest=${out}/theirs.${type}`,
          ]);
          assert.equal(theirs.code, 0, theirs.stderr);
          assert.deepEqual(
            await tarMembers(`${out}/ours.${type}`),
            await tarMembers(`${out}/theirs.${type}`),
          );
        });
      }
      await t.step("tar to stdout (dest=-)", async () => {
        const ours = await build(d, runBuildctl, [
          ...dockerfileArgs(ctx),
          "--output",
          "type=tar,dest=-",
        ]);
        assert.equal(ours.code, 0, ours.stderr);
        await Deno.writeFile(`${out}/stdout.tar`, ours.bytes);
        assert.deepEqual(
          await tarMembers(`${out}/stdout.tar`),
          await tarMembers(`${out}/ours.tar`),
        );
      });
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await Deno.remove(out, { recursive: true });
    }
  },
);

daemonTest("build with RUN on busybox, secrets, metadata and ref files", async (t, d) => {
  const ctx = await Deno.makeTempDir({ prefix: "bctx-" });
  const out = await Deno.makeTempDir({ prefix: "bout-" });
  const bb = await busyboxArgs();
  try {
    await Deno.writeTextFile(join(out, "secret.txt"), "s3cr3t-value");
    await Deno.writeTextFile(
      join(ctx, "Dockerfile"),
      [
        "FROM busybox",
        "RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /secret-len",
        "RUN --mount=type=secret,id=envtok cat /run/secrets/envtok > /env-secret",
        "RUN echo built-with-run > /run.txt",
      ].join("\n") + "\n",
    );
    const r = await build(d, runBuildctl, [
      ...dockerfileArgs(ctx),
      ...bb,
      "--secret",
      `id=tok,src=${out}/secret.txt`,
      "--secret",
      "id=envtok,env=MY_TOKEN",
      "--output",
      `type=local,dest=${out}/tree`,
      "--metadata-file",
      `${out}/md.json`,
      "--ref-file",
      `${out}/ref`,
    ], { env: { MY_TOKEN: "from-env" } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await Deno.readTextFile(`${out}/tree/secret-len`)).trim(), "12");
    assert.equal(await Deno.readTextFile(`${out}/tree/env-secret`), "from-env");
    assert.equal(await Deno.readTextFile(`${out}/tree/run.txt`), "built-with-run\n");
    await t.step("the secret never appears in logs or metadata", async () => {
      assert.ok(!r.stderr.includes("s3cr3t-value"));
      assert.ok(!(await Deno.readTextFile(`${out}/md.json`)).includes("s3cr3t"));
    });
    await t.step("the ref file holds the build ref", async () => {
      assert.match(await Deno.readTextFile(`${out}/ref`), /^[0-9a-z]{20,}$/);
    });
    await t.step("image exporter metadata file has the digest, like upstream's", async () => {
      const ours = await build(d, runBuildctl, [
        ...dockerfileArgs(ctx),
        ...bb,
        "--secret",
        `id=tok,src=${out}/secret.txt`,
        "--secret",
        "id=envtok,env=MY_TOKEN",
        "--output",
        "type=image,name=example.local/t:1",
        "--metadata-file",
        `${out}/img.json`,
      ], { env: { MY_TOKEN: "x" } });
      assert.equal(ours.code, 0, ours.stderr);
      const md = JSON.parse(await Deno.readTextFile(`${out}/img.json`));
      assert.match(md["containerimage.digest"], /^sha256:[0-9a-f]{64}$/);
      assert.equal(typeof md["containerimage.descriptor"], "object");
      assert.equal(md["image.name"], "example.local/t:1");
    });
    await t.step("a second identical build is CACHED", async () => {
      // (RUN steps on a local named context are re-run by design, upstream too:
      // the context's cache key is per session; COPY steps show the cache.)
      const c2 = await Deno.makeTempDir({ prefix: "bctx-" });
      try {
        await Deno.writeTextFile(
          join(c2, "Dockerfile"),
          "FROM scratch\nCOPY Dockerfile /a\nCOPY Dockerfile /b\n",
        );
        const first = await build(d, runBuildctl, dockerfileArgs(c2));
        assert.equal(first.code, 0, first.stderr);
        assert.doesNotMatch(first.stderr, /CACHED/);
        const again = await build(d, runBuildctl, dockerfileArgs(c2));
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, /#\d+ \[2\/2\] COPY Dockerfile \/b\n#\d+ CACHED/);
      } finally {
        await Deno.remove(c2, { recursive: true });
      }
    });
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});

/** A minimal LLB: the local source `context`, returned as the result. */
async function llbLocalContext(): Promise<Uint8Array> {
  const source = Buffer.from(
    Op.encode(Op.fromPartial({ source: { identifier: "local://context", attrs: {} } })).finish(),
  );
  const digest = await sha256(source);
  const ret = Buffer.from(
    Op.encode(Op.fromPartial({ inputs: [{ digest: `sha256:${digest}`, index: 0n }] })).finish(),
  );
  return Definition.encode(Definition.fromPartial({ def: [source, ret] })).finish();
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

daemonTest("build with LLB on stdin (no --frontend) exports like upstream", async (_t, d) => {
  const ctx = await makeContext();
  const out = await Deno.makeTempDir({ prefix: "bout-" });
  try {
    const def = await llbLocalContext();
    const ours = await build(d, runBuildctl, [
      "--local",
      `context=${ctx}`,
      "--output",
      `type=local,dest=${out}/ours`,
    ], { stdin: def });
    assert.equal(ours.code, 0, ours.stderr);
    const theirs = await build(d, runUpstream, [
      "--local",
      `context=${ctx}`,
      "--output",
      `type=local,dest=${out}/theirs`,
    ], { stdin: def });
    assert.equal(theirs.code, 0, theirs.stderr);
    assert.deepEqual(await describeTree(`${out}/ours`), await describeTree(`${out}/theirs`));
    const noCache = await build(d, runBuildctl, ["--no-cache", "--local", `context=${ctx}`], {
      stdin: def,
    });
    assert.equal(noCache.code, 0, noCache.stderr);
  } finally {
    await Deno.remove(ctx, { recursive: true });
    await Deno.remove(out, { recursive: true });
  }
});

daemonTest(
  "a failing RUN shows the Dockerfile lines and the step's log, like upstream",
  async (_t, d) => {
    const ctx = await Deno.makeTempDir({ prefix: "bctx-" });
    try {
      await Deno.writeTextFile(
        join(ctx, "Dockerfile"),
        "FROM busybox\nRUN echo about-to-fail && exit 3\n",
      );
      const bb = await busyboxArgs();
      const ours = await build(d, runBuildctl, [...dockerfileArgs(ctx), ...bb]);
      const theirs = await build(d, runUpstream, [...dockerfileArgs(ctx), ...bb]);
      assert.equal(ours.code, 1);
      assert.equal(theirs.code, 1);
      const tail = (s: string) => s.slice(s.indexOf("Dockerfile:2"));
      assert.equal(tail(ours.stderr), tail(theirs.stderr));
      assert.match(ours.stderr, /about-to-fail/);
      assert.match(
        ours.stderr,
        /Dockerfile:2\n-+\n {3}1 \| {5}FROM busybox\n {3}2 \| >>> RUN echo about-to-fail && exit 3\n/,
      );
      await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM busybox\nRUNN nope\n");
      const syntax = await build(d, runBuildctl, [...dockerfileArgs(ctx), ...bb]);
      assert.equal(syntax.code, 1);
      assert.match(syntax.stderr, /Dockerfile:2\n/);
      assert.match(
        syntax.stderr,
        /error: failed to solve: dockerfile parse error on line 2: unknown instruction: RUNN/,
      );
    } finally {
      await Deno.remove(ctx, { recursive: true });
    }
  },
);

Deno.test("build bad input: clear messages naming the flag or file, exit 2, nothing written", async (t) => {
  const ctx = await Deno.makeTempDir({ prefix: "bctx-" });
  await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM scratch\n");
  const addr = ["--addr", "unix:///nonexistent/bk.sock"];
  const df = dockerfileArgs(ctx);
  const cases: { args: string[]; stdin?: Uint8Array; stderr: RegExp }[] = [
    {
      args: ["--frontend=dockerfile.v0", "--local", "context=/nonexistent/dir"],
      stderr: /invalid --local context=\/nonexistent\/dir: no such file or directory/,
    },
    {
      args: ["--frontend=dockerfile.v0", "--local", `context=${ctx}/Dockerfile`],
      stderr: /invalid --local context=.*: not a directory/,
    },
    {
      args: ["--frontend=dockerfile.v0", "--local", "novalue"],
      stderr: /invalid --local "novalue": expected key=value/,
    },
    {
      args: [...df, "--output", "dest=x"],
      stderr: /invalid --output "dest=x": --output requires type=<type>/,
    },
    {
      args: [...df, "--output", "type=zip,dest=x"],
      stderr: /invalid --output "type=zip,dest=x": unknown exporter type "zip"/,
    },
    { args: [...df, "--opt", "target"], stderr: /invalid --opt "target": expected key=value/ },
    {
      args: [...df, "--secret", "id=a,foo=b"],
      stderr: /invalid --secret "id=a,foo=b": unexpected key "foo"/,
    },
    {
      args: [...df, "--secret", "id=a,src=/nonexistent/secret"],
      stderr: /invalid --secret id=a: cannot read "\/nonexistent\/secret"/,
    },
    {
      args: [...df, "--export-cache", "type=local"],
      stderr: /invalid --export-cache "type=local": dest=DIR is required/,
    },
    {
      args: [...df, "--import-cache", "type=nope,src=x"],
      stderr: /invalid --import-cache "type=nope,src=x": unknown cache type "nope"/,
    },
    {
      args: [...df, "--allow", "network.everything"],
      stderr: /invalid --allow "network.everything"/,
    },
    { args: [...df, "--progress", "fancy"], stderr: /invalid --progress "fancy"/ },
    { args: [...df, "--progress", "tty"], stderr: /invalid --progress "tty"/ },
    {
      args: ["--local", `context=${ctx}`],
      stdin: new Uint8Array([0xff, 0xff, 0xff, 0x01]),
      stderr: /cannot read the LLB definition on stdin/,
    },
    {
      args: ["--local", `context=${ctx}`],
      stdin: new Uint8Array(),
      stderr: /empty definition sent to build/,
    },
  ];
  try {
    for (const c of cases) {
      await t.step(`buildctl build ${c.args.join(" ")}`, async () => {
        const r = await runBuildctl(
          [...addr, "build", ...c.args],
          c.stdin ? { stdin: c.stdin } : {},
        );
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, c.stderr);
        assert.equal(r.stdout, "");
      });
    }
    const names: string[] = [];
    for await (const e of Deno.readDir(ctx)) names.push(e.name);
    assert.deepEqual(
      names,
      ["Dockerfile"],
      "nothing was written",
    );
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

/** Starts our buildctl in the background (same command line as runBuildctl). */
function spawnBuildctl(args: string[]): Deno.ChildProcess {
  const [cmd, ...pre] = buildctlCommand();
  return new Deno.Command(cmd!, {
    args: [...pre, ...args],
    env: { PATH: TEST_PATH, HOME: Deno.env.get("HOME") ?? "/root", NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function waitFor(pred: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts a build whose only step sleeps `seconds` (a value no other test uses,
 * so the step's process can be found); resolves once the step runs.
 */
async function startSleepingBuild(d: TestDaemon, ctx: string, seconds: number) {
  await Deno.writeTextFile(join(ctx, "Dockerfile"), `FROM busybox\nRUN sleep ${seconds}\n`);
  const child = spawnBuildctl([
    "--addr",
    d.addr,
    "build",
    "--progress=plain",
    ...dockerfileArgs(ctx),
    ...(await busyboxArgs()),
  ]);
  const stderr: string[] = [];
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr.push(chunk);
    }
  })();
  await waitFor(() => Promise.resolve(stderr.join("").includes(`RUN sleep ${seconds}`)), 30_000);
  return { child, stderr, reading };
}

daemonTest("Ctrl-C cancels the build on the daemon and exits 130", async (_t, d) => {
  const ctx = await Deno.makeTempDir({ prefix: "bctx-" });
  try {
    const { child, stderr, reading } = await startSleepingBuild(d, ctx, 613);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    child.kill("SIGINT");
    const status = await child.status;
    await reading;
    await child.stdout.cancel();
    assert.equal(status.code, 130, stderr.join(""));
    assert.ok(Date.now() - t0 < 6000, "exited within seconds");
    assert.match(stderr.join(""), /error: build canceled/);
    // The daemon is left with no running build.
    await waitFor(async () => {
      const ps = await new Deno.Command("pgrep", { args: ["-f", "sleep 613"], stdout: "piped" })
        .output();
      return ps.code !== 0;
    }, 15_000);
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});

Deno.test("a daemon that dies mid-build gives a clear error within seconds", async () => {
  const d = await startDaemon();
  const ctx = await Deno.makeTempDir({ prefix: "bctx-" });
  try {
    const { child, stderr, reading } = await startSleepingBuild(d, ctx, 617);
    const t0 = Date.now();
    Deno.kill(d.pid, "SIGKILL");
    const status = await child.status;
    await reading;
    await child.stdout.cancel();
    assert.equal(status.code, 69, stderr.join(""));
    assert.ok(Date.now() - t0 < 10_000, "failed within seconds, no hang");
    assert.match(
      stderr.join(""),
      /error: lost the connection to buildkitd at unix:\/\/.* during the build/,
    );
  } finally {
    await d.stop();
    await new Deno.Command("pkill", { args: ["-f", "sleep 617"] }).output();
    await Deno.remove(ctx, { recursive: true });
  }
});

daemonTest(
  "an unreadable file in the context fails the build and names the file",
  async (_t, d) => {
    // Run our buildctl as an unprivileged user (root reads everything).
    const ctx = await Deno.makeTempDir({ prefix: "bctx-" });
    const denoDir = await Deno.makeTempDir({ prefix: "denodir-" });
    try {
      await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY . /\n");
      await Deno.writeTextFile(join(ctx, "ok.txt"), "fine\n");
      await Deno.writeTextFile(join(ctx, "locked.txt"), "root only\n");
      await Deno.chmod(join(ctx, "locked.txt"), 0o000);
      await Deno.chown(ctx, 65534, 65534);
      await Deno.chown(join(ctx, "Dockerfile"), 65534, 65534);
      await Deno.chown(join(ctx, "ok.txt"), 65534, 65534);
      await Deno.chown(denoDir, 65534, 65534);
      await Deno.chmod(d.dir, 0o711);
      await Deno.chmod(d.socket, 0o666);
      const [deno, ...pre] = buildctlCommand();
      const r = await new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          deno!,
          ...pre,
          "--addr",
          d.addr,
          "build",
          "--progress=plain",
          ...dockerfileArgs(ctx),
        ],
        env: { PATH: TEST_PATH, HOME: denoDir, DENO_DIR: denoDir, NO_COLOR: "1" },
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(r.stderr);
      assert.equal(r.code, 1, stderr);
      assert.match(stderr, /locked\.txt/);
      assert.match(stderr, /[Pp]ermission denied/);
    } finally {
      await Deno.remove(ctx, { recursive: true });
      await Deno.remove(denoDir, { recursive: true });
    }
  },
);

daemonTest("cacheonly exporter, --no-cache with a frontend, and rawjson progress", async (t, d) => {
  const ctx = await Deno.makeTempDir({ prefix: "bctx-" });
  try {
    await Deno.writeTextFile(join(ctx, "Dockerfile"), "FROM scratch\nCOPY Dockerfile /a\n");
    await t.step("type=cacheonly builds and exports nothing", async () => {
      const r = await build(d, runBuildctl, [...dockerfileArgs(ctx), "--output", "type=cacheonly"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "");
    });
    await t.step("--no-cache re-runs a step that would be CACHED", async () => {
      const again = await build(d, runBuildctl, dockerfileArgs(ctx));
      assert.match(again.stderr, /CACHED/);
      const nc = await build(d, runBuildctl, [...dockerfileArgs(ctx), "--no-cache"]);
      assert.equal(nc.code, 0, nc.stderr);
      assert.doesNotMatch(nc.stderr, /CACHED/);
    });
    await t.step(
      "--progress=rawjson prints one JSON status per line, like upstream's keys",
      async () => {
        const r = await runBuildctl([
          "--addr",
          d.addr,
          "build",
          "--progress=rawjson",
          ...dockerfileArgs(ctx),
        ]);
        assert.equal(r.code, 0, r.stderr);
        const lines = r.stderr.trim().split("\n").map((l) => JSON.parse(l));
        assert.ok(lines.length > 1);
        const vertexes = lines.flatMap((l) => l.vertexes ?? []).filter((v) =>
          v.name?.includes("COPY Dockerfile /a")
        );
        assert.ok(vertexes.length, "a COPY vertex was reported");
        assert.match(vertexes[0].digest, /^sha256:/);
        const completed = vertexes.find((v) => v.completed);
        assert.match(completed?.completed ?? "", /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
      },
    );
    await t.step("--trace FILE appends the statuses as JSON lines, as upstream", async () => {
      const trace = (who: string) => join(ctx, `${who}.trace`);
      const names = async (who: string) => {
        const lines = (await Deno.readTextFile(trace(who))).trim().split("\n");
        return new Set(
          lines.flatMap((l) => JSON.parse(l).vertexes ?? []).map((v: { name: string }) => v.name),
        );
      };
      for (const [who, runner] of [["ours", runBuildctl], ["theirs", runUpstream]] as const) {
        const r = await build(d, runner, [...dockerfileArgs(ctx), "--trace", trace(who)]);
        assert.equal(r.code, 0, r.stderr);
      }
      const ours = await names("ours");
      assert.ok([...ours].some((n) => n.includes("COPY Dockerfile /a")), [...ours].join(", "));
      assert.deepEqual(ours, await names("theirs"));
    });
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
});
