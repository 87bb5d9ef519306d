import assert from "node:assert/strict";
import { parseStrictJson, StrictJsonError } from "./strict_json.ts";

const limits = { maxBytes: 1024, maxDepth: 3 };
const parse = (s: string) => parseStrictJson(new TextEncoder().encode(s), limits);

Deno.test("parseStrictJson() reads ordinary JSON like JSON.parse", () => {
  const s = '{"a": [1, -2, true, false, null, "x\\n\\u00e9\\ud83d\\ude00"], "b": {}}';
  assert.deepEqual(JSON.parse(JSON.stringify(parse(s))), JSON.parse(s));
});

Deno.test("parseStrictJson() refuses what JSON.parse would bend", async (t) => {
  const cases: [string, string | Uint8Array][] = [
    ["duplicate key", '{"a": 1, "a": 2}'],
    ["fraction", "1.5"],
    ["exponent", "1e3"],
    ["leading zero", "01"],
    ["minus zero", "-0"],
    ["unsafe integer", "9007199254740993"],
    ["too deep", "[[[[1]]]]"],
    ["BOM", new Uint8Array([0xef, 0xbb, 0xbf, 0x31])],
    ["raw NUL", new Uint8Array([0x22, 0x00, 0x22])],
    ["escaped NUL", '"\\u0000"'],
    ["control char", '"a\tb"'],
    ["invalid UTF-8", new Uint8Array([0x22, 0xc3, 0x28, 0x22])],
    ["trailing comma", "[1,]"],
    ["trailing data", "1 2"],
    ["single quotes", "'a'"],
    ["too large", `"${"x".repeat(2000)}"`],
    ["empty", ""],
  ];
  for (const [name, body] of cases) {
    await t.step(name, () =>
      assert.throws(
        () =>
          parseStrictJson(typeof body === "string" ? new TextEncoder().encode(body) : body, limits),
        StrictJsonError,
      ));
  }
});

Deno.test("parseStrictJson() objects have no prototype keys", () => {
  const o = parse('{"__proto__": {"x": 1}, "constructor": 2}') as Record<string, unknown>;
  assert.deepEqual(Object.keys(o), ["__proto__", "constructor"]);
  assert.equal(Object.getPrototypeOf(o), null);
});
