import assert from "node:assert/strict";
import { parseLauncherArgs } from "./main.ts";
import { LauncherError } from "./runtime.ts";

Deno.test("parseLauncherArgs() accepts exactly the documented shapes", () => {
  assert.deepEqual(parseLauncherArgs(["start"]), { verb: "start" });
  assert.deepEqual(parseLauncherArgs(["start", "--uid", "1001"]), { verb: "start", uid: 1001 });
  assert.deepEqual(parseLauncherArgs(["reload"]), { verb: "reload" });
  assert.deepEqual(parseLauncherArgs(["supervise", "0123456789abcdef"]), {
    verb: "supervise",
    id: "0123456789abcdef",
  });
});

Deno.test("parseLauncherArgs() refuses everything else with exit code 64", () => {
  for (
    const bad of [
      [],
      ["stop"],
      ["start", "x"],
      ["start", "--uid", "0"],
      ["start", "--uid", "-1"],
      ["start", "--uid", "4294967295"],
      ["start", "--uid=1001"],
      ["start", "--allow-insecure-entitlement", "security.insecure"],
      ["supervise", "../../etc"],
      ["start", "x".repeat(300)],
      Array(10).fill("start"),
    ]
  ) {
    try {
      parseLauncherArgs(bad);
      assert.fail(`accepted ${JSON.stringify(bad)}`);
    } catch (err) {
      assert.ok(err instanceof LauncherError);
      assert.equal(err.exitCode, 64);
    }
  }
});
