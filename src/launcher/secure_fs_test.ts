import assert from "node:assert/strict";
import { type Accessor, permits, pinStateDir, UnsafePathError } from "./secure_fs.ts";
import type { StatxInfo } from "../sys/mod.ts";

const st = (mode: number, uid: number, gid: number): StatxInfo => ({
  mode,
  type: "dir",
  uid,
  gid,
  nlink: 2,
  ino: 1n,
  size: 0n,
  dev: "8:1",
  mntId: 0n,
  mountRoot: false,
});
const alice: Accessor = { uid: 1001, gids: [1001, 50], name: "alice" };

Deno.test("permits() applies owner, then group, then other bits", () => {
  assert.ok(permits(st(0o700, 1001, 0), alice, 3));
  assert.ok(!permits(st(0o070, 1001, 1001), alice, 1), "owner bits win even when group allows");
  assert.ok(permits(st(0o070, 0, 50), alice, 3));
  assert.ok(!permits(st(0o750, 0, 51), alice, 1));
  assert.ok(permits(st(0o751, 0, 51), alice, 1));
  assert.ok(!permits(st(0o751, 0, 51), alice, 2));
});

Deno.test({
  name: "pinStateDir() refuses a root dir below world-writable /tmp",
  ignore: Deno.build.os !== "linux",
  fn() {
    const dir = Deno.makeTempDirSync({ prefix: "pin-" });
    try {
      assert.throws(
        () => pinStateDir(dir, [{ uid: Deno.uid()!, gids: [0], name: "me" }]),
        (err: unknown) =>
          err instanceof UnsafePathError && /\/tmp is world-writable \(sticky\)/.test(err.message),
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
