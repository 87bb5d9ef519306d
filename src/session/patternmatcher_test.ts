// Table-driven tests of the pattern matcher. Expected results were produced
// by moby/patternmatcher v0.6.1 itself (MatchesOrParentMatches) and are kept
// here as data.

import assert from "node:assert/strict";
import { BadPatternError, globMatch, PatternMatcher } from "./patternmatcher.ts";
import { cleanPath } from "../path.ts";

interface Case {
  patterns: string[];
  match: string[];
  noMatch: string[];
}

const CASES: Case[] = [
  { patterns: ["**"], match: ["file", "dir/file", "a/b/c"], noMatch: [] },
  { patterns: ["**/"], match: ["file", "dir/file"], noMatch: [] },
  { patterns: ["dir/**"], match: ["dir/file", "dir/a/b"], noMatch: ["dir", "dirx/file"] },
  { patterns: ["**/dir"], match: ["dir", "dir/file", "a/dir", "a/b/dir/c"], noMatch: ["adir"] },
  { patterns: ["**/dir2/*"], match: ["dir/dir2/file", "dir2/file"], noMatch: ["dir/dir2"] },
  { patterns: ["**file"], match: ["file", "dir/file", "dir/xfile"], noMatch: ["filex"] },
  { patterns: ["**/file*.txt"], match: ["dir/dir/file.txt", "file.txt"], noMatch: ["dir/file.go"] },
  { patterns: ["**/**/*.txt"], match: ["file.txt", "a/b/file.txt"], noMatch: ["a/file.txt2"] },
  {
    patterns: ["a**/*.txt"],
    match: ["a/file.txt", "a/dir/file.txt", "ab/file.txt"],
    noMatch: ["b/file.txt"],
  },
  { patterns: ["a/*.txt"], match: ["a/file.txt"], noMatch: ["a/dir/file.txt"] },
  { patterns: ["a[b-d]e"], match: ["ace"], noMatch: ["ae", "aae"] },
  { patterns: ["a[^b-d]e"], match: ["aze"], noMatch: ["abe"] },
  { patterns: [".*"], match: [".foo"], noMatch: ["foo", "a/.foo"] },
  { patterns: ["abc.def"], match: ["abc.def"], noMatch: ["abcdef", "abcZdef"] },
  { patterns: ["abc?def"], match: ["abcZdef"], noMatch: ["abcdef", "abc/def"] },
  { patterns: ["a\\*b"], match: ["a*b"], noMatch: ["axb"] },
  { patterns: ["a(b)c/def"], match: ["a(b)c/def"], noMatch: ["a(b)c/xyz"] },
  { patterns: ["a.|)$(}+{bc"], match: ["a.|)$(}+{bc"], noMatch: [] },
  { patterns: ["abc/**"], match: ["abc/def", "abc/def/ghi"], noMatch: ["abc"] },
  { patterns: ["foo"], match: ["foo", "foo/bar", "foo/bar/baz"], noMatch: ["foobar", "x/foo"] },
  { patterns: ["*"], match: ["a", "a/b", ".hidden"], noMatch: [] },
  { patterns: ["*/foo"], match: ["a/foo", "a/foo/bar"], noMatch: ["foo", "a/b/foo"] },
  {
    patterns: ["**/*.log", "!logs/keep.log"],
    match: ["a.log", "logs/a.log", "x/logs/keep.log"],
    noMatch: ["logs/keep.log"],
  },
  {
    patterns: ["build", "!build/keep"],
    match: ["build", "build/out.o"],
    noMatch: ["build/keep", "build/keep/me.txt"],
  },
  { patterns: ["*", "!a", "a/b"], match: ["a/b", "b"], noMatch: ["a", "a/c"] },
  {
    patterns: ["**", "!util/docker/web"],
    match: ["util/docker/x"],
    noMatch: ["util/docker/web/foo"],
  },
  {
    patterns: ["**", "!util/docker/web", "util/docker/web/foo"],
    match: ["util/docker/web/foo"],
    noMatch: ["util/docker/web/bar"],
  },
  { patterns: ["!a", "a"], match: ["a"], noMatch: ["b"] },
  { patterns: ["a", "!a", "a"], match: ["a"], noMatch: [] },
  {
    patterns: ["docs", "!docs/README.md"],
    match: ["docs", "docs/other.md"],
    noMatch: ["docs/README.md"],
  },
  { patterns: ["./a/../b/"], match: ["b", "b/c"], noMatch: ["a"] },
  { patterns: ["  spaced  "], match: ["spaced"], noMatch: [" spaced "] },
  { patterns: ["/abs"], match: ["/abs"], noMatch: ["abs"] },
  { patterns: ["é/*", "!é/keep"], match: ["é/x"], noMatch: ["é/keep", "é"] },
  { patterns: ["😀*"], match: ["😀.txt"], noMatch: ["x😀"] },
  { patterns: ["?"], match: ["é", "😀", "a"], noMatch: ["ab"] },
  { patterns: ["[[:digit:]]*"], match: ["1a"], noMatch: ["a1"] },
  { patterns: ["a\\db"], match: ["a5b"], noMatch: ["adb"] },
  { patterns: ["**/a/**/b"], match: ["a/b", "x/a/y/b", "a/x/y/b/c"], noMatch: ["b"] },
];

Deno.test("PatternMatcher.matchesOrParentMatches() agrees with moby/patternmatcher", () => {
  for (const c of CASES) {
    const pm = new PatternMatcher(c.patterns);
    for (const p of c.match) {
      assert.equal(
        pm.matchesOrParentMatches(p),
        true,
        `${JSON.stringify(c.patterns)} should match ${p}`,
      );
    }
    for (const p of c.noMatch) {
      assert.equal(
        pm.matchesOrParentMatches(p),
        false,
        `${JSON.stringify(c.patterns)} should not match ${p}`,
      );
    }
  }
});

/** Walks `path` top-down the way fsutil does, carrying per-pattern parent results. */
function walkMatch(pm: PatternMatcher, path: string): boolean {
  const parts = path.split("/");
  let info: boolean[] | undefined;
  let result = false;
  for (let i = 0; i < parts.length; i++) {
    [result, info] = pm.matchesUsingParentResults(parts.slice(0, i + 1).join("/"), info);
  }
  return result;
}

Deno.test("PatternMatcher.matchesUsingParentResults() carried down a walk gives the same answers", () => {
  for (const c of CASES) {
    if (c.patterns.some((p) => p.trim().startsWith("/"))) continue; // absolute paths never occur in a walk
    const pm = new PatternMatcher(c.patterns);
    for (const p of c.match) {
      assert.equal(walkMatch(pm, p), true, `${JSON.stringify(c.patterns)} should match ${p}`);
    }
    for (const p of c.noMatch) {
      assert.equal(walkMatch(pm, p), false, `${JSON.stringify(c.patterns)} should not match ${p}`);
    }
  }
});

Deno.test("PatternMatcher rejects invalid patterns like patternmatcher.New", () => {
  for (const bad of ["[", "a[", "[a-", "a\\", "[]a]x", "[^]"]) {
    assert.throws(() => new PatternMatcher([bad]), BadPatternError, bad);
  }
  assert.throws(() => new PatternMatcher(["!"]), /illegal exclusion pattern: "!"/);
  // Empty and blank patterns are dropped.
  assert.equal(new PatternMatcher(["", "   ", "a"]).patterns.length, 1);
});

Deno.test("PatternMatcher records exceptions and cleans patterns (before removing the !, as Go does)", () => {
  const pm = new PatternMatcher(["a/b/../c/", "!./x//y", "  z  "]);
  assert.deepEqual(pm.patterns.map((p) => [p.text, p.exclusion]), [
    ["a/c", false],
    ["./x/y", true],
    [
      "z",
      false,
    ],
  ]);
  assert.equal(pm.exclusions, true);
  assert.equal(new PatternMatcher(["a"]).exclusions, false);
});

Deno.test("cleanPath() behaves like Go's filepath.Clean", () => {
  const cases: [string, string][] = [
    ["", "."],
    [".", "."],
    ["a//b", "a/b"],
    ["a/./b/", "a/b"],
    ["a/../..", ".."],
    ["/../a", "/a"],
    ["./a/../b", "b"],
    ["/", "/"],
    ["!a/../b", "b"],
  ];
  for (const [input, want] of cases) assert.equal(cleanPath(input), want, input);
});

Deno.test("globMatch() behaves like Go's filepath.Match", () => {
  const yes: [string, string][] = [["*", "abc"], ["a*", "abc"], ["a?c", "abc"], ["[a-c]x", "bx"], [
    "[^a]x",
    "bx",
  ], [
    "\\*",
    "*",
  ], ["*.go", "x.go"]];
  const no: [string, string][] = [["*", "a/b"], ["a?c", "ac"], ["[a-c]x", "dx"], ["*.go", "x.goo"]];
  for (const [p, n] of yes) assert.equal(globMatch(p, n), true, `${p} ${n}`);
  for (const [p, n] of no) assert.equal(globMatch(p, n), false, `${p} ${n}`);
  assert.throws(() => globMatch("[", "x"), BadPatternError);
  assert.throws(() => globMatch("a[", "zzz"), BadPatternError); // even when the name cannot match
});
