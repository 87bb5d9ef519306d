import assert from "node:assert/strict";
import {
  AT,
  closeFd,
  connectUnix,
  fchmod,
  fchown,
  fstat,
  getrlimit,
  ids,
  listenUnix,
  mkdirat,
  O,
  openat,
  openDirNoFollow,
  peerCred,
  readNonblock,
  resIds,
  RLIMIT,
  setrlimit,
  socketFromFd,
  socketPair,
  statx,
  SysError,
  umask,
  unlinkat,
  waitFd,
  writeNonblock,
} from "./mod.ts";
import { cstring, decodeUcred, sockaddrUn } from "./_structs.ts";

const SETPRIV = "/usr/bin/setpriv";
const DENO = Deno.execPath();

/** A temp dir that uid 65534 can traverse. */
async function tempDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sys_test_" });
  await Deno.chmod(dir, 0o755);
  return dir;
}

function concatText(chunks: Uint8Array[]): string {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(out);
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  return concatText(chunks);
}

Deno.test("cstring() rejects a NUL byte and sockaddrUn() a path longer than 107 bytes", () => {
  assert.deepEqual([...cstring("ab")], [97, 98, 0]);
  assert.throws(() => cstring("a\0b"), TypeError);
  assert.throws(() => sockaddrUn("/" + "x".repeat(107)), TypeError);
  assert.throws(() => sockaddrUn(""), TypeError);
  const addr = sockaddrUn("/a");
  assert.deepEqual([...addr], [1, 0, 47, 97, 0]);
});

Deno.test("decodeUcred() reads pid i32, uid u32, gid u32 little endian", () => {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setInt32(0, 1234, true);
  v.setUint32(4, 4294967294, true);
  v.setUint32(8, 65534, true);
  assert.deepEqual(decodeUcred(b), { pid: 1234, uid: 4294967294, gid: 65534 });
});

Deno.test("listenUnix() applies the mode and accept() reports the peer's pid, uid and gid", async () => {
  const dir = await tempDir();
  const path = `${dir}/l.sock`;
  const listener = listenUnix(path, 0o666);
  try {
    const info = await Deno.lstat(path);
    assert.equal(info.isSocket, true);
    assert.equal(info.mode! & 0o777, 0o666);
    const [accepted, conn] = await Promise.all([
      listener.accept(),
      Deno.connect({ transport: "unix", path }),
    ]);
    try {
      assert.deepEqual(accepted.peer, { pid: Deno.pid, uid: Deno.uid(), gid: Deno.gid() });
      assert.deepEqual(peerCred(accepted.fd), accepted.peer);
    } finally {
      closeFd(accepted.fd);
      conn.close();
    }
  } finally {
    listener.close();
  }
  await assert.rejects(listener.accept(), Deno.errors.BadResource);
  await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("listenUnix() sets the exact mode whatever the umask", async () => {
  const dir = await tempDir();
  for (const [mask, mode] of [[0, 0o600], [0o077, 0o666], [0o022, 0o660]] as const) {
    const old = umask(mask);
    let l;
    try {
      l = listenUnix(`${dir}/m.sock`, mode);
    } finally {
      umask(old);
    }
    assert.equal((await Deno.lstat(`${dir}/m.sock`)).mode! & 0o777, mode);
    l.close();
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("peerCred() reports uid and gid 65534 for a peer started with setpriv", async () => {
  const dir = await tempDir();
  const path = `${dir}/l.sock`;
  using listener = listenUnix(path, 0o666);
  const code = `const c = await Deno.connect({ transport: "unix", path: ${JSON.stringify(path)} });
    await c.read(new Uint8Array(1)); c.close();`;
  const child = new Deno.Command(SETPRIV, {
    args: ["--reuid=65534", "--regid=65534", "--clear-groups", DENO, "eval", "--no-config", code],
    env: { DENO_DIR: `${dir}/deno_dir`, NO_COLOR: "1" },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const { fd, peer } = await listener.accept();
  closeFd(fd); // the child's read returns EOF
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(peer.uid, 65534);
  assert.equal(peer.gid, 65534);
  assert.equal(peer.pid, child.pid);
  listener.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("listenUnix() fails with EADDRINUSE on an existing path unless the socket is stale", async () => {
  const dir = await tempDir();
  const path = `${dir}/l.sock`;
  const live = listenUnix(path, 0o600);
  assert.throws(
    () => listenUnix(path, 0o600),
    (e) => e instanceof SysError && e.code === "EADDRINUSE",
  );
  // a live socket is not "stale"
  assert.throws(
    () => listenUnix(path, 0o600, { replaceStaleSocket: true }),
    (e) => e instanceof SysError && e.code === "EADDRINUSE",
  );
  live.close();
  // regular file: refused, left alone
  await Deno.writeTextFile(path, "keep");
  assert.throws(
    () => listenUnix(path, 0o600, { replaceStaleSocket: true }),
    (e) => e instanceof SysError && e.code === "EEXIST",
  );
  assert.equal(await Deno.readTextFile(path), "keep");
  await Deno.remove(path);
  // symlink: refused, target untouched
  await Deno.symlink("/etc/passwd", path);
  assert.throws(() => listenUnix(path, 0o600, { replaceStaleSocket: true }), SysError);
  assert.equal((await Deno.lstat(path)).isSymlink, true);
  await Deno.remove(path);
  // stale socket (bound by a process that closed it): replaced
  const crashed = await Deno.makeTempDir();
  const child = await new Deno.Command(DENO, {
    args: [
      "eval",
      "--no-config",
      `Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} }); Deno.exit(0);`,
    ],
  }).output(); // a process that exits without unlinking its socket
  assert.equal(child.code, 0);
  await Deno.remove(crashed);
  const s = statx(AT.FDCWD, path, AT.SYMLINK_NOFOLLOW);
  assert.equal(s.type, "socket");
  await assert.rejects(Deno.connect({ transport: "unix", path }), Deno.errors.ConnectionRefused);
  const fresh = listenUnix(path, 0o640, { replaceStaleSocket: true });
  // Replaced: the path now answers (the stale socket refused), with our mode.
  // (Not the inode: a freed inode number may come back at once.)
  const conn = await Deno.connect({ transport: "unix", path });
  conn.close();
  assert.equal((await Deno.lstat(path)).mode! & 0o777, 0o640);
  fresh.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("socketFromFd() moves bytes both ways and propagates half-close", async () => {
  const dir = await tempDir();
  const path = `${dir}/l.sock`;
  using listener = listenUnix(path, 0o600);
  const [accepted, conn] = await Promise.all([
    listener.accept(),
    Deno.connect({ transport: "unix", path }),
  ]);
  const sock = socketFromFd(accepted.fd);
  const received: Uint8Array[] = [];
  const gotEnd = new Promise<void>((resolve) => sock.on("end", resolve));
  sock.on("data", (d: Uint8Array) => received.push(d));
  const closed = new Promise<void>((resolve) => sock.on("close", () => resolve()));
  await conn.write(new TextEncoder().encode("ping"));
  await conn.closeWrite();
  await gotEnd; // the peer's half-close arrives as "end"
  assert.equal(concatText(received), "ping");
  sock.end("pong"); // our half-close after the reply
  assert.equal(await readAll(conn), "pong");
  conn.close();
  await closed;
  listener.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("connectUnix() connects to a Deno listener and fails with ENOENT on a missing path", async () => {
  const dir = await tempDir();
  const path = `${dir}/d.sock`;
  const server = Deno.listen({ transport: "unix", path });
  const [fd, conn] = await Promise.all([connectUnix(path), server.accept()]);
  const msg = new TextEncoder().encode("hi");
  assert.equal(writeNonblock(fd, msg), 2);
  const buf = new Uint8Array(8);
  assert.equal(await conn.read(buf), 2);
  assert.equal(readNonblock(fd, buf), null); // nothing to read yet: EAGAIN
  await conn.write(msg);
  assert.notEqual((await waitFd(fd, 1, 5000)) & 1, 0);
  assert.equal(readNonblock(fd, buf), 2);
  conn.close();
  closeFd(fd);
  server.close();
  await assert.rejects(
    connectUnix(`${dir}/missing.sock`),
    (e) => e instanceof SysError && e.code === "ENOENT",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("socketPair() peers report this process's credentials", () => {
  const [a, b] = socketPair();
  try {
    assert.deepEqual(peerCred(a), { pid: Deno.pid, uid: Deno.uid(), gid: Deno.gid() });
  } finally {
    closeFd(a);
    closeFd(b);
  }
});

Deno.test("openDirNoFollow() refuses a symlink and SysError carries syscall, errno and code", async () => {
  const dir = await tempDir();
  await Deno.symlink("/etc", `${dir}/link`);
  assert.throws(
    () => openDirNoFollow(AT.FDCWD, `${dir}/link`),
    (e) =>
      e instanceof SysError && e.syscall === "openat" && e.errno === 20 && e.code === "ENOTDIR",
  );
  assert.throws(
    () => openat(AT.FDCWD, `${dir}/link`, O.RDONLY | O.NOFOLLOW | O.CLOEXEC),
    (e) => e instanceof SysError && e.code === "ELOOP",
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("mkdirat(), fchmod(), fchown(), statx() and unlinkat() work relative to a directory fd", async () => {
  const dir = await tempDir();
  const dfd = openDirNoFollow(AT.FDCWD, dir);
  try {
    const old = umask(0o077);
    try {
      mkdirat(dfd, "sub", 0o777);
    } finally {
      umask(old);
    }
    const sub = openDirNoFollow(dfd, "sub");
    try {
      assert.equal(fstat(sub).mode & 0o777, 0o700);
      fchmod(sub, 0o750);
      fchown(sub, 65534, 65534);
      const info = statx(dfd, "sub", AT.SYMLINK_NOFOLLOW);
      assert.equal(info.type, "dir");
      assert.equal(info.mode & 0o7777, 0o750);
      assert.equal(info.uid, 65534);
      assert.equal(info.gid, 65534);
      assert.equal(info.ino, fstat(sub).ino);
    } finally {
      closeFd(sub);
    }
    assert.throws(
      () => mkdirat(dfd, "sub", 0o700),
      (e) => e instanceof SysError && e.code === "EEXIST",
    );
    unlinkat(dfd, "sub", AT.REMOVEDIR);
    assert.throws(() => statx(dfd, "sub", 0), (e) => e instanceof SysError && e.code === "ENOENT");
  } finally {
    closeFd(dfd);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ids() and resIds() agree with Deno.uid() and Deno.gid()", () => {
  const i = ids();
  assert.equal(i.uid, Deno.uid());
  assert.equal(i.gid, Deno.gid());
  const r = resIds();
  assert.equal(r.uid[0], i.uid);
  assert.equal(r.uid[1], i.euid);
  assert.equal(r.gid[1], i.egid);
});

Deno.test("getrlimit() and setrlimit() round-trip RLIMIT_NOFILE", () => {
  const before = getrlimit(RLIMIT.NOFILE);
  setrlimit(RLIMIT.NOFILE, { soft: before.soft - 1n, hard: before.hard });
  try {
    assert.equal(getrlimit(RLIMIT.NOFILE).soft, before.soft - 1n);
  } finally {
    setrlimit(RLIMIT.NOFILE, before);
  }
});

Deno.test("unshare(), mount() and prctl() work in a child process (bind mount nosuid, no_new_privs)", async () => {
  const dir = await tempDir();
  await Deno.mkdir(`${dir}/src`);
  await Deno.mkdir(`${dir}/dst`);
  await Deno.writeTextFile(`${dir}/src/f`, "x");
  const mod = new URL("./mod.ts", import.meta.url).href;
  const code = `
    import * as sys from ${JSON.stringify(mod)};
    sys.unshare(sys.CLONE.NEWNS);
    sys.mount(null, "/", null, sys.MS.REC | sys.MS.PRIVATE);
    sys.mount(${JSON.stringify(`${dir}/src`)}, ${JSON.stringify(`${dir}/dst`)}, null, sys.MS.BIND);
    sys.mount(null, ${JSON.stringify(`${dir}/dst`)}, null,
      sys.MS.REMOUNT | sys.MS.BIND | sys.MS.NOSUID | sys.MS.NODEV);
    const root = sys.statx(sys.AT.FDCWD, ${JSON.stringify(`${dir}/dst`)}, 0).mountRoot;
    const file = Deno.readTextFileSync(${JSON.stringify(`${dir}/dst/f`)});
    const opts = Deno.readTextFileSync("/proc/thread-self/mountinfo").split("\\n")
      .find((l) => l.split(" ")[4] === ${JSON.stringify(`${dir}/dst`)})?.split(" ")[5];
    sys.umount2(${JSON.stringify(`${dir}/dst`)}, sys.MNT.DETACH);
    sys.prctl(sys.PR.SET_NO_NEW_PRIVS, 1);
    const nnp = sys.prctl(sys.PR.GET_NO_NEW_PRIVS);
    console.log(JSON.stringify({ root, file, opts, nnp }));`;
  const out = await new Deno.Command(DENO, {
    args: ["eval", "--no-config", code],
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const res = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(res.root, true);
  assert.equal(res.file, "x");
  assert.match(res.opts, /nosuid/);
  assert.match(res.opts, /nodev/);
  assert.equal(res.nnp, 1);
  // the host mount table never saw it
  assert.equal(statx(AT.FDCWD, `${dir}/dst`, 0).mountRoot, false);
  await Deno.remove(dir, { recursive: true });
});
