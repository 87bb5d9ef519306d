import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import * as node from "node:path";
import { basename, dirname, fromFileUrl, join, normalize, resolve } from "./path.ts";

const SAMPLES = [
  "",
  ".",
  "..",
  "/",
  "//",
  "a",
  "a/",
  "/a",
  "/a/",
  "a//b",
  "a/./b",
  "a/../b",
  "../a/../../b",
  "/../a",
  "/a/b/../../..",
  "a/b/c/",
  "./a",
  "/a/b//",
  "ünï/cödé",
  "a/..",
  "a/../",
];

Deno.test("normalize, dirname and basename agree with node:path", () => {
  for (const s of SAMPLES) {
    assertEquals(normalize(s), node.posix.normalize(s), `normalize(${JSON.stringify(s)})`);
    assertEquals(dirname(s), node.posix.dirname(s), `dirname(${JSON.stringify(s)})`);
    assertEquals(basename(s), node.posix.basename(s), `basename(${JSON.stringify(s)})`);
  }
});

Deno.test("join agrees with node:path", () => {
  const cases: string[][] = [
    [],
    [""],
    ["", ""],
    ["a", "b"],
    ["/a", "b", "../c"],
    ["/a/", "/b/"],
    ["a", "", "b"],
    ["/", ".."],
    ["a", ".."],
    ["/x", ""],
    ["..", "a"],
    ["/r", "blobs", "sha256", "abc"],
  ];
  for (const c of cases) assertEquals(join(...c), node.posix.join(...c), JSON.stringify(c));
  for (const a of SAMPLES) {
    for (const b of SAMPLES) assertEquals(join(a, b), node.posix.join(a, b), `join(${a}, ${b})`);
  }
});

Deno.test("resolve agrees with node:path", () => {
  const cases: string[][] = [
    [],
    [""],
    ["a"],
    ["a/"],
    ["/a", "b"],
    ["/a", "/b", "c/.."],
    ["x", "/y/", "z/"],
    ["..", ".."],
    ["/"],
    ["/a/../../.."],
  ];
  for (const c of cases) assertEquals(resolve(...c), node.posix.resolve(...c), JSON.stringify(c));
});

Deno.test("fromFileUrl decodes and refuses other schemes", () => {
  assertEquals(fromFileUrl("file:///a%20b/c%C3%A9.ts"), "/a b/cé.ts");
  assertThrows(() => fromFileUrl("https://example.com/x"), TypeError);
});
