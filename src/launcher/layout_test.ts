import assert from "node:assert/strict";
import {
  launcherCommand,
  type Layout,
  parseLayout,
  serializeLayout,
  wrapperScript,
} from "./layout.ts";

const layout: Layout = {
  version: 1,
  prefix: "/usr/local/libexec/buildctl-deno",
  config: "/etc/buildctl-deno/launcher.json",
  runDir: "/run/buildctl-deno",
  logDir: "/var/log/buildctl-deno",
  sudoers: "/etc/sudoers.d/buildctl-deno",
  mode: "source",
};

Deno.test("wrapperScript() rebuilds the environment from constants and runs -P=launcher", () => {
  const s = wrapperScript(layout);
  assert.match(s, /^#!\/bin\/sh\n/);
  assert.match(s, /^umask 077$/m);
  assert.match(s, /^ulimit -c 0$/m);
  assert.match(s, /exec \/usr\/bin\/env -i \\\n/);
  assert.match(s, /DENO_DIR=\/usr\/local\/libexec\/buildctl-deno\/cache/);
  assert.match(s, /"SUDO_UID=\$\{SUDO_UID-\}"/);
  assert.match(
    s,
    / \/usr\/local\/libexec\/buildctl-deno\/bin\/deno run --quiet --no-prompt --no-lock --config=\/usr\/local\/libexec\/buildctl-deno\/lib\/deno\.json -P=launcher \/usr\/local\/libexec\/buildctl-deno\/lib\/src\/launcher\/main\.ts "\$@"$/m,
  );
  assert.doesNotMatch(s, /SSLKEYLOGFILE|LD_|DENO_[A-Z_]*=\$/);
});

Deno.test("launcherCommand() runs the compiled binary directly in compiled mode", () => {
  assert.deepEqual(launcherCommand({ ...layout, mode: "compiled" }, ["start"]), [
    "/usr/local/libexec/buildctl-deno/bin/buildkitd-launcher",
    ["start"],
  ]);
});

Deno.test("parseLayout() reads back serializeLayout() and refuses odd paths", () => {
  assert.deepEqual(parseLayout(new TextEncoder().encode(serializeLayout(layout))), layout);
  for (const bad of [{ prefix: "/opt/x y" }, { runDir: "run" }, { mode: "other" }, { extra: 1 }]) {
    assert.throws(() =>
      parseLayout(new TextEncoder().encode(JSON.stringify({ ...layout, ...bad })))
    );
  }
});
