import assert from "node:assert/strict";
import {
  parseAllow,
  parseCsvFields,
  parseExportCache,
  parseImportCache,
  parseKeyValues,
  parseOutput,
  parseSecret,
} from "./build.ts";
import { BuildctlError, ExitCode } from "../../errors.ts";

function usage(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BuildctlError, `expected BuildctlError, got ${err}`);
    assert.equal(err.exitCode, ExitCode.Usage);
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("parseCsvFields() reads quoted fields with commas and doubled quotes", () => {
  assert.deepEqual(parseCsvFields('type=image,"name=a,b",x=1', "--output"), [
    "type=image",
    "name=a,b",
    "x=1",
  ]);
  assert.deepEqual(parseCsvFields('"a=""q"""', "--output"), ['a="q"']);
  assert.deepEqual(parseCsvFields("a=1,", "--output"), ["a=1", ""]);
});

Deno.test("parseCsvFields() rejects an unterminated quote, naming the flag", () => {
  usage(() => parseCsvFields('type=local,"dest=x', "--output"), /--output .*unterminated quote/);
});

Deno.test("parseOutput() maps each exporter type to its client-side target", () => {
  assert.deepEqual(parseOutput("type=local,dest=out"), {
    type: "local",
    attrs: {},
    target: { kind: "dir", path: "out" },
  });
  assert.deepEqual(parseOutput("type=tar,dest=a.tar"), {
    type: "tar",
    attrs: {},
    target: { kind: "file", path: "a.tar" },
  });
  assert.deepEqual(parseOutput("type=tar"), { type: "tar", attrs: {}, target: { kind: "stdout" } });
  assert.deepEqual(parseOutput("type=oci,dest=-"), {
    type: "oci",
    attrs: {},
    target: { kind: "stdout" },
  });
  assert.deepEqual(parseOutput("type=oci,tar=false,dest=d"), {
    type: "oci",
    attrs: { tar: "false" },
    target: { kind: "dir", path: "d" },
  });
  assert.deepEqual(parseOutput('type=image,"name=a:1,b:2",push=true'), {
    type: "image",
    attrs: { name: "a:1,b:2", push: "true" },
    target: { kind: "none" },
  });
  assert.deepEqual(parseOutput("TYPE=cacheonly").type, "cacheonly");
});

Deno.test("parseOutput() errors name the flag and the value", () => {
  usage(() => parseOutput("dest=out"), /--output "dest=out".*requires type=<type>/);
  usage(() => parseOutput("type=local"), /output directory is required/);
  usage(() => parseOutput("type=image,dest=x"), /not supported by image exporter/);
  usage(() => parseOutput("type=local,output=x"), /you meant dest=x/);
  usage(() => parseOutput("type=nope,dest=x"), /unknown exporter type "nope"/);
  usage(() => parseOutput("type=local,dest"), /"dest" is not a key=value pair/);
  usage(() => parseOutput("type=local,dest=x,mode=zap"), /mode must be/);
});

Deno.test("parseExportCache() adds mode=min and accepts the legacy bare ref", () => {
  assert.deepEqual(parseExportCache("type=local,dest=c"), {
    type: "local",
    attrs: { dest: "c", mode: "min" },
    legacy: false,
  });
  assert.deepEqual(parseExportCache("type=inline,mode=max"), {
    type: "inline",
    attrs: { mode: "max" },
    legacy: false,
  });
  assert.deepEqual(parseExportCache("r.example/x:cache"), {
    type: "registry",
    attrs: { mode: "min", ref: "r.example/x:cache" },
    legacy: true,
  });
  usage(() => parseExportCache("type=local"), /--export-cache "type=local".*dest=DIR/);
  usage(() => parseExportCache("type=bogus,dest=x"), /unknown cache type "bogus"/);
  usage(() => parseExportCache("type=registry"), /ref=REF is required/);
});

Deno.test("parseImportCache() validates required attributes", () => {
  assert.deepEqual(parseImportCache("type=local,src=c"), {
    type: "local",
    attrs: { src: "c" },
    legacy: false,
  });
  usage(() => parseImportCache("type=local"), /--import-cache "type=local".*src=DIR/);
  usage(() => parseImportCache("type=registry,mode"), /"mode" is not a key=value pair/);
});

Deno.test("parseSecret() follows upstream's source rules", () => {
  const env = (k: string) => (k === "TOKEN" ? "x" : undefined);
  assert.deepEqual(parseSecret("id=s,src=/f", env), { id: "s", kind: "file", path: "/f" });
  assert.deepEqual(parseSecret("id=s,source=/f", env), { id: "s", kind: "file", path: "/f" });
  assert.deepEqual(parseSecret("id=s,env=TOKEN", env), { id: "s", kind: "env", name: "TOKEN" });
  assert.deepEqual(parseSecret("id=s,type=env,src=TOKEN", env), {
    id: "s",
    kind: "env",
    name: "TOKEN",
  });
  assert.deepEqual(parseSecret("id=TOKEN", env), { id: "TOKEN", kind: "env", name: "TOKEN" });
  assert.deepEqual(parseSecret("id=other", env), { id: "other", kind: "file", path: "other" });
  usage(() => parseSecret("id=s,bad=1", env), /--secret "id=s,bad=1": unexpected key "bad"/);
  usage(() => parseSecret("id=s,type=ssh", env), /unsupported secret type "ssh"/);
  usage(() => parseSecret("src", env), /must be a key=value pair/);
});

Deno.test("parseKeyValues() splits at the first = and names the flag on error", () => {
  assert.deepEqual([...parseKeyValues(["a=b=c", "context=."], "--opt")], [["a", "b=c"], [
    "context",
    ".",
  ]]);
  usage(() => parseKeyValues(["novalue"], "--local"), /--local "novalue": expected key=value/);
});

Deno.test("parseAllow() accepts only the entitlements buildkitd knows", () => {
  assert.deepEqual(
    parseAllow(["network.host", "security.insecure", "device", "device=gpu,alias=x"]),
    [
      "network.host",
      "security.insecure",
      "device",
      "device=gpu,alias=x",
    ],
  );
  usage(() => parseAllow(["network.none"]), /--allow "network.none": unknown entitlement/);
});
