import assert from "node:assert/strict";
import { ADMIN_OPS, decodeResponse, encodeResponse, parseRequest, USER_OPS } from "./protocol.ts";

Deno.test("parseRequest() accepts the user operations and nothing else", () => {
  assert.deepEqual(parseRequest('{"op":"state"}', USER_OPS), { op: "state" });
  assert.deepEqual(parseRequest('{"op":"logs","bytes":100}', USER_OPS), { op: "logs", bytes: 100 });
  for (
    const bad of [
      '{"op":"reload"}',
      '{"op":"state","uid":0}',
      '{"op":"logs","bytes":0}',
      '{"op":"logs","bytes":1e9}',
      '{"op":"state","op":"stop"}',
      "[]",
      "",
      `{"op":"state","x":"${"a".repeat(5000)}"}`,
    ]
  ) {
    assert.throws(() => parseRequest(bad, USER_OPS), Error, bad);
  }
  assert.deepEqual(parseRequest('{"op":"reload"}', ADMIN_OPS), { op: "reload" });
});

Deno.test("encodeResponse() and decodeResponse() round-trip one line", () => {
  const line = encodeResponse({ ok: false, code: "PEER_NOT_ALLOWED", message: "no" });
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assert.deepEqual(decodeResponse(line.trim()), {
    ok: false,
    code: "PEER_NOT_ALLOWED",
    message: "no",
  });
  assert.throws(() => decodeResponse('{"state":1}'));
});
