import assert from "node:assert/strict";
import { type Command, editDistance, parseArgv, renderHelp } from "./command.ts";
import { BuildctlError, ExitCode } from "../errors.ts";

const root: Command<unknown> = {
  name: "buildctl",
  usage: "test",
  flags: [
    { name: "addr", kind: "string", usage: "address" },
    { name: "debug", kind: "bool", usage: "debug" },
  ],
  subcommands: [
    {
      name: "du",
      usage: "disk usage",
      flags: [
        { name: "filter", short: "f", kind: "list", usage: "filter" },
        { name: "verbose", short: "v", kind: "bool", usage: "verbose" },
      ],
      action: () => Promise.resolve(0),
    },
    {
      name: "debug",
      usage: "debug",
      subcommands: [{ name: "workers", usage: "w", action: () => Promise.resolve(0) }],
    },
    {
      name: "daemon",
      usage: "d",
      subcommands: [{
        name: "start",
        usage: "s",
        acceptsArgs: true,
        action: () => Promise.resolve(0),
      }],
    },
  ],
};

function usage(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BuildctlError);
    assert.equal(err.exitCode, ExitCode.Usage);
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("parseArgv() accepts global flags before and after the command", () => {
  const a = parseArgv(root, [
    "--addr",
    "unix:///x",
    "du",
    "-f",
    "a=b",
    "--filter=c==d",
    "-v",
    "--debug",
  ]);
  assert.equal(a.kind, "run");
  if (a.kind !== "run") return;
  assert.equal(a.path, "buildctl du");
  assert.deepEqual(a.flags, { filter: ["a=b", "c==d"], verbose: true });
  assert.deepEqual(a.globals, { addr: "unix:///x", debug: true });
});

Deno.test("parseArgv() never splits repeatable flags on commas", () => {
  const a = parseArgv(root, ["du", "--filter", "type==regular,id~=abc"]);
  assert.ok(a.kind === "run");
  assert.deepEqual(a.flags["filter"], ["type==regular,id~=abc"]);
});

Deno.test("parseArgv() names an unknown flag and the command", () => {
  usage(() => parseArgv(root, ["du", "--nope"]), /unknown flag "--nope" for "buildctl du"/);
  usage(() => parseArgv(root, ["--bogus=1", "du"]), /unknown flag "--bogus" for "buildctl"/);
});

Deno.test("parseArgv() names an unknown command and suggests a close one", () => {
  assert.throws(() => parseArgv(root, ["dux"]), (err: unknown) => {
    assert.ok(err instanceof BuildctlError);
    assert.match(err.message, /unknown command "dux" for "buildctl"/);
    assert.match(err.hint ?? "", /did you mean "du"/);
    return true;
  });
  usage(
    () => parseArgv(root, ["debug", "wrokers2x"]),
    /unknown command "wrokers2x" for "buildctl debug"/,
  );
});

Deno.test("parseArgv() rejects a missing value and stray arguments", () => {
  usage(() => parseArgv(root, ["du", "--filter"]), /flag --filter needs a value/);
  usage(() => parseArgv(root, ["du", "extra"]), /"buildctl du" takes no arguments, got "extra"/);
  usage(
    () => parseArgv(root, ["du", "--verbose=maybe"]),
    /invalid value "maybe" for flag --verbose/,
  );
});

Deno.test("parseArgv() passes everything after -- to commands that take arguments", () => {
  const a = parseArgv(root, ["daemon", "start", "--", "--debug", "--oci-worker=false"]);
  assert.ok(a.kind === "run");
  assert.deepEqual(a.args, ["--debug", "--oci-worker=false"]);
  assert.equal(a.dashDashAt, 0);
});

Deno.test("parseArgv() returns help for --help anywhere and for a bare group", () => {
  assert.equal(parseArgv(root, ["du", "--help"]).kind, "help");
  assert.equal(parseArgv(root, ["-h"]).kind, "help");
  assert.equal(parseArgv(root, ["debug"]).kind, "help");
  assert.equal(parseArgv(root, ["--version"]).kind, "version");
});

Deno.test("renderHelp() lists commands, flags and global flags", () => {
  const text = renderHelp(root, root.subcommands![0]!, "buildctl du");
  assert.match(text, /buildctl du - disk usage/);
  assert.match(text, /-f, --filter value\s+filter \(repeatable\)/);
  assert.match(text, /GLOBAL OPTIONS/);
  assert.match(renderHelp(root, root, "buildctl"), /COMMANDS:\n\s+du\s+disk usage/);
});

Deno.test("editDistance() counts single-character edits", () => {
  assert.equal(editDistance("du", "du"), 0);
  assert.equal(editDistance("dux", "du"), 1);
  assert.equal(editDistance("prnue", "prune"), 2);
});
