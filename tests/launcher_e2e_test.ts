/**
 * Unprivileged users through the root launcher, end to end: real users
 * (useradd), the real `sudo buildctl daemon start …`, real sudo rules, a real
 * buildkitd per root dir, our buildctl and upstream Go buildctl as those
 * users.
 *
 * Cast: alice (granted, network.host), bob (not granted), dave (not granted,
 * alice's primary group), eve (granted, no entitlements).
 */
import assert from "node:assert/strict";
import {
  addToGroup,
  asUser,
  auditLines,
  buildContext,
  buildctlAs,
  cast,
  clientAs,
  daemonsOf,
  ensureGroup,
  gateOf,
  grant,
  launcherSkipReason,
  newInstall,
  removeInstall,
  revoke,
  sh,
  shAs,
  sudoStartAs,
  supervisorsOf,
  upstreamAs,
  waitFor,
} from "./_util/launcher_fixture.ts";
import { UPSTREAM_BUILDCTL } from "./_util/paths.ts";

const skip = launcherSkipReason();
if (skip) console.warn(`launcher_e2e_test: skipped: ${skip}`);

Deno.test({
  name: "launcher: grant, passwordless builds, refusals, control endpoint, idle timeout, sharing",
  ignore: skip !== undefined,
  async fn(t) {
    const c = await cast();
    const inst = newInstall();
    const aliceRoot = `${c.alice.home}/bk-${inst.tag}`;
    const eveRoot = `${c.eve.home}/bk-${inst.tag}`;
    const shareRoot = `/srv/${inst.tag}-share`;
    const plain = await buildContext("FROM busybox\nRUN echo plain > /plain\n");
    const hostNet = await buildContext("FROM busybox\nRUN --network=host echo host > /host\n");
    let ok = false;
    try {
      let aliceAddr = "";
      let eveAddr = "";

      await t.step("sudo buildctl daemon start grants alice network.host", async () => {
        const r = await grant(inst, [
          `--root=${aliceRoot}`,
          "--allow-user=bkt-alice",
          "--entitlements=network.host",
        ]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(
          r.stdout,
          /granted bkt-alice \(uid \d+\): root .*, entitlements network\.host/,
        );
        // Root-owned, non-setuid launcher; root-owned 0644 config; validated 0440 sudoers.
        const w = await Deno.lstat(inst.wrapper);
        assert.equal(w.uid, 0);
        assert.equal(w.mode! & 0o7777, 0o755);
        const cfg = await Deno.lstat(inst.config);
        assert.equal(cfg.uid, 0);
        assert.equal(cfg.mode! & 0o777, 0o644);
        const config = JSON.parse(await Deno.readTextFile(inst.config));
        assert.deepEqual(config.grants, [{
          uid: c.alice.uid,
          user: "bkt-alice",
          root: aliceRoot,
          entitlements: ["network.host"],
          idleTimeoutSeconds: 600,
        }]);
        const sudoers = await Deno.readTextFile(inst.sudoers);
        assert.ok(sudoers.includes(`#${c.alice.uid} ALL=(root) NOPASSWD: ${inst.wrapper} start\n`));
        assert.equal((await Deno.lstat(inst.sudoers)).mode! & 0o777, 0o440);
        // The daemon runs with exactly the granted entitlement, on a private socket.
        const d = await daemonsOf(inst);
        assert.equal(d.length, 1);
        assert.match(d[0]!.args, /--allow-insecure-entitlement network\.host$/);
        assert.doesNotMatch(d[0]!.args, /security\.insecure/);
      });

      await t.step("an unknown entitlement is an error listing the valid ones", async () => {
        const r = await grant(inst, [
          `--root=${eveRoot}`,
          "--allow-user=bkt-eve",
          "--entitlements=network.host,network.none",
        ]);
        assert.notEqual(r.code, 0);
        assert.match(
          r.stderr,
          /unknown entitlement "network\.none"; valid entitlements are: device, network\.host, security\.insecure/,
        );
      });

      await t.step("eve is granted without entitlements", async () => {
        const r = await grant(inst, [`--root=${eveRoot}`, "--allow-user=bkt-eve"]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.equal(JSON.parse(await Deno.readTextFile(inst.config)).grants.length, 2);
      });

      await t.step(
        "alice builds with no password (sudo -n launcher start, then the gate)",
        async () => {
          const s = await clientAs(c.alice, inst, "start");
          assert.equal(s.code, 0, s.stderr + s.stdout);
          aliceAddr = s.json.result as string;
          assert.equal(aliceAddr, `unix://${gateOf(inst, c.alice)}`);
          const direct = await sudoStartAs(c.alice, inst);
          assert.equal(direct.code, 0, direct.stderr);
          assert.match(direct.stdout, /"state":"running"/);
          const b = await buildctlAs(c.alice, ["--addr", aliceAddr, ...plain.args]);
          assert.equal(b.code, 0, b.stderr);
        },
      );

      await t.step("alice's RUN --network=host with --allow network.host works", async () => {
        const b = await buildctlAs(c.alice, [
          "--addr",
          aliceAddr,
          ...hostNet.args,
          "--allow",
          "network.host",
        ]);
        assert.equal(b.code, 0, b.stderr);
      });

      await t.step(
        "a RUN without network.host gets its own network namespace (bridge, not the host's)",
        async () => {
          const probe = await buildContext(
            "FROM busybox\nRUN ip -4 -o addr show | awk '{print $4}' | sort | tr '\\n' ' ' && echo\n",
          );
          try {
            const b = await buildctlAs(c.alice, ["--addr", aliceAddr, ...probe.args, "--no-cache"]);
            assert.equal(b.code, 0, b.stderr);
            const seen =
              /#\d+ [\d.]+ ((?:[\d.]+\/\d+ )*127\.0\.0\.1\/8 .*)\n/.exec(b.stderr)?.[1] ?? "";
            assert.ok(seen, b.stderr);
            const host = await sh("/usr/sbin/ip", ["-4", "-o", "addr", "show"]);
            const hostAddrs = [...host.stdout.matchAll(/inet (\S+)/g)].map((m) => m[1]!)
              .filter((a) => !a.startsWith("127."));
            for (const a of hostAddrs) {
              assert.ok(!seen.includes(a), `RUN saw host address ${a}: ${seen}`);
            }
          } finally {
            await Deno.remove(probe.dir, { recursive: true });
          }
        },
      );

      await t.step("bob and dave are refused (sudo, the client rung, and the gate)", async () => {
        for (const u of [c.bob, c.dave]) {
          const s = await sudoStartAs(u, inst);
          assert.equal(s.code, 1);
          assert.match(s.stderr, /a password is required/);
          const rung = await clientAs(u, inst, "start");
          assert.equal(rung.json.result, null, "no grant: the first rung does not apply");
          const ours = await buildctlAs(u, [
            "--addr",
            aliceAddr,
            "--timeout",
            "3",
            "debug",
            "workers",
          ]);
          assert.notEqual(ours.code, 0);
          const up = await upstreamAs(u, [
            "--addr",
            aliceAddr,
            "--timeout",
            "3",
            "debug",
            "workers",
          ]);
          assert.notEqual(up.code, 0);
          assert.ok(
            auditLines(inst).some((a) =>
              a.event === "connect" && a.uid === u.uid && a.decision === "deny"
            ),
            `no audit deny for ${u.name}`,
          );
        }
      });

      await t.step(
        "eve's --allow network.host is refused, naming the command that grants it",
        async () => {
          const s = await clientAs(c.eve, inst, "start");
          assert.equal(s.code, 0, s.stderr + s.stdout);
          eveAddr = s.json.result as string;
          const ok = await buildctlAs(c.eve, ["--addr", eveAddr, ...plain.args]);
          assert.equal(ok.code, 0, ok.stderr);
          const b = await buildctlAs(c.eve, [
            "--addr",
            eveAddr,
            ...hostNet.args,
            "--allow",
            "network.host",
          ]);
          assert.notEqual(b.code, 0);
          assert.match(b.stderr, /entitlement "network\.host" is not granted to uid \d+/);
          assert.ok(
            b.stderr.includes(
              `sudo buildctl daemon start --root=${eveRoot} --allow-user=bkt-eve --entitlements=network.host`,
            ),
            b.stderr,
          );
          assert.ok(
            auditLines(inst).some((a) =>
              a.event === "solve" && a.uid === c.eve.uid && a.decision === "deny" &&
              JSON.stringify(a.entitlements) === '["network.host"]'
            ),
          );
        },
      );

      await t.step("upstream Go buildctl through alice's socket: alice yes, bob no", async () => {
        const w = await upstreamAs(c.alice, ["--addr", aliceAddr, "debug", "workers"]);
        assert.equal(w.code, 0, w.stderr);
        const b = await upstreamAs(c.alice, [
          "--addr",
          aliceAddr,
          ...hostNet.args.filter((a) => a !== "--progress=plain"),
          "--progress=plain",
          "--allow",
          "network.host",
        ]);
        assert.equal(b.code, 0, b.stderr);
        const bob = await upstreamAs(c.bob, [
          "--addr",
          aliceAddr,
          "--timeout",
          "3",
          "debug",
          "workers",
        ]);
        assert.notEqual(bob.code, 0);
      });

      await t.step(
        "control endpoint: state and logs without sudo; others are closed out",
        async () => {
          const st = await clientAs(c.alice, inst, "state");
          assert.equal(st.code, 0, st.stderr + st.stdout);
          const state = st.json.result as Record<string, unknown>;
          assert.equal(state.state, "running");
          assert.equal(state.root, aliceRoot);
          assert.deepEqual(state.entitlements, ["network.host"]);
          assert.equal(state.address, aliceAddr);
          const logs = await clientAs(c.alice, inst, "logs");
          assert.match(String(logs.json.result), /running server on/);
          // bob speaks the protocol to alice's control socket directly: closed and audited.
          const ctl = `${inst.runDir}/users/${c.alice.uid}/control.sock`;
          const r = await asUser(c.bob, "/usr/bin/timeout", [
            "5",
            "/usr/bin/python3",
            "-c",
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ntry:\n" +
            ' s.sendall(b\'{"op":"stop"}\\n\')\n print(repr(s.recv(100)))\n' +
            "except (BrokenPipeError, ConnectionResetError):\n print(repr(b''))\n",
            ctl,
          ]);
          assert.equal(r.stdout.trim(), "b''", r.stderr);
          assert.equal((await daemonsOf(inst)).length, 2, "bob's stop must not stop anything");
          assert.ok(
            auditLines(inst).some((a) =>
              a.method === "control/user" && a.uid === c.bob.uid && a.decision === "deny"
            ),
          );
        },
      );

      await t.step(
        "stop, then the next command starts the daemon again through sudo -n",
        async () => {
          const startedByAlice = () =>
            auditLines(inst).filter((a) =>
              a.event === "start" && a.uid === c.alice.uid && a.caller === c.alice.uid &&
              a.state === "started"
            ).length;
          const before = startedByAlice();
          const s = await clientAs(c.alice, inst, "stop");
          assert.equal(s.json.result, true, s.stderr + s.stdout);
          await waitFor(
            async () =>
              !(await daemonsOf(inst)).some((d) =>
                d.args.includes(`--allow-insecure-entitlement network.host`)
              ),
            15_000,
            "alice's daemon to stop",
          );
          const st = await clientAs(c.alice, inst, "state");
          assert.equal((st.json.result as { state: string }).state, "stopped");
          const again = await clientAs(c.alice, inst, "start");
          assert.equal(again.json.result, aliceAddr, again.stderr);
          assert.equal(
            startedByAlice(),
            before + 1,
            "the start went through sudo and the launcher",
          );
        },
      );

      await t.step("reset wipes the root-owned state as root", async () => {
        const state = `${aliceRoot}/.buildkit-root`;
        assert.ok((await Array.fromAsync(Deno.readDir(state))).length > 0);
        const r = await clientAs(c.alice, inst, "reset");
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.deepEqual(await Array.fromAsync(Deno.readDir(state)), []);
        const st = await Deno.lstat(state);
        assert.equal(st.uid, 0);
        assert.equal(st.mode! & 0o7777, 0o700);
        // alice herself cannot look inside.
        const peek = await shAs(c.alice, 'ls "$1"', [state]);
        assert.notEqual(peek.code, 0);
        assert.match(peek.stderr, /Permission denied/);
      });

      await t.step("idle timeout stops daemon and gate; the next command restarts it", async () => {
        const r = await grant(inst, [`--root=${eveRoot}`, "--allow-user=bkt-eve", "--timeout=2s"]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        const eveDaemon = async () =>
          (await supervisorsOf(inst)).length > 0 &&
          (await daemonsOf(inst)).some((d) => !d.args.includes("network.host"));
        try {
          await waitFor(async () => !(await eveDaemon()), 20_000, "eve's daemon to stop when idle");
        } catch (err) {
          const st = await clientAs(c.eve, inst, "state");
          throw new Error(
            `${err}; eve's state: ${st.stdout}; processes: ${
              JSON.stringify(await supervisorsOf(inst))
            }`,
          );
        }
        const gone = await sh("/usr/bin/test", ["-S", gateOf(inst, c.eve)]);
        assert.notEqual(gone.code, 0, "the gate socket is removed");
        const b = await clientAs(c.eve, inst, "start");
        assert.equal(b.json.result, eveAddr, b.stderr + b.stdout);
        assert.ok(await eveDaemon());
        assert.ok(
          auditLines(inst).some((a) => a.event === "daemon-stop" && a.reason === "idle timeout"),
        );
      });

      await t.step(
        "two users share one daemon: the gate refuses what the daemon would allow",
        async () => {
          await ensureGroup("bkt-share");
          await addToGroup("bkt-alice", "bkt-share");
          await addToGroup("bkt-eve", "bkt-share");
          await Deno.mkdir(shareRoot);
          await sh("/bin/chown", ["root:bkt-share", shareRoot]);
          await Deno.chmod(shareRoot, 0o2770);
          let r = await grant(inst, [
            `--root=${shareRoot}`,
            "--allow-user=bkt-alice",
            "--entitlements=network.host",
          ]);
          assert.equal(r.code, 0, r.stderr + r.stdout);
          r = await grant(inst, [`--root=${shareRoot}`, "--allow-user=bkt-eve", "--timeout=10m"]);
          assert.equal(r.code, 0, r.stderr + r.stdout);
          const grants = JSON.parse(await Deno.readTextFile(inst.config)).grants as {
            root: string;
          }[];
          assert.equal(grants.length, 2, "one entry per user");
          assert.ok(grants.every((g) => g.root === shareRoot));
          await waitFor(
            async () => (await daemonsOf(inst)).length === 1,
            20_000,
            "one shared daemon",
          );
          const [d] = await daemonsOf(inst);
          assert.match(d!.args, /--allow-insecure-entitlement network\.host$/);
          const st = await Deno.lstat(`${shareRoot}/.buildkit-root`);
          assert.equal(st.uid, 0);
          assert.equal(st.gid, 0, "the setgid parent's group was not inherited");
          assert.equal(st.mode! & 0o7777, 0o700);

          const aliceShared = await clientAs(c.alice, inst, "start");
          const eveShared = await clientAs(c.eve, inst, "start");
          const a = await buildctlAs(c.alice, [
            "--addr",
            aliceShared.json.result as string,
            ...hostNet.args,
            "--allow",
            "network.host",
          ]);
          assert.equal(a.code, 0, a.stderr);
          const e = await buildctlAs(c.eve, [
            "--addr",
            eveShared.json.result as string,
            ...hostNet.args,
            "--allow",
            "network.host",
          ]);
          assert.notEqual(e.code, 0);
          assert.match(e.stderr, /entitlement "network\.host" is not granted/);
          assert.ok(
            e.stderr.includes(
              `sudo buildctl daemon start --root=${shareRoot} --allow-user=bkt-eve --entitlements=network.host`,
            ),
            e.stderr,
          );
          // The same request straight at the daemon (root, private socket) is allowed by the daemon.
          const priv = /--addr unix:\/\/(\S+)/.exec(d!.args)![1]!;
          const direct = await sh(UPSTREAM_BUILDCTL, [
            "--addr",
            `unix://${priv}`,
            ...hostNet.args,
            "--allow",
            "network.host",
          ], { env: { PATH: "/usr/bin:/bin", HOME: "/root" } });
          assert.equal(direct.code, 0, direct.stderr);
        },
      );

      await t.step(
        "alice's commands with no --addr find her grant: auto-start through the launcher",
        async () => {
          const env = { BUILDCTL_LAUNCHER_CONFIG: inst.config };
          const stop = await buildctlAs(c.alice, ["daemon", "stop"], { env });
          assert.equal(stop.code, 0, stop.stderr);
          await waitFor(
            async () => (await sh("/usr/bin/test", ["-S", gateOf(inst, c.alice)])).code !== 0,
            15_000,
            "alice's gate to close",
          );
          const r = await buildctlAs(c.alice, ["debug", "workers"], { env });
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stderr, /starting buildkitd through the launcher/);
          assert.match(r.stdout, /^ID\s+PLATFORMS\n/);
          const state = await buildctlAs(c.alice, ["daemon", "state"], { env });
          assert.equal(state.code, 0, state.stderr);
          assert.match(state.stdout, /running/);
          const logs = await buildctlAs(c.alice, ["daemon", "logs"], { env });
          assert.equal(logs.code, 0, logs.stderr);
          assert.match(logs.stdout, /running server on/);
        },
      );

      await t.step("revoke removes the grant and its sudoers line", async () => {
        const r = await revoke(inst, "bkt-eve");
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.ok(!(await Deno.readTextFile(inst.sudoers)).includes(`#${c.eve.uid} `));
        const s = await sudoStartAs(c.eve, inst);
        assert.equal(s.code, 1);
        assert.match(s.stderr, /a password is required/);
        await waitFor(
          async () => (await sh("/usr/bin/test", ["-S", gateOf(inst, c.eve)])).code !== 0,
          10_000,
          "eve's gate to close",
        );
        const still = await buildctlAs(c.alice, [
          "--addr",
          `unix://${gateOf(inst, c.alice)}`,
          "debug",
          "workers",
        ]);
        assert.equal(still.code, 0, still.stderr);
      });
      ok = true;
    } finally {
      if (!ok) {
        try {
          for (const f of (await Array.fromAsync(Deno.readDir(inst.logDir)))) {
            console.error(
              `--- ${f.name} ---\n${
                (await Deno.readTextFile(`${inst.logDir}/${f.name}`)).slice(-6000)
              }`,
            );
          }
        } catch { /* no logs */ }
      }
      await removeInstall(inst, [aliceRoot, eveRoot, shareRoot]);
      await Deno.remove(plain.dir, { recursive: true }).catch(() => {});
      await Deno.remove(hostNet.dir, { recursive: true }).catch(() => {});
    }
  },
});
