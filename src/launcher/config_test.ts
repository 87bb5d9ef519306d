import assert from "node:assert/strict";
import {
  ConfigError,
  entitlementHint,
  findGrant,
  formatDuration,
  type Grant,
  grantCommand,
  grantsForRoot,
  type LauncherConfig,
  parseConfig,
  parseDuration,
  parseEntitlementList,
  removeGrant,
  rootDirProblem,
  rootId,
  serializeConfig,
  unionEntitlements,
  upsertGrant,
} from "./config.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const alice: Grant = {
  uid: 1001,
  user: "alice",
  root: "/home/alice/bk",
  entitlements: ["network.host"],
  idleTimeoutSeconds: 600,
};
const base: LauncherConfig = {
  version: 1,
  launcher: "/usr/local/libexec/buildctl-deno/buildkitd-launcher",
  runDir: "/run/buildctl-deno",
  grants: [alice],
};
const text = serializeConfig(base);
const withGrant = (patch: Record<string, unknown>) =>
  enc(
    JSON.stringify({ ...JSON.parse(text), grants: [{ ...JSON.parse(text).grants[0], ...patch }] }),
  );

Deno.test("parseConfig() reads back exactly what serializeConfig() wrote", () => {
  assert.deepEqual(parseConfig(enc(text)), base);
});

Deno.test("parseConfig() accepts only an exact numeric uid in range, never root", async (t) => {
  const cases: [string, unknown][] = [
    ["-1", -1],
    ["4294967295 ((uid_t)-1)", 4294967295],
    ["string 1000abc", "1000abc"],
    ["string 0x3e8", "0x3e8"],
    ["string 1001", "1001"],
    ["zero", 0],
    ["fraction", 1001.5],
    ["null", null],
  ];
  for (const [name, uid] of cases) {
    await t.step(name, () => assert.throws(() => parseConfig(withGrant({ uid })), ConfigError));
  }
  await t.step("exponent 1e3 (not an integer literal)", () => {
    const bad = new TextDecoder().decode(withGrant({ uid: 12345 })).replace("12345", "1e3");
    assert.throws(() => parseConfig(enc(bad)), /only integers/);
  });
});

Deno.test("findGrant() matches the uid exactly: no prefix, no root", () => {
  const c = parseConfig(enc(text));
  assert.equal(findGrant(c, 1001)?.user, "alice");
  for (const uid of [100, 10010, 1000, 0, -1, NaN]) assert.equal(findGrant(c, uid), undefined);
});

Deno.test("parseConfig() refuses unknown, missing and duplicate keys, wrong types and junk", async (t) => {
  const doc = JSON.parse(text);
  const cases: [string, string][] = [
    ["unknown top-level key", JSON.stringify({ ...doc, extra: 1 })],
    ["missing grants", JSON.stringify({ ...doc, grants: undefined })],
    ["grants not an array", JSON.stringify({ ...doc, grants: {} })],
    ["duplicate key", text.replace('"version": 1,', '"version": 1, "version": 1,')],
    [
      "unknown grant key",
      JSON.stringify({ ...doc, grants: [{ ...doc.grants[0], shell: "/bin/sh" }] }),
    ],
    [
      "unknown entitlement",
      JSON.stringify({ ...doc, grants: [{ ...doc.grants[0], entitlements: ["all"] }] }),
    ],
    [
      "duplicate entitlement",
      JSON.stringify({
        ...doc,
        grants: [{ ...doc.grants[0], entitlements: ["device", "device"] }],
      }),
    ],
    ["relative root", JSON.stringify({ ...doc, grants: [{ ...doc.grants[0], root: "bk" }] })],
    [
      "root with ..",
      JSON.stringify({ ...doc, grants: [{ ...doc.grants[0], root: "/home/../etc" }] }),
    ],
    ["uid listed twice", JSON.stringify({ ...doc, grants: [doc.grants[0], doc.grants[0]] })],
    ["version 2", JSON.stringify({ ...doc, version: 2 })],
    ["BOM", "\ufeff" + text],
    ["NUL", text.replace("alice", "al\u0000ice")],
    ["escaped NUL", text.replace("alice", "al\\u0000ice")],
    ["trailing data", text + "{}"],
    ["deep", "[".repeat(5000) + "]".repeat(5000)],
    ["10 MB", JSON.stringify({ ...doc, pad: "x".repeat(10 << 20) })],
    ["not JSON", "version=1"],
  ];
  for (const [name, body] of cases) {
    await t.step(name, () => assert.throws(() => parseConfig(enc(body)), ConfigError));
  }
});

Deno.test("parseConfig() never returns a partial policy (property: random mutations)", () => {
  // Flip, drop or duplicate bytes of a valid config; the result is either the exact
  // original policy or a ConfigError, never anything else.
  const good = enc(text);
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 3000; i++) {
    const b = [...good];
    const at = rnd(b.length);
    switch (rnd(3)) {
      case 0:
        b[at] = rnd(256);
        break;
      case 1:
        b.splice(at, 1);
        break;
      default:
        b.splice(at, 0, b[at]!);
    }
    try {
      const c = parseConfig(new Uint8Array(b));
      // Accepted: must be a well-formed policy (whitespace-only or equivalent edits).
      for (const g of c.grants) {
        assert.ok(Number.isSafeInteger(g.uid) && g.uid > 0 && g.uid < 4294967295);
        assert.ok(
          g.entitlements.every((e) => ["device", "network.host", "security.insecure"].includes(e)),
        );
        assert.equal(rootDirProblem(g.root), undefined);
      }
    } catch (err) {
      assert.ok(err instanceof ConfigError, `unexpected ${err}`);
    }
  }
});

Deno.test("parseEntitlementList() lists the valid names when refusing one", () => {
  assert.deepEqual(parseEntitlementList("security.insecure, network.host,,network.host"), [
    "network.host",
    "security.insecure",
  ]);
  assert.deepEqual(parseEntitlementList(""), []);
  assert.throws(
    () => parseEntitlementList("network.host,net.admin"),
    /unknown entitlement "net\.admin"; valid entitlements are: device, network\.host, security\.insecure/,
  );
});

Deno.test("parseDuration() and formatDuration() round-trip Go-style durations", () => {
  assert.equal(parseDuration("90s"), 90);
  assert.equal(parseDuration("10m"), 600);
  assert.equal(parseDuration("1h30m"), 5400);
  assert.equal(parseDuration("45"), 45);
  for (const bad of ["", "0s", "-5m", "1d", "1.5h", "8d", "999999h"]) {
    assert.throws(() => parseDuration(bad), ConfigError, bad);
  }
  for (const s of [1, 59, 60, 61, 600, 3600, 5400, 90061]) {
    assert.equal(parseDuration(formatDuration(s)), s);
  }
});

Deno.test("upsertGrant() keeps one entry per user; removeGrant() drops it", () => {
  const moved = upsertGrant(base, { ...alice, root: "/srv/shared", entitlements: [] });
  assert.equal(moved.grants.length, 1);
  assert.equal(moved.grants[0]!.root, "/srv/shared");
  const two = upsertGrant(moved, { ...alice, uid: 1002, user: "eve" });
  assert.deepEqual(two.grants.map((g) => g.uid), [1001, 1002]);
  const { config, removed } = removeGrant(two, 1001);
  assert.equal(removed?.user, "alice");
  assert.deepEqual(config.grants.map((g) => g.uid), [1002]);
});

Deno.test("a shared root dir's daemon allows the union of its users' entitlements", () => {
  const c = upsertGrant(
    upsertGrant(base, { ...alice, root: "/srv/s" }),
    { ...alice, uid: 1002, user: "eve", root: "/srv/s", entitlements: ["device"] },
  );
  assert.deepEqual(unionEntitlements(grantsForRoot(c, "/srv/s")), ["device", "network.host"]);
});

Deno.test("entitlementHint() names the exact command that adds the missing entitlement", () => {
  const eve: Grant = {
    uid: 1002,
    user: "eve",
    root: "/home/eve/bk",
    entitlements: [],
    idleTimeoutSeconds: 600,
  };
  assert.equal(
    entitlementHint(eve, ["network.host"]),
    "an administrator can grant it with: sudo buildctl daemon start --root=/home/eve/bk --allow-user=eve --entitlements=network.host",
  );
  assert.match(
    entitlementHint({ ...alice, idleTimeoutSeconds: 90 }, ["device=gpu0"])!,
    /--entitlements=device,network\.host --timeout=1m30s$/,
  );
  assert.equal(entitlementHint(eve, ["unknown.thing"]), undefined);
  assert.equal(
    grantCommand("bob", "/home/bob/x", []),
    "sudo buildctl daemon start --root=/home/bob/x --allow-user=bob",
  );
});

Deno.test("rootId() is a stable 16-hex-digit id per root dir", async () => {
  const a = await rootId("/home/alice/bk");
  assert.match(a, /^[0-9a-f]{16}$/);
  assert.equal(a, await rootId("/home/alice/bk"));
  assert.notEqual(a, await rootId("/home/alice/bk2"));
});
