// Expected lines are what Go's json.Encoder prints for buildkit's
// client.SolveStatus (json tags of client/graph.go and solver/pb) built
// from the same fixtures; they were checked by decoding and re-encoding
// this output with the upstream structs.

import assert from "node:assert/strict";
import { createDisplay } from "./mod.ts";
import { base64, encodeSolveStatus, goString, rfc3339Nano } from "./rawjson.ts";
import { BASIC, Capture, GROUPED, PULL, SPLIT, T0, WARNINGS } from "./_testdata.ts";

const A = "sha256:a000000000000000000000000000000000000000000000000000000000000000";

Deno.test("encodeSolveStatus() matches upstream rawjson for vertexes and statuses", () => {
  assert.equal(
    encodeSolveStatus(BASIC[0]!),
    `{"vertexes":[{"digest":"${A}","name":"[internal] load build definition from Dockerfile","started":"2024-01-01T00:00:00Z"}]}`,
  );
  assert.equal(
    encodeSolveStatus(BASIC[2]!),
    `{"vertexes":[{"digest":"${A}","name":"[internal] load build definition from Dockerfile","started":"2024-01-01T00:00:00Z","completed":"2024-01-01T00:00:00.03Z"}],` +
      `"statuses":[{"id":"transferring dockerfile","vertex":"${A}","current":92,"timestamp":"2024-01-01T00:00:00.02Z","started":"2024-01-01T00:00:00.005Z","completed":"2024-01-01T00:00:00.02Z"}]}`,
  );
  assert.equal(
    encodeSolveStatus(PULL[2]!),
    `{"statuses":[{"id":"sha256:0a2b","vertex":"sha256:j000000000000000000000000000000000000000000000000000000000000000","total":2150000,"current":0,"timestamp":"2024-01-01T00:00:00.1Z","started":"2024-01-01T00:00:00.1Z"}]}`,
  );
  assert.equal(
    encodeSolveStatus(GROUPED[0]!),
    `{"vertexes":[{"digest":"sha256:k000000000000000000000000000000000000000000000000000000000000000","name":"pulling image moby/buildkit","started":"2024-01-01T00:00:00Z","progressGroup":{"id":"pg1","name":"[internal] booting buildkit"}}]}`,
  );
});

Deno.test("encodeSolveStatus() encodes log data and warning bytes as base64", () => {
  assert.equal(
    encodeSolveStatus(SPLIT[1]!),
    `{"logs":[{"vertex":"sha256:i000000000000000000000000000000000000000000000000000000000000000","stream":1,"data":"Zmlyc3QgbGluZQpzZWNvbmQg","timestamp":"2024-01-01T00:00:01.5Z"}]}`,
  );
  assert.equal(
    encodeSolveStatus(WARNINGS[1]!),
    `{"warnings":[{"vertex":"${A}","level":1,"short":"SlNPTkFyZ3NSZWNvbW1lbmRlZDogSlNPTiBhcmd1bWVudHMgcmVjb21tZW5kZWQgZm9yIENNRA==",` +
      `"detail":["ZGV0YWlsIG9mIEpTT05BcmdzUmVjb21tZW5kZWQ6IEpTT04gYXJndW1lbnRzIHJlY29tbWVuZGVkIGZvciBDTUQ="],` +
      `"url":"https://docs.docker.com/go/dockerfile/rule/x/","sourceInfo":{"filename":"Dockerfile","data":"RlJPTSBhbHBpbmUK","language":"Dockerfile"},` +
      `"range":[{"start":{"line":3},"end":{"line":3}}]}]}`,
  );
});

Deno.test("encodeSolveStatus() applies Go's omitempty, null and escaping rules", () => {
  const out = encodeSolveStatus({
    vertexes: [{
      digest: "d",
      inputs: ["x"],
      name: 'a<b>&c\u2028\x01\t"',
      cached: true,
      error: "",
      started: new Date(Date.UTC(2024, 0, 1, 0, 0, 0, 120)),
      progressGroup: { id: "", name: "", weak: false },
    }],
    statuses: [{ ID: "", vertex: "", name: "n", current: 9007199254740993n, total: 0n }],
    logs: [{ vertex: "v", stream: 0n, msg: new Uint8Array() }],
    warnings: [{
      vertex: "",
      level: 0n,
      short: new Uint8Array(),
      detail: [new Uint8Array(), new Uint8Array([0xff])],
      url: "",
      ranges: [{}],
    }],
  });
  assert.equal(
    out,
    `{"vertexes":[{"digest":"d","inputs":["x"],"name":"a\\u003cb\\u003e\\u0026c\\u2028\\u0001\\t\\"","started":"2024-01-01T00:00:00.12Z","cached":true,"progressGroup":{}}],` +
      `"statuses":[{"id":"","name":"n","current":9007199254740993,"timestamp":"1970-01-01T00:00:00Z"}],` +
      `"logs":[{"vertex":"v","data":null,"timestamp":"1970-01-01T00:00:00Z"}],` +
      `"warnings":[{"detail":[null,"/w=="],"range":[{}]}]}`,
  );
  assert.equal(encodeSolveStatus({}), "{}");
});

Deno.test("encodeSolveStatus() encodes a warning's source definition with proto json names", () => {
  const out = encodeSolveStatus({
    warnings: [{
      vertex: "v",
      level: 1n,
      short: new TextEncoder().encode("w"),
      detail: [],
      url: "",
      info: {
        filename: "Dockerfile",
        data: new Uint8Array(),
        language: "",
        definition: {
          def: [new Uint8Array([1, 2])],
          metadata: {
            "sha256:b": { ignoreCache: true, description: { z: "1", a: "2" }, caps: {} },
          },
        },
      } as never,
      ranges: [],
    }],
  });
  assert.equal(
    out,
    `{"warnings":[{"vertex":"v","level":1,"short":"dw==","sourceInfo":{"filename":"Dockerfile",` +
      `"definition":{"def":["AQI="],"metadata":{"sha256:b":{"ignore_cache":true,"description":{"a":"2","z":"1"}}}}}}]}`,
  );
});

Deno.test("rfc3339Nano() trims fractional zeros like Go", () => {
  assert.equal(rfc3339Nano(new Date(T0)), "2024-01-01T00:00:00Z");
  assert.equal(rfc3339Nano(new Date(T0 + 500)), "2024-01-01T00:00:00.5Z");
  assert.equal(rfc3339Nano(new Date(T0 + 7)), "2024-01-01T00:00:00.007Z");
  assert.equal(rfc3339Nano(new Date(0)), "1970-01-01T00:00:00Z");
});

Deno.test("goString() and base64() helpers", () => {
  assert.equal(goString("<&>"), '"\\u003c\\u0026\\u003e"');
  assert.equal(base64(new TextEncoder().encode("hi\n")), "aGkK");
  assert.equal(base64(new Uint8Array(100_000)).length, 133_336);
});

Deno.test("rawjson display writes one line per update", async () => {
  const out = new Capture();
  const d = createDisplay("rawjson", { out, isTerminal: true, env: {}, shiftTimes: false });
  for (const u of BASIC) d.update(u);
  await d.close();
  const lines = out.text().split("\n");
  assert.equal(lines.length, BASIC.length + 1);
  assert.equal(lines.at(-1), "");
  assert.equal(lines[0], encodeSolveStatus(BASIC[0]!));
  for (const l of lines.slice(0, -1)) JSON.parse(l);
});

Deno.test("rawjson display shifts times onto the local clock by default", async () => {
  const out = new Capture();
  const local = Date.UTC(2030, 0, 1);
  const d = createDisplay("rawjson", { out, isTerminal: false, env: {}, now: () => local });
  d.update(BASIC[0]!);
  await d.close();
  assert.match(out.text(), /"started":"2030-01-01T00:00:00Z"/);
});

Deno.test("encodeSolveStatus() keeps the nanoseconds of protobuf Timestamps", () => {
  const t = { seconds: BigInt(T0 / 1000), nanos: 123_456_789 };
  assert.equal(rfc3339Nano(t), "2024-01-01T00:00:00.123456789Z");
  assert.equal(rfc3339Nano({ seconds: 0n, nanos: 1_000 }), "1970-01-01T00:00:00.000001Z");
  assert.equal(
    encodeSolveStatus({
      logs: [{ vertex: "v", stream: 2n, msg: new Uint8Array([104, 105]), timestamp: t }],
    }),
    `{"logs":[{"vertex":"v","stream":2,"data":"aGk=","timestamp":"2024-01-01T00:00:00.123456789Z"}]}`,
  );
});
