/**
 * One source of truth for each binary's permissions: the named sets in
 * deno.json. These guards fail when a copy drifts or a script grants more.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO } from "./_util/paths.ts";
import { LAUNCHER_PERMISSION_SET } from "../src/daemon/grant.ts";

const config = JSON.parse(await Deno.readTextFile(join(REPO, "deno.json")));

Deno.test("the installed launcher's permission set is deno.json's launcher set", () => {
  assert.deepEqual(LAUNCHER_PERMISSION_SET, config.permissions.launcher);
});

Deno.test("the launcher gets no network and no environment; buildctl gets no FFI", () => {
  assert.equal(config.permissions.launcher.net, false);
  assert.equal(config.permissions.launcher.env, false);
  assert.notEqual(config.permissions.buildctl.ffi, true);
});

Deno.test("scripts and tasks run the entry points only with the named sets, never -A", async () => {
  const files = ["scripts/buildctl", "scripts/compile.sh", "scripts/test.sh", ".ci/run"];
  for (const f of files) {
    const text = await Deno.readTextFile(join(REPO, f));
    assert.doesNotMatch(text, /\s-A\s|--allow-all|--allow-(read|write|net|env|run|ffi|sys)\b/, f);
  }
  for (const [name, task] of Object.entries(config.tasks as Record<string, string>)) {
    assert.doesNotMatch(task, /\s-A\b|--allow-/, `task ${name}`);
  }
  assert.match(await Deno.readTextFile(join(REPO, "scripts/buildctl")), /-P=buildctl/);
  const compile = await Deno.readTextFile(join(REPO, "scripts/compile.sh"));
  assert.match(compile, /compile buildctl buildctl main\.ts/);
  assert.match(compile, /compile launcher buildkitd-launcher src\/launcher\/main\.ts/);
});

Deno.test("deno compile sees every module: no lazy dynamic imports in deno.json or compile.sh", async () => {
  // With them, compile leaves the modules that commands import on demand out of the binary.
  assert.ok(!(config.unstable ?? []).includes("lazy-dynamic-imports"), "deno.json unstable");
  const compile = await Deno.readTextFile(join(REPO, "scripts/compile.sh"));
  const commands = compile.split("\n").filter((l) => !l.trimStart().startsWith("#")).join("\n");
  assert.doesNotMatch(commands, /lazy-dynamic-imports/);
});

Deno.test("the launcher's import graph has no npm code and no generated or client modules", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "info",
      "--json",
      `--config=${join(REPO, "deno.json")}`,
      join(REPO, "src/launcher/main.ts"),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  const specifiers: string[] = info.modules.map((m: { specifier: string }) => m.specifier);
  assert.ok(specifiers.length > 3);
  for (const s of specifiers) {
    assert.ok(!s.startsWith("npm:"), s);
    assert.ok(s.startsWith("file://") || s.startsWith("node:"), s);
    assert.doesNotMatch(s, /\/src\/(gen|client|session|cli|progress)\//, s);
  }
});

Deno.test("scripts/compile.sh stops with a clear message when DENORT_BIN names no file", async () => {
  const out = await new Deno.Command("bash", {
    args: [join(REPO, "scripts/compile.sh")],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", DENORT_BIN: "/nonexistent/denort" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 1);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /DENORT_BIN=\/nonexistent\/denort does not exist/,
  );
});
