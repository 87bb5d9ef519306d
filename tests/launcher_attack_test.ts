/**
 * The attack cases of security.md §4, adapted to the sudo design (no setuid
 * shim: sudo is the setuid component, the launcher is root-owned and
 * non-setuid), run as real unprivileged users against a real install and
 * real buildkitd. Every case ends with a sweep for root-owned files created
 * outside the places the launcher may write.
 *
 * Numbers in the step names are the rows of security.md §4. Not automated:
 * 23 (FUSE over the root dir: no FUSE file system here) and 25 (GC limits
 * on a small loop-mounted home: needs a loop device and minutes).
 */
import assert from "node:assert/strict";
import {
  asUser,
  auditLines,
  buildContext,
  buildctlAs,
  cast,
  clientAs,
  daemonsOf,
  gateOf,
  grant,
  type Install,
  killAll,
  launcherSkipReason,
  marker,
  newInstall,
  removeInstall,
  type Result,
  sh,
  shAs,
  sudoStartAs,
  supervisorsOf,
  sweep,
  upstreamAs,
  waitFor,
} from "./_util/launcher_fixture.ts";

const skip = launcherSkipReason();
if (skip) console.warn(`launcher_attack_test: skipped: ${skip}`);

const ROOT_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root" };

function json(r: Result): Record<string, unknown> {
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}");
  } catch {
    return {};
  }
}

async function procStatus(pid: number): Promise<string> {
  return (await sh("/usr/bin/cat", [`/proc/${pid}/status`])).stdout;
}

Deno.test({
  name: "launcher attack cases (security.md §4, sudo design)",
  ignore: skip !== undefined,
  async fn(t) {
    const c = await cast();
    const inst = newInstall();
    const root = `${c.alice.home}/bk-${inst.tag}`;
    const extraRoots: string[] = [];
    const ctx = await buildContext("FROM busybox\nRUN echo ok > /ok\n");
    const setuidCtx = await buildContext(
      "FROM busybox\nRUN cp /bin/busybox /x && chmod 4755 /x && ls -l /x\n",
    );
    const scratch = await Deno.makeTempDir({ prefix: "lnch-scratch-" });
    await Deno.chmod(scratch, 0o755);
    let ok = false;

    /** Runs one case between a marker and a damage sweep. */
    const attack = (name: string, fn: () => Promise<void>) =>
      t.step(name, async () => {
        const m = await marker();
        try {
          await fn();
          const damage = await sweep(m, [inst]);
          assert.deepEqual(damage, [], `root-owned files appeared: ${damage.join(", ")}`);
        } finally {
          await Deno.remove(m).catch(() => {});
        }
      });
    const configText = () => Deno.readTextFile(inst.config);
    const stopAll = async () => {
      await killAll(inst);
      await waitFor(async () => (await daemonsOf(inst)).length === 0, 15_000, "no daemon");
    };
    const aliceStarts = async (): Promise<Result> =>
      await sudoStartAs(c.alice, inst, { timeoutMs: 60_000 });
    const daemonEnv = async (pid: number) =>
      (await sh("/usr/bin/cat", [`/proc/${pid}/environ`])).stdout.split("\0").filter((x) => x);

    try {
      const g = await grant(inst, [
        `--root=${root}`,
        "--allow-user=bkt-alice",
        "--entitlements=network.host",
      ]);
      assert.equal(g.code, 0, g.stderr + g.stdout);
      const eg = await grant(inst, [`--root=${c.eve.home}/bk-${inst.tag}`, "--allow-user=bkt-eve"]);
      assert.equal(eg.code, 0, eg.stderr + eg.stdout);
      extraRoots.push(`${c.eve.home}/bk-${inst.tag}`);
      const goodConfig = await configText();
      const aliceGate = `unix://${gateOf(inst, c.alice)}`;

      await attack(
        "1: bob runs the launcher (sudo, directly, and through a too-broad sudoers rule)",
        async () => {
          const viaSudo = await sudoStartAs(c.bob, inst);
          assert.equal(viaSudo.code, 1);
          assert.match(viaSudo.stderr, /a password is required/);
          const direct = await asUser(c.bob, inst.wrapper, ["start"]);
          assert.equal(direct.code, 77);
          assert.equal(json(direct).code, "NOT_AUTHORISED");
          // An admin mistake: a rule letting bob run the launcher. The launcher itself still refuses.
          const extra = `/etc/sudoers.d/${inst.tag}bob`;
          await Deno.writeTextFile(
            extra,
            `#${c.bob.uid} ALL=(root) NOPASSWD: ${inst.wrapper} start\n`,
            { mode: 0o440 },
          );
          try {
            const r = await sudoStartAs(c.bob, inst);
            assert.equal(r.code, 77, r.stderr);
            assert.match(r.stderr, new RegExp(`not authorised: uid ${c.bob.uid} has no grant`));
            assert.ok(
              auditLines(inst).some((a) =>
                a.event === "launcher" && a.uid === c.bob.uid && a.decision === "deny"
              ),
            );
          } finally {
            await Deno.remove(extra);
          }
          assert.equal((await supervisorsOf(inst)).length, 2, "nothing new started");
        },
      );

      await attack(
        "2: bob and dave (alice's primary group) connect to alice's socket",
        async () => {
          for (const u of [c.bob, c.dave]) {
            const r = await upstreamAs(u, [
              "--addr",
              aliceGate,
              "--timeout",
              "3",
              "debug",
              "workers",
            ]);
            assert.notEqual(r.code, 0);
          }
          const a = await upstreamAs(c.alice, ["--addr", aliceGate, "debug", "workers"]);
          assert.equal(a.code, 0, a.stderr);
          const denied = new Set(
            auditLines(inst).filter((x) => x.event === "connect" && x.decision === "deny").map((
              x,
            ) => x.uid),
          );
          assert.ok(denied.has(c.bob.uid) && denied.has(c.dave.uid));
        },
      );

      await attack(
        "3: alice (network.host only) asks for security.insecure; launcher flag injection",
        async () => {
          const b = await buildctlAs(c.alice, [
            "--addr",
            aliceGate,
            ...ctx.args,
            "--allow",
            "security.insecure",
          ]);
          assert.notEqual(b.code, 0);
          assert.match(b.stderr, /entitlement "security\.insecure" is not granted/);
          const [d] = (await daemonsOf(inst)).filter((x) => x.args.includes("network.host"));
          assert.ok(d);
          assert.equal(d.args.match(/--allow-insecure-entitlement/g)?.length, 1);
          const viaSudo = await asUser(c.alice, "/usr/bin/sudo", [
            "-n",
            inst.wrapper,
            "start",
            "--allow-insecure-entitlement",
            "security.insecure",
          ]);
          assert.equal(viaSudo.code, 1, "sudo allows exactly `start`");
          const asRoot = await sh(inst.wrapper, [
            "start",
            "--allow-insecure-entitlement",
            "security.insecure",
          ], {
            env: ROOT_ENV,
          });
          assert.equal(asRoot.code, 64);
        },
      );

      await attack(
        "4: --root, --config, --addr tcp, --debugaddr, --oci-worker-binary, BUILDKITD_DEBUGADDR",
        async () => {
          for (
            const extra of [
              ["--root", "/"],
              ["--config", "/tmp/x.toml"],
              ["--addr", "tcp://0.0.0.0:1234"],
              ["--debugaddr", "0.0.0.0:6060"],
              ["--oci-worker-binary", `${c.alice.home}/runc`],
            ]
          ) {
            const viaSudo = await asUser(c.alice, "/usr/bin/sudo", [
              "-n",
              inst.wrapper,
              "start",
              ...extra,
            ]);
            assert.equal(viaSudo.code, 1);
            const asRoot = await sh(inst.wrapper, ["start", ...extra], { env: ROOT_ENV });
            assert.equal(asRoot.code, 64, asRoot.stderr);
          }
          await stopAll();
          const r = await sudoStartAs(c.alice, inst, {
            env: { BUILDKITD_DEBUGADDR: "0.0.0.0:6060" },
          });
          assert.equal(r.code, 0, r.stderr);
          const [d] = await daemonsOf(inst);
          assert.ok(d);
          const env = await daemonEnv(d.pid);
          assert.deepEqual(env.map((e) => e.split("=")[0]).sort(), ["HOME", "LANG", "PATH"]);
          assert.doesNotMatch(d.args, /debugaddr|tcp:|\/tmp\//);
          const ss = await sh("/usr/bin/ss", ["-ltnp"], { env: ROOT_ENV });
          assert.doesNotMatch(ss.stdout, /buildkitd|:6060|:1234/);
        },
      );

      await attack(
        "5: insecure config (group/world-writable, foreign owner, g+w dir, symlink, FIFO, missing)",
        async () => {
          await stopAll();
          const alt = `${c.alice.home}/lnch-config.json`;
          const variants: [string, () => Promise<void>, RegExp][] = [
            ["0664 root:users", async () => {
              await sh("/bin/chown", ["root:users", inst.config]);
              await Deno.chmod(inst.config, 0o664);
            }, /is group-writable/],
            ["0666", async () => await Deno.chmod(inst.config, 0o666), /is world-writable/],
            [
              "owned by alice",
              async () => await Deno.chown(inst.config, c.alice.uid, c.alice.gid),
              /is owned by uid \d+, should be 0/,
            ],
            ["dir g+w", async () => await Deno.chmod(inst.configDir, 0o775), /is group-writable/],
            ["symlink to an alice file", async () => {
              await Deno.writeTextFile(alt, goodConfig);
              await Deno.chown(alt, c.alice.uid, c.alice.gid);
              await Deno.remove(inst.config);
              await Deno.symlink(alt, inst.config);
            }, /is a symbolic link/],
            ["FIFO", async () => {
              await Deno.remove(inst.config);
              await sh("/usr/bin/mkfifo", ["-m", "0644", inst.config]);
            }, /is a fifo, not a regular file/],
            ["missing", async () => await Deno.remove(inst.config), /does not exist/],
          ];
          for (const [name, setup, expected] of variants) {
            await setup();
            try {
              const r = await aliceStarts();
              assert.equal(r.code, 78, `${name}: ${r.stderr}`);
              assert.match(r.stderr, /insecure config: /, name);
              assert.match(r.stderr, expected, name);
              assert.ok(r.ms < 10_000, `${name} took ${r.ms} ms`);
              assert.equal((await supervisorsOf(inst)).length, 0, `${name}: nothing started`);
            } finally {
              await Deno.remove(inst.config).catch(() => {});
              await Deno.writeTextFile(inst.config, goodConfig, { mode: 0o644 });
              await Deno.chown(inst.config, 0, 0);
              await Deno.chmod(inst.config, 0o644);
              await Deno.chmod(inst.configDir, 0o755);
            }
          }
          await Deno.remove(alt).catch(() => {});
          assert.equal((await aliceStarts()).code, 0);
        },
      );

      await attack(
        "6: oversized, deep, duplicate-key, unknown-key, wrong-type, BOM and NUL configs",
        async () => {
          await stopAll();
          const good = JSON.parse(goodConfig);
          const variants: [string, string | Uint8Array][] = [
            ["10 MB", JSON.stringify({ ...good, pad: "x".repeat(10 << 20) })],
            ["deep", "[".repeat(100_000) + "]".repeat(100_000)],
            ["duplicate key", goodConfig.replace('"version": 1,', '"version": 1, "version": 1,')],
            ["unknown key", JSON.stringify({ ...good, extra: true })],
            ["wrong type", JSON.stringify({ ...good, grants: "all" })],
            ["BOM", "\ufeff" + goodConfig],
            ["NUL", goodConfig.replace("bkt-alice", "bkt-alice\u0000")],
            ["truncated", goodConfig.slice(0, goodConfig.length / 2)],
          ];
          for (const [name, body] of variants) {
            await Deno.writeFile(
              inst.config,
              typeof body === "string" ? new TextEncoder().encode(body) : body,
            );
            try {
              const r = await aliceStarts();
              assert.equal(r.code, 78, `${name}: ${r.stderr}`);
              assert.match(r.stderr, /insecure config|invalid config/, name);
              assert.ok(r.ms < 10_000, `${name} took ${r.ms} ms`);
            } finally {
              await Deno.writeTextFile(inst.config, goodConfig);
            }
          }
          assert.equal((await supervisorsOf(inst)).length, 0);
        },
      );

      await attack(
        '7: uid -1, 4294967295, "1000abc", "0x3e8", 1e3, a prefix of alice\'s uid',
        async () => {
          await stopAll();
          const good = JSON.parse(goodConfig);
          const withUid = (uid: unknown) =>
            JSON.stringify({
              ...good,
              grants: good.grants.map((x: { user: string }) =>
                x.user === "bkt-alice" ? { ...x, uid } : x
              ),
            })
              .replace('"uid":"RAW"', '"uid":1e3');
          for (const uid of [-1, 4294967295, "1000abc", "0x3e8", "RAW", `${c.alice.uid}`]) {
            await Deno.writeTextFile(inst.config, withUid(uid));
            const r = await aliceStarts();
            assert.equal(r.code, 78, `uid ${uid}: ${r.stderr}`);
          }
          // A uid that merely starts with alice's digits authorises nobody but its owner.
          await Deno.writeTextFile(inst.config, withUid(c.alice.uid * 10));
          const r = await aliceStarts();
          assert.equal(r.code, 77, r.stderr);
          assert.match(r.stderr, /has no grant/);
          await Deno.writeTextFile(inst.config, goodConfig);
        },
      );

      await attack(
        "8: insecurely installed launcher (alice-owned wrapper or deno, g+w sources or prefix)",
        async () => {
          await stopAll();
          const lib = `${inst.prefix}/lib/src/launcher/config.ts`;
          const variants: [string, () => Promise<void>, () => Promise<void>][] = [
            [
              "wrapper owned by alice",
              () => Deno.chown(inst.wrapper, c.alice.uid, c.alice.gid),
              () => Deno.chown(inst.wrapper, 0, 0),
            ],
            [
              "deno owned by alice",
              () => Deno.chown(`${inst.prefix}/bin/deno`, c.alice.uid, 0),
              () => Deno.chown(`${inst.prefix}/bin/deno`, 0, 0),
            ],
            ["source g+w", () => Deno.chmod(lib, 0o664), () => Deno.chmod(lib, 0o644)],
            [
              "prefix g+w",
              () => Deno.chmod(inst.prefix, 0o775),
              () => Deno.chmod(inst.prefix, 0o755),
            ],
            [
              "buildkitd o+w",
              () => Deno.chmod(`${inst.prefix}/bin/buildkitd`, 0o757),
              () => Deno.chmod(`${inst.prefix}/bin/buildkitd`, 0o755),
            ],
          ];
          for (const [name, breakIt, fix] of variants) {
            await breakIt();
            try {
              const r = await aliceStarts();
              assert.equal(r.code, 78, `${name}: ${r.stderr}`);
              assert.match(r.stderr, /not installed securely/, name);
            } finally {
              await fix();
            }
          }
          assert.equal((await supervisorsOf(inst)).length, 0);
          assert.equal((await aliceStarts()).code, 0);
        },
      );

      await attack("9: LD_PRELOAD / LD_LIBRARY_PATH / GCONV_PATH / LD_AUDIT canary", async () => {
        const cc = (await sh("/usr/bin/test", ["-x", "/usr/bin/cc"])).code === 0;
        const canaryDir = `${c.alice.home}/lnch-canary`;
        await shAs(c.alice, 'mkdir -p "$1"', [canaryDir]);
        if (cc) {
          const src = `${canaryDir}/canary.c`;
          await Deno.writeTextFile(
            src,
            "#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void c(void){" +
              'char p[64]; snprintf(p,64,"/tmp/lnch-canary.%d",(int)geteuid()); FILE*f=fopen(p,"w"); if(f)fclose(f);}\n',
          );
          const b = await sh("/usr/bin/cc", [
            "-shared",
            "-fPIC",
            "-o",
            `${canaryDir}/canary.so`,
            src,
          ], { env: ROOT_ENV });
          assert.equal(b.code, 0, b.stderr);
          await sh("/bin/chown", ["-R", `${c.alice.uid}:${c.alice.gid}`, canaryDir]);
        }
        await stopAll();
        const r = await sudoStartAs(c.alice, inst, {
          env: {
            LD_PRELOAD: `${canaryDir}/canary.so`,
            LD_LIBRARY_PATH: canaryDir,
            GCONV_PATH: canaryDir,
            LD_AUDIT: `${canaryDir}/canary.so`,
          },
        });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(!(await exists("/tmp/lnch-canary.0")), "the canary ran as root");
        const [d] = await daemonsOf(inst);
        assert.deepEqual((await daemonEnv(d!.pid)).map((e) => e.split("=")[0]).sort(), [
          "HOME",
          "LANG",
          "PATH",
        ]);
        await Deno.remove("/tmp/lnch-canary.0").catch(() => {});
        await sh("/bin/sh", ["-c", "rm -f /tmp/lnch-canary.*"]);
        await Deno.remove(canaryDir, { recursive: true });
      });

      const denoEnvAttack = {
        SSLKEYLOGFILE: "/etc/lnch-keylog",
        DENO_SNAPSHOT_IMPORT_GRAPH: "/etc/lnch-graph",
        DENO_LOG: "trace",
        DENO_TRACE_PERMISSIONS: "1",
      };

      await attack(
        "10: umask 000 + SSLKEYLOGFILE, DENO_SNAPSHOT_IMPORT_GRAPH, DENO_LOG, DENO_TRACE_PERMISSIONS",
        async () => {
          await stopAll();
          const viaSudo = await shAs(c.alice, `umask 000; exec /usr/bin/sudo -n "$1" start`, [
            inst.wrapper,
          ], {
            env: denoEnvAttack,
          });
          assert.equal(viaSudo.code, 0, viaSudo.stderr);
          // Even root calling the wrapper with them set: the wrapper's env -i drops them.
          const asRoot = await sh("/bin/sh", [
            "-c",
            `umask 000; exec "$1" start --uid ${c.alice.uid}`,
            "sh",
            inst.wrapper,
          ], {
            env: { ...ROOT_ENV, ...denoEnvAttack },
          });
          assert.equal(asRoot.code, 0, asRoot.stderr);
          for (const f of ["/etc/lnch-keylog", "/etc/lnch-graph"]) assert.ok(!(await exists(f)), f);
          assert.equal(viaSudo.stderr, "", "no extra output");
        },
      );

      await attack("11: DENO_INTERNAL_CHILD_ENTRYPOINT + NODE_CHANNEL_FD", async () => {
        const evil = `${c.alice.home}/lnch-evil.js`;
        await Deno.writeTextFile(evil, 'await Deno.writeTextFile("/etc/lnch-evil", "pwned");\n');
        await Deno.chown(evil, c.alice.uid, c.alice.gid);
        await stopAll();
        for (const entry of [evil, "lnch-evil.js"]) {
          const r = await shAs(c.alice, `exec 3<>/dev/null; exec /usr/bin/sudo -n "$1" start`, [
            inst.wrapper,
          ], {
            env: { DENO_INTERNAL_CHILD_ENTRYPOINT: entry, NODE_CHANNEL_FD: "3" },
          });
          assert.equal(r.code, 0, r.stderr);
          const asRoot = await sh("/bin/sh", [
            "-c",
            `exec 3<>/dev/null; exec "$1" start --uid ${c.alice.uid}`,
            "sh",
            inst.wrapper,
          ], {
            env: { ...ROOT_ENV, DENO_INTERNAL_CHILD_ENTRYPOINT: evil, NODE_CHANNEL_FD: "3" },
            cwd: c.alice.home,
          });
          assert.equal(asRoot.code, 0, asRoot.stderr);
        }
        assert.ok(!(await exists("/etc/lnch-evil")));
        await Deno.remove(evil);
      });

      await attack(
        "12: DENO_SERVE_ADDRESS, proxies, DENO_CERT=/etc/shadow, NODE_OPTIONS, XDG/HOME/TMPDIR, tokio, backtraces",
        async () => {
          await stopAll();
          const env = {
            DENO_SERVE_ADDRESS: "tcp:0.0.0.0:9999",
            HTTPS_PROXY: "http://127.0.0.1:1",
            DENO_CERT: "/etc/shadow",
            NODE_EXTRA_CA_CERTS: "/etc/shadow",
            NODE_OPTIONS: "--inspect",
            XDG_DATA_HOME: "/etc",
            HOME: "/root",
            TMPDIR: "/etc",
            DENO_TOKIO_EVENT_INTERVAL: "abc",
            RUST_BACKTRACE: "full",
          };
          const r = await sudoStartAs(c.alice, inst, { env });
          assert.equal(r.code, 0, r.stderr);
          const asRoot = await sh(inst.wrapper, ["start", "--uid", String(c.alice.uid)], {
            env: { ...ROOT_ENV, ...env },
          });
          assert.equal(asRoot.code, 0, asRoot.stderr);
          const ss = await sh("/usr/bin/ss", ["-ltn"], { env: ROOT_ENV });
          assert.doesNotMatch(ss.stdout, /:9999\b|:9229\b/);
          assert.doesNotMatch(
            r.stdout + r.stderr + asRoot.stdout + asRoot.stderr,
            /panicked|root:[!*$]/,
          );
        },
      );

      await attack("13: PATH with a fake runc and buildkitd", async () => {
        const bin = `${c.alice.home}/lnch-bin`;
        await shAs(
          c.alice,
          'mkdir -p "$1"; for t in runc buildkitd; do printf "#!/bin/sh\\ntouch /tmp/lnch-fake-$t\\nexit 1\\n" > "$1/$t"; chmod 755 "$1/$t"; done',
          [bin],
        );
        await stopAll();
        const r = await sudoStartAs(c.alice, inst, { env: { PATH: `${bin}:/usr/bin:/bin` } });
        assert.equal(r.code, 0, r.stderr);
        const b = await buildctlAs(c.alice, ["--addr", aliceGate, ...ctx.args, "--no-cache"]);
        assert.equal(b.code, 0, b.stderr);
        const [d] = await daemonsOf(inst);
        const path = (await daemonEnv(d!.pid)).find((e) => e.startsWith("PATH="));
        assert.equal(path, `PATH=${inst.prefix}/bin:/usr/sbin:/usr/bin:/sbin:/bin`);
        assert.match(d!.args, new RegExp(`--oci-worker-binary ${inst.prefix}/bin/runc`));
        for (const t of ["runc", "buildkitd"]) assert.ok(!(await exists(`/tmp/lnch-fake-${t}`)), t);
        await Deno.remove(bin, { recursive: true });
      });

      await attack(
        "14: argc 0, argv[0]=/etc/shadow, 64 KiB argument, non-UTF-8, 10000 arguments",
        async () => {
          const py = [
            "import ctypes,os,sys",
            "libc=ctypes.CDLL(None)",
            "pid=os.fork()",
            "if pid==0:",
            " libc.execve(sys.argv[1].encode(),(ctypes.c_char_p*1)(None),(ctypes.c_char_p*1)(None)); os._exit(99)",
            "print(os.waitpid(pid,0)[1]>>8)",
          ].join("\n");
          const argc0 = await sh("/usr/bin/python3", ["-c", py, inst.wrapper], { env: ROOT_ENV });
          assert.equal(argc0.stdout.trim().split("\n").pop(), "64", argc0.stderr);
          const shadow = await sh("/bin/bash", [
            "-c",
            'exec -a /etc/shadow "$1" start',
            "bash",
            inst.wrapper,
          ], { env: ROOT_ENV });
          assert.equal(shadow.code, 77, "root without --uid gets nothing");
          const big = await sh(inst.wrapper, ["start", "x".repeat(65536)], { env: ROOT_ENV });
          assert.equal(big.code, 64);
          const nonUtf8 = await sh("/bin/bash", [
            "-c",
            `exec "$1" $'\\xff\\xfe'`,
            "bash",
            inst.wrapper,
          ], { env: ROOT_ENV });
          assert.equal(nonUtf8.code, 64);
          assert.doesNotMatch(nonUtf8.stderr, /panicked|RUST_BACKTRACE/);
          const many = await sh("/bin/bash", [
            "-c",
            'exec "$1" start $(seq 10000)',
            "bash",
            inst.wrapper,
          ], { env: ROOT_ENV });
          assert.equal(many.code, 64);
          const viaSudo = await asUser(c.alice, "/usr/bin/sudo", [
            "-n",
            inst.wrapper,
            "start",
            "x".repeat(65536),
          ]);
          assert.notEqual(viaSudo.code, 0);
        },
      );

      await attack("15: closed stdio, stdout to an alice file, inherited fds 3-40", async () => {
        await stopAll();
        const closed = await shAs(c.alice, 'exec /usr/bin/sudo -n "$1" start 0<&- 1>&- 2>&-', [
          inst.wrapper,
        ]);
        assert.equal(closed.code, 0);
        await waitFor(async () => (await daemonsOf(inst)).length === 1, 10_000, "a daemon");
        await stopAll();
        const out = `${c.alice.home}/lnch-out.txt`;
        const fdMark = `${c.alice.home}/lnch-fd-mark`;
        const r = await asUser(c.alice, "/bin/bash", [
          "-c",
          'touch "$3"; i=3; while [ $i -le 40 ]; do eval "exec $i<\\"\\$3\\""; i=$((i+1)); done; ' +
          'exec /usr/bin/sudo -n "$1" start > "$2"',
          "bash",
          inst.wrapper,
          out,
          fdMark,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(await Deno.readTextFile(out), /"ok":true/);
        for (const p of [...await supervisorsOf(inst), ...await daemonsOf(inst)]) {
          const fds = await sh("/bin/sh", [
            "-c",
            `ls -l /proc/${p.pid}/fd | grep -c -e lnch-fd-mark -e lnch-out || true`,
          ]);
          assert.equal(fds.stdout.trim(), "0", `process ${p.pid} holds an inherited fd`);
          const fd0 = await sh("/usr/bin/readlink", [`/proc/${p.pid}/fd/0`]);
          assert.equal(fd0.stdout.trim(), "/dev/null");
        }
        await Deno.remove(out);
        await Deno.remove(fdMark);
      });

      await attack(
        "16: umask 000 and 777: fixed modes of state dir, sockets and logs",
        async () => {
          for (const mask of ["000", "777"]) {
            await stopAll();
            const r = await shAs(c.alice, `umask ${mask}; exec /usr/bin/sudo -n "$1" start`, [
              inst.wrapper,
            ]);
            assert.equal(r.code, 0, r.stderr);
            const mode = async (p: string) => (await Deno.lstat(p)).mode! & 0o7777;
            assert.equal(await mode(`${root}/.buildkit-root`), 0o700);
            assert.equal(await mode(`${inst.runDir}/users/${c.alice.uid}`), 0o755);
            assert.equal(await mode(gateOf(inst, c.alice)), 0o666);
            assert.equal(await mode(`${inst.runDir}/d`), 0o700);
            assert.equal(await mode(inst.logDir), 0o700);
            for (const f of (await Array.fromAsync(Deno.readDir(inst.logDir)))) {
              assert.equal(await mode(`${inst.logDir}/${f.name}`), 0o600, f.name);
            }
            const [s] = await supervisorsOf(inst);
            assert.match(await procStatus(s!.pid), /^Umask:\s+0077$/m);
          }
        },
      );

      await attack(
        "17: ulimit -f 1, -n 8, -u 1, -v 200000, -c unlimited (soft), and a lowered hard -n",
        async () => {
          const outcomes: string[] = [];
          for (const lim of ["-S -f 1", "-S -n 8", "-S -u 1", "-S -v 200000", "-c unlimited"]) {
            await stopAll();
            const r = await asUser(c.alice, "/bin/bash", [
              "-c",
              `ulimit ${lim} && exec /usr/bin/sudo -n "$1" start`,
              "bash",
              inst.wrapper,
            ]);
            if (r.code !== 0) {
              // Refused before anything happened (e.g. sudo itself cannot work with 8 fds).
              assert.equal((await supervisorsOf(inst)).length, 0, `${lim}: ${r.stderr}`);
              outcomes.push(`${lim}: refused (${r.stderr.trim().split("\n")[0]})`);
              continue;
            }
            outcomes.push(`${lim}: works, limits reset`);
            const [s] = await supervisorsOf(inst);
            const limits = (await sh("/usr/bin/cat", [`/proc/${s!.pid}/limits`])).stdout;
            assert.match(limits, /^Max core file size\s+0\s+0\s/m, lim);
            assert.match(limits, /^Max file size\s+unlimited\s+unlimited/m, lim);
            assert.doesNotMatch(limits, /^Max open files\s+8\s/m, lim);
            assert.doesNotMatch(limits, /^Max address space\s+204800000\s/m, lim);
          }
          console.log(`  (17: ${outcomes.join("; ")})`);
          JSON.parse(await configText()); // the config is intact
          await stopAll();
          const hard = await asUser(c.alice, "/bin/bash", [
            "-c",
            `ulimit -H -n 12 && exec /usr/bin/sudo -n "$1" start`,
            "bash",
            inst.wrapper,
          ]);
          // Either it works, or it fails before doing anything (the runtime cannot start with 12 fds).
          if (hard.code !== 0) {
            assert.equal((await supervisorsOf(inst)).length, 0);
          }
          assert.equal(await configText(), goodConfig);
        },
      );

      await attack("18: caller ignores SIGTERM/SIGCHLD and blocks signals", async () => {
        await stopAll();
        const r = await shAs(
          c.alice,
          `trap '' TERM CHLD HUP INT; exec /usr/bin/sudo -n "$1" start`,
          [inst.wrapper],
        );
        assert.equal(r.code, 0, r.stderr);
        const [d] = await daemonsOf(inst);
        assert.match(await procStatus(d!.pid), /^SigBlk:\s+0+$/m);
        const st = await clientAs(c.alice, inst, "stop");
        assert.equal(st.json.result, true, st.stdout + st.stderr);
        await waitFor(
          async () => (await daemonsOf(inst)).length === 0,
          15_000,
          "the daemon to stop",
        );
      });

      await attack("19: no_new_privs", async () => {
        const r = await asUser(c.alice, "/usr/bin/setpriv", [
          "--no-new-privs",
          "/usr/bin/sudo",
          "-n",
          inst.wrapper,
          "start",
        ]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /no new privileges|effective uid is not 0/);
        assert.equal((await supervisorsOf(inst)).length, 0);
      });

      await attack(
        "20: root dir as a symlink, under a symlink, owned by bob, under sticky /var/tmp",
        async () => {
          const base = `${c.alice.home}/lnch20`;
          await shAs(c.alice, 'mkdir -p "$1/real" && ln -s /etc "$1/link" && ln -s /etc "$1/a"', [
            base,
          ]);
          const bobDir = `${c.bob.home}/lnch20`;
          await shAs(c.bob, 'mkdir -p "$1" && chmod 777 "$1"', [bobDir]);
          const varTmp = `/var/tmp/lnch20-${inst.tag}`;
          await shAs(c.alice, 'mkdir -p "$1"', [varTmp]);
          const refusals: [string, RegExp][] = [
            [`${base}/link`, /is a symbolic link/],
            [`${base}/a/bk`, /is a symbolic link/],
            [bobDir, /owned by uid|world-writable|cannot write/],
            [varTmp, /world-writable \(sticky\)/],
          ];
          for (const [dir, why] of refusals) {
            const r = await grant(inst, [`--root=${dir}`, "--allow-user=bkt-alice"]);
            assert.notEqual(r.code, 0, dir);
            assert.match(r.stderr, why, `${dir}: ${r.stderr}`);
          }
          assert.equal(await configText(), goodConfig, "refused grants change nothing");
          // At start time: granted dir swapped for a symlink to /etc afterwards.
          await stopAll();
          await shAs(c.alice, 'mv "$1" "$1.real" && ln -s /etc "$1"', [root]);
          try {
            const r = await aliceStarts();
            assert.equal(r.code, 69, r.stderr);
            assert.match(r.stderr, /is a symbolic link/);
            assert.ok(!(await exists("/etc/.buildkit-root")));
          } finally {
            await shAs(c.alice, 'rm "$1" && mv "$1.real" "$1"', [root]);
          }
          await Deno.remove(base, { recursive: true });
          await Deno.remove(bobDir, { recursive: true });
          await Deno.remove(varTmp, { recursive: true });
        },
      );

      await attack(
        "21: planted .buildkit-root: alice's dir, symlink to /etc, FIFO, hard link",
        async () => {
          await stopAll();
          const planted = `${c.alice.home}/lnch21`;
          extraRoots.push(planted);
          const gr = await grant(inst, [
            `--root=${planted}`,
            "--allow-user=bkt-alice",
            "--entitlements=network.host",
          ]);
          assert.equal(gr.code, 0, gr.stderr);
          await stopAll();
          const state = `${planted}/.buildkit-root`;
          const plants: [string, string, RegExp][] = [
            ["alice's dir", 'mkdir -m 700 "$1"', /owned by uid \d+, not root/],
            ["symlink to /etc", 'ln -s /etc "$1"', /is a symbolic link/],
            ["FIFO", 'mkfifo "$1"', /is a fifo, not a directory/],
            [
              "hard link to her own file",
              'echo x > "$1.f" && ln "$1.f" "$1"',
              /is a file, not a directory/,
            ],
          ];
          for (const [name, plant, why] of plants) {
            await Deno.remove(state, { recursive: true }).catch(() => {});
            await shAs(c.alice, plant, [state]);
            const before = await Deno.lstat(state);
            const r = await aliceStarts();
            assert.equal(r.code, 69, `${name}: ${r.stderr}`);
            assert.match(r.stderr, why, name);
            const after = await Deno.lstat(state);
            assert.deepEqual(
              [after.uid, after.gid, after.mode, after.ino],
              [before.uid, before.gid, before.mode, before.ino],
              `${name}: the planted object was changed`,
            );
            await Deno.remove(state).catch(() => {});
            await Deno.remove(`${state}.f`).catch(() => {});
          }
          // A hard link to a root file: the kernel refuses it (fs.protected_hardlinks=1) before we could.
          const hl = await shAs(c.alice, 'ln /etc/hostname "$1"', [state]);
          const protectedLinks = (await sh("/usr/sbin/sysctl", ["-n", "fs.protected_hardlinks"]))
            .stdout.trim();
          if (protectedLinks === "1") assert.notEqual(hl.code, 0);
          else {
            const r = await aliceStarts();
            assert.equal(r.code, 69);
          }
          await Deno.remove(state).catch(() => {});
          await Deno.writeTextFile(inst.config, goodConfig);
        },
      );

      await attack(
        "22: alice swaps the root dir and a symlink to /etc (RENAME_EXCHANGE) during start/stop cycles",
        async () => {
          await stopAll();
          const swapper = [
            "import ctypes,os,sys,time",
            "libc=ctypes.CDLL(None,use_errno=True)",
            "d=sys.argv[1].encode(); l=d+b'.swap'",
            "os.symlink('/etc', l)",
            "end=time.time()+float(sys.argv[2])",
            "while time.time()<end:",
            " libc.renameat2(-100, d, -100, l, 2)  # RENAME_EXCHANGE",
            "if os.path.islink(d): libc.renameat2(-100, d, -100, l, 2)",
            "os.unlink(l)",
          ].join("\n");
          const swapping = asUser(c.alice, "/usr/bin/python3", ["-c", swapper, root, "12"]);
          let started = 0;
          let refused = 0;
          const deadline = Date.now() + 11_000;
          while (Date.now() < deadline) {
            const r = await aliceStarts();
            if (r.code === 0) {
              started++;
              await killAll(inst);
            } else {
              refused++;
              assert.equal(r.code, 69, r.stderr);
            }
          }
          const s = await swapping;
          assert.equal(s.code, 0, s.stderr);
          assert.ok((await Deno.lstat(root)).isDirectory, "the real directory is back");
          assert.ok(!(await exists("/etc/.buildkit-root")), "/etc was never used");
          assert.ok(started + refused > 3, `only ${started + refused} cycles`);
          console.log(`  (22: ${started} starts used the real directory, ${refused} were refused)`);
        },
      );

      await attack(
        "24: a setuid binary built in a snapshot is unreachable; the daemon's root is nosuid,nodev",
        async () => {
          await stopAll();
          assert.equal((await aliceStarts()).code, 0);
          const b = await buildctlAs(c.alice, ["--addr", aliceGate, ...setuidCtx.args]);
          assert.equal(b.code, 0, b.stderr);
          const peek = await shAs(c.alice, 'ls "$1/.buildkit-root"; find "$1" -perm -4000', [root]);
          assert.match(peek.stderr, /Permission denied/);
          assert.doesNotMatch(peek.stdout, /\/x$/m);
          const [d] = await daemonsOf(inst);
          const mi = (await sh("/usr/bin/cat", [`/proc/${d!.pid}/mountinfo`])).stdout;
          const line = mi.split("\n").find((l) =>
            l.split(" ")[4] === `${inst.runDir}/d/${/d\/([0-9a-f]{16})\//.exec(d!.args)![1]}/root`
          );
          assert.ok(line, "the daemon's root is a mount in its namespace");
          assert.match(line, /\bnosuid\b/);
          assert.match(line, /\bnodev\b/);
          const initMi = await sh("/usr/bin/cat", ["/proc/self/mountinfo"]);
          assert.ok(
            !initMi.stdout.includes(`${inst.runDir}/d/`),
            "no bind mount left in the initial namespace",
          );
        },
      );

      await attack("26: stale socket, regular file and symlink at the gate path", async () => {
        await stopAll();
        const gate = gateOf(inst, c.alice);
        await Deno.remove(gate).catch(() => {});
        const stale = await sh("/usr/bin/python3", [
          "-c",
          "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])",
          gate,
        ]);
        assert.equal(stale.code, 0, stale.stderr);
        assert.equal((await aliceStarts()).code, 0, "a stale socket is replaced");
        await stopAll();
        for (
          const [name, plant] of [
            ["regular file", async () => await Deno.writeTextFile(gate, "x")],
            [
              "symlink to /etc/passwd",
              async () => await Deno.symlink("/etc/passwd", gate),
            ],
          ] as const
        ) {
          await Deno.remove(gate).catch(() => {});
          const passwd = await Deno.readTextFile("/etc/passwd");
          await plant();
          const r = await aliceStarts();
          assert.equal(r.code, 69, `${name}: ${r.stderr}`);
          assert.equal(await Deno.readTextFile("/etc/passwd"), passwd);
          assert.ok(
            (await Deno.lstat(gate)).isFile || (await Deno.lstat(gate)).isSymlink,
            `${name} was left alone`,
          );
          await Deno.remove(gate);
        }
        await stopAll();
        assert.equal((await aliceStarts()).code, 0);
      });

      await attack(
        "27: 20 parallel starts; kill -9 mid-start; kill -9 of the supervisor",
        async () => {
          await stopAll();
          const runs = await Promise.all(Array.from({ length: 20 }, () => aliceStarts()));
          for (const r of runs) assert.equal(r.code, 0, r.stderr);
          const states = runs.map((r) => json(r).state);
          assert.equal(states.filter((s) => s === "started").length, 1, JSON.stringify(states));
          assert.equal((await daemonsOf(inst)).length, 1, "exactly one daemon");
          // kill -9 the launcher while it starts the daemon, then start again.
          await stopAll();
          const pending = aliceStarts();
          await waitFor(
            async () => (await installProcesses2(inst)).some((p) => / start$/.test(p.args)),
            10_000,
            "a start process",
          );
          for (const p of await installProcesses2(inst)) {
            if (/ start$/.test(p.args)) Deno.kill(p.pid, "SIGKILL");
          }
          await pending;
          const again = await aliceStarts();
          assert.equal(again.code, 0, again.stderr);
          assert.equal((await daemonsOf(inst)).length, 1);
          // kill -9 the supervisor: its daemon dies with it; the next start recovers.
          for (const s of await supervisorsOf(inst)) Deno.kill(s.pid, "SIGKILL");
          await waitFor(
            async () => (await daemonsOf(inst)).length === 0,
            10_000,
            "the orphaned daemon to die",
          );
          const after = await aliceStarts();
          assert.equal(after.code, 0, after.stderr);
          assert.equal(json(after).state, "started");
          assert.equal((await daemonsOf(inst)).length, 1);
        },
      );

      await attack("28: a root connection gets no implicit grant", async () => {
        const up = await sh(upstreamPath(), [
          "--addr",
          aliceGate,
          "--timeout",
          "3",
          "debug",
          "workers",
        ], { env: ROOT_ENV });
        assert.notEqual(up.code, 0);
        assert.ok(
          auditLines(inst).some((a) =>
            a.event === "connect" && a.uid === 0 && a.decision === "deny"
          ),
        );
      });

      await attack(
        "29: alice cannot signal, trace or read the environment of the daemon",
        async () => {
          const [d] = await daemonsOf(inst);
          const r = await shAs(
            c.alice,
            'kill -STOP "$1"; echo "kill=$?"; cat /proc/"$1"/environ >/dev/null; echo "environ=$?"; ' +
              '/usr/bin/strace -p "$1" -o /dev/null & sleep 0.5; kill $! 2>/dev/null; wait $!; echo "strace=$?"',
            [String(d!.pid)],
          );
          assert.match(r.stdout, /kill=1/);
          assert.match(r.stdout, /environ=1/);
          assert.match(await procStatus(d!.pid), /^State:\s+S/m);
          const status = await procStatus(d!.pid);
          assert.match(status, /^Uid:\s+0\s+0\s+0\s+0$/m);
        },
      );

      await attack("30: root through sudo without --uid, and for an ungranted uid", async () => {
        const r = await sh("/usr/bin/sudo", ["-n", inst.wrapper, "start"], { env: ROOT_ENV });
        assert.equal(r.code, 77);
        assert.match(r.stderr, /root gets no daemon implicitly/);
        const bob = await sh("/usr/bin/sudo", [
          "-n",
          inst.wrapper,
          "start",
          "--uid",
          String(c.bob.uid),
        ], { env: ROOT_ENV });
        assert.equal(bob.code, 77);
        assert.match(bob.stderr, /has no grant/);
      });

      await attack("the launcher imports no npm, remote or CLI code", async () => {
        const info = await sh(Deno.execPath(), [
          "info",
          "--json",
          `${inst.prefix}/lib/src/launcher/main.ts`,
        ], {
          env: { ...ROOT_ENV, DENO_DIR: `${inst.prefix}/cache` },
        });
        assert.equal(info.code, 0, info.stderr);
        const graph = JSON.parse(info.stdout) as { modules: { specifier: string }[] };
        for (const m of graph.modules) {
          assert.match(
            m.specifier,
            new RegExp(`^(file://${inst.prefix}/lib/src/(launcher|sys)/|node:)`),
            m.specifier,
          );
        }
      });
      ok = true;
    } finally {
      if (!ok) {
        try {
          for (const f of (await Array.fromAsync(Deno.readDir(inst.logDir)))) {
            console.error(
              `--- ${f.name} ---\n${
                (await Deno.readTextFile(`${inst.logDir}/${f.name}`)).slice(-4000)
              }`,
            );
          }
        } catch { /* none */ }
      }
      await removeInstall(inst, [root, ...extraRoots]);
      for (const d of [ctx.dir, setuidCtx.dir, scratch]) {
        await Deno.remove(d, { recursive: true }).catch(() => {});
      }
    }
  },
});

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}

function upstreamPath(): string {
  return new URL("../.tools/bin/buildctl-upstream", import.meta.url).pathname;
}

/** Launcher processes, including `start` ones (whose command line ends in "start"). */
async function installProcesses2(i: Install): Promise<{ pid: number; args: string }[]> {
  const r = await sh("/usr/bin/ps", ["-eo", "pid=,args=", "-ww"], {
    env: { PATH: "/usr/bin:/bin" },
  });
  return r.stdout.split("\n").map((l) => /^\s*(\d+)\s+(.*)$/.exec(l)).filter((m) => m !== null)
    .map((m) => ({ pid: Number(m![1]), args: m![2]!.trim() }))
    .filter((p) => p.args.includes(`${i.prefix}/lib/src/launcher/main.ts`));
}
