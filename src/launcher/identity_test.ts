import assert from "node:assert/strict";
import { parseEnviron, parseStatus, parseUid } from "./identity.ts";

Deno.test("parseUid() accepts only plain decimal uids below (uid_t)-1", () => {
  assert.equal(parseUid("0"), 0);
  assert.equal(parseUid("1001"), 1001);
  assert.equal(parseUid("4294967294"), 4294967294);
  for (
    const bad of [
      "",
      "-1",
      "4294967295",
      "01001",
      "1001 ",
      "+1",
      "0x3e8",
      "1e3",
      "1001abc",
      "99999999999",
    ]
  ) {
    assert.equal(parseUid(bad), undefined, bad);
  }
});

Deno.test("parseEnviron() keeps the first value of a repeated variable, as getenv does", () => {
  const env = parseEnviron(
    new TextEncoder().encode("SUDO_UID=1001\0PATH=/bin\0SUDO_UID=0\0junk\0=x\0"),
  );
  assert.equal(env.get("SUDO_UID"), "1001");
  assert.equal(env.get("PATH"), "/bin");
  assert.equal(env.size, 2);
});

Deno.test("parseStatus() reads the real uid and the parent pid", () => {
  const s = "Name:\tsudo\nState:\tS\nPPid:\t4242\nUid:\t1001\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
  assert.deepEqual(parseStatus(s), { ruid: 1001, ppid: 4242 });
  assert.throws(() => parseStatus("Name:\tx\n"));
});
