import assert from "node:assert/strict";
import {
  decodeGrpcMessage,
  encodeGrpcFrame,
  encodeGrpcMessage,
  parseGrpcFrames,
  readProtoFields,
  readRepeatedString,
  WireFormatError,
} from "./grpc_frames.ts";

/** Tiny protobuf writer for the tests. */
function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
function lenField(field: number, bytes: Uint8Array | string): number[] {
  const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return [...varint((field << 3) | 2), ...varint(b.length), ...b];
}
function msg(...parts: number[][]): Uint8Array {
  return new Uint8Array(parts.flat());
}

Deno.test("readRepeatedString() collects every occurrence of field 9 across other fields", () => {
  const solve = msg(
    lenField(1, "ref"),
    lenField(9, "network.host"),
    [...varint((11 << 3) | 0), 1], // Internal bool
    lenField(7, msg(lenField(1, "k"), lenField(2, "v"))), // map entry
    [...varint((16 << 3) | 0), ...varint(30)],
    [...varint((20 << 3) | 1), 1, 2, 3, 4, 5, 6, 7, 8], // fixed64
    [...varint((21 << 3) | 5), 1, 2, 3, 4], // fixed32
    lenField(9, "device=gpu0,alias=x"),
    lenField(14, new Uint8Array([1])),
  );
  assert.deepEqual(readRepeatedString(solve, 9), ["network.host", "device=gpu0,alias=x"]);
  assert.deepEqual(readRepeatedString(solve, 1), ["ref"]);
  assert.deepEqual(readRepeatedString(new Uint8Array(), 9), []);
});

Deno.test("readRepeatedString() ignores field 9 nested inside another message", () => {
  const nested = msg(lenField(2, msg(lenField(9, "security.insecure"))));
  assert.deepEqual(readRepeatedString(nested, 9), []);
});

Deno.test("readProtoFields() decodes varints up to 64 bits", () => {
  const m = msg([...varint((3 << 3) | 0), ...varint(0xffff_ffff_ffff_ffffn)]);
  assert.deepEqual([...readProtoFields(m)], [{
    field: 3,
    wireType: 0,
    value: 0xffff_ffff_ffff_ffffn,
  }]);
});

Deno.test("readRepeatedString() rejects malformed messages", async (t) => {
  const cases: [string, Uint8Array][] = [
    ["truncated length", msg([...varint((9 << 3) | 2), 10, 65])],
    ["truncated varint", msg([0x80])],
    [
      "varint longer than 10 bytes",
      msg([8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]),
    ],
    ["field number 0", msg([2, 0])],
    ["group wire type", msg([...varint((9 << 3) | 3)])],
    ["wire type 6", msg([...varint((9 << 3) | 6)])],
    ["field 9 as varint", msg([...varint((9 << 3) | 0), 1])],
    ["invalid UTF-8", msg(lenField(9, new Uint8Array([0xff, 0xfe])))],
    ["truncated fixed64", msg([...varint((2 << 3) | 1), 1, 2])],
    ["length beyond the buffer", msg([...varint((2 << 3) | 2), ...varint(2 ** 40)])],
  ];
  for (const [name, m] of cases) {
    await t.step(name, () => {
      assert.throws(() => readRepeatedString(m, 9), WireFormatError);
    });
  }
});

Deno.test("parseGrpcFrames() splits messages and enforces the size limit", () => {
  const a = encodeGrpcFrame(new Uint8Array([1, 2, 3]));
  const b = encodeGrpcFrame(new Uint8Array());
  const body = new Uint8Array([...a, ...b]);
  const frames = parseGrpcFrames(body, 16);
  assert.equal(frames.length, 2);
  assert.deepEqual([...frames[0]!.message], [1, 2, 3]);
  assert.equal(frames[0]!.compressed, false);
  assert.equal(frames[1]!.message.length, 0);
  assert.deepEqual(parseGrpcFrames(new Uint8Array(), 16), []);
  assert.throws(() => parseGrpcFrames(a, 2), WireFormatError);
  assert.throws(() => parseGrpcFrames(a.subarray(0, 6), 16), WireFormatError);
  assert.throws(() => parseGrpcFrames(a.subarray(0, 3), 16), WireFormatError);
  assert.throws(() => parseGrpcFrames(new Uint8Array([2, 0, 0, 0, 0]), 16), WireFormatError);
  assert.equal(parseGrpcFrames(new Uint8Array([1, 0, 0, 0, 1, 9]), 16)[0]!.compressed, true);
});

Deno.test("encodeGrpcMessage() percent-encodes newlines, % and non-ASCII and decodeGrpcMessage() reverses it", () => {
  const text = 'entitlement "security.insecure" 100% denied\nhint: sudo … start';
  const enc = encodeGrpcMessage(text);
  assert.match(enc, /^[\x20-\x7e]*$/);
  assert.ok(enc.includes("100%25"));
  assert.ok(enc.includes("%0A"));
  assert.equal(decodeGrpcMessage(enc), text);
  assert.equal(decodeGrpcMessage("50% off"), "50% off");
});
