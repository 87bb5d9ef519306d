import assert from "node:assert/strict";
import {
  countConnections,
  isAlive,
  parseProcStat,
  pidExists,
  readProcFiles,
  socketInodes,
  stampMatches,
  stampOf,
} from "./proc.ts";

const NET_UNIX = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 29961 /run/buildkit/buildkitd.sock
0000000000000000: 00000003 00000000 00000000 0001 03 29444 /run/buildkit/buildkitd.sock
0000000000000000: 00000003 00000000 00000000 0001 03 29445 /run/buildkit/buildkitd.sock
0000000000000000: 00000003 00000000 00000000 0001 03 29446
0000000000000000: 00000003 00000000 00000000 0001 03 29447 /run/buildkit/buildkitd.sock.other
0000000000000000: 00000003 00000000 00000000 0001 03 29448 /x/run/buildkit/buildkitd.sock
`;

Deno.test("countConnections() counts connected server sockets on the path only", () => {
  assert.equal(countConnections(NET_UNIX, "/run/buildkit/buildkitd.sock"), 2);
  assert.equal(countConnections(NET_UNIX, "/nope.sock"), 0);
  assert.equal(countConnections(undefined, "/run/buildkit/buildkitd.sock"), 0);
});

Deno.test("countConnections() counts only the daemon's own sockets when their inodes are known", () => {
  const path = "/run/buildkit/buildkitd.sock";
  assert.equal(countConnections(NET_UNIX, path, new Set(["29445"])), 1);
  assert.equal(countConnections(NET_UNIX, path, new Set(["1"])), 0, "another namespace's daemon");
  assert.equal(countConnections(NET_UNIX, path, new Set()), 2, "unknown inodes: count by path");
});

Deno.test("socketInodes() finds the sockets a process tree holds", async () => {
  const dir = await Deno.makeTempDir();
  const listener = Deno.listen({ transport: "unix", path: `${dir}/s.sock` });
  try {
    const child = new Deno.Command("/bin/sh", { args: ["-c", "sleep 5 & wait"], stdout: "null" })
      .spawn();
    try {
      const ours = await socketInodes(Deno.pid);
      assert.ok(ours.size > 0, "this process holds a listening socket");
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseProcStat() handles a comm with spaces and parentheses", () => {
  const text = "1234 (a b) c) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
  const st = parseProcStat(text)!;
  assert.equal(st.comm, "a b) c");
  assert.equal(st.state, "S");
  assert.equal(st.ppid, 1);
  assert.equal(st.sid, 1234);
  assert.equal(st.startTime, 987654);
  assert.equal(parseProcStat(undefined), undefined);
});

Deno.test("stampMatches() rejects another boot, another start time and zombies", () => {
  const text = "10 (x) S 1 10 10 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0";
  assert.equal(stampMatches({ pid: 10, startTime: 500, bootId: "b" }, text, "b"), true);
  assert.equal(stampMatches({ pid: 10, startTime: 500, bootId: "a" }, text, "b"), false);
  assert.equal(stampMatches({ pid: 10, startTime: 501, bootId: "b" }, text, "b"), false);
  assert.equal(
    stampMatches({ pid: 10, startTime: 500, bootId: "b" }, text.replace(") S", ") Z"), "b"),
    false,
  );
  assert.equal(stampMatches({ pid: 10, startTime: 500, bootId: "b" }, undefined, "b"), false);
});

Deno.test("stampOf() and isAlive() identify this process; a dead pid is not alive", async () => {
  const me = await stampOf(Deno.pid);
  assert.ok(me && me.startTime > 0 && me.bootId.length > 0);
  assert.equal(await isAlive(me), true);
  assert.equal(await isAlive({ ...me, startTime: me.startTime + 1 }), false);
  const child = new Deno.Command("true").spawn();
  await child.status;
  assert.equal(pidExists(child.pid), false);
  assert.equal(await isAlive({ pid: child.pid, startTime: 1, bootId: me.bootId }), false);
});

Deno.test("readProcFiles() maps unreadable files to undefined", async () => {
  const m = await readProcFiles(["/proc/sys/kernel/random/boot_id", "/proc/no/such/file"]);
  assert.match(m.get("/proc/sys/kernel/random/boot_id") ?? "", /^[0-9a-f-]{36}\n$/);
  assert.equal(m.get("/proc/no/such/file"), undefined);
});
