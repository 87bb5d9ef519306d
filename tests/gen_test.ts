// Proves that src/gen is exactly what the pinned generator (scripts/gen.sh) produces
// from proto/, so nobody hand-edits generated code or forgets to regenerate.

import assert from "node:assert/strict";
import { REPO as ROOT } from "./_util/paths.ts";

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

Deno.test("scripts/gen.sh regenerates src/gen byte for byte from proto/ (no extra or missing files)", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "buildctl-gen-" });
  try {
    const res = await new Deno.Command("bash", {
      args: [`${ROOT}/scripts/gen.sh`, tmp],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(res.stderr);
    assert.equal(res.code, 0, `gen.sh failed:\n${stderr}`);

    const committed = await listFiles(`${ROOT}/src/gen`);
    const fresh = await listFiles(tmp);
    assert.deepEqual(fresh, committed, "file set of regenerated output differs from src/gen");
    for (const rel of committed) {
      const a = await Deno.readFile(`${ROOT}/src/gen/${rel}`);
      const b = await Deno.readFile(`${tmp}/${rel}`);
      assert.ok(
        a.length === b.length && a.every((v, i) => v === b[i]),
        `src/gen/${rel} differs from regenerated output; run scripts/gen.sh`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
