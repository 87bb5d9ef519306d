import assert from "node:assert/strict";
import {
  dataFrames,
  Flag,
  frame,
  FRAME_HEADER_BYTES,
  frameLength,
  FrameSplitter,
  frameStream,
  FrameType,
  goawayPayload,
  headerFrames,
  setFrameStream,
  unpadded,
  writeFrameHeader,
} from "./h2_frames.ts";

Deno.test("FrameSplitter hands out whole frames however the bytes are chunked", () => {
  const frames = [
    frame(FrameType.SETTINGS, 0, 0),
    frame(FrameType.DATA, 0, 3, new Uint8Array(40_000).fill(1)),
    frame(FrameType.PING, 0, 0, new Uint8Array(8).fill(2)),
    frame(FrameType.DATA, Flag.END_STREAM, 5, new Uint8Array(3).fill(3)),
  ];
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let off = 0;
  for (const f of frames) {
    all.set(f, off);
    off += f.length;
  }
  for (const size of [1, 5, 9, 10, 17, 1000, 40_008, all.length]) {
    const s = new FrameSplitter();
    const got: Uint8Array[] = [];
    for (let i = 0; i < all.length; i += size) {
      s.push(all.subarray(i, i + size), (buf, o, len) => {
        got.push(buf.slice(o, o + FRAME_HEADER_BYTES + len));
      });
    }
    assert.deepEqual(got, frames, `chunk size ${size}`);
  }
});

Deno.test("FrameSplitter lets a streamer relay straddling DATA frames piecewise", () => {
  const frames = [
    frame(FrameType.SETTINGS, 0, 0),
    frame(FrameType.DATA, 0, 3, new Uint8Array(40_000).fill(1)),
    frame(FrameType.PING, 0, 0, new Uint8Array(8).fill(2)),
    frame(FrameType.DATA, Flag.END_STREAM, 5, new Uint8Array(20_000).fill(3)),
    frame(FrameType.DATA, 0, 7, new Uint8Array(0)),
  ];
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let off = 0;
  for (const f of frames) {
    all.set(f, off);
    off += f.length;
  }
  for (const size of [1, 5, 9, 10, 17, 1000, 40_008, all.length]) {
    const s = new FrameSplitter();
    const got: Uint8Array[] = [];
    let cur: number[] | undefined;
    let left = 0;
    const streamer = {
      begin: (buf: Uint8Array, o: number, len: number, avail: number) => {
        if (buf[o + 3] !== FrameType.DATA || cur) return false;
        assert.equal(frameLength(buf, o), len);
        cur = [...buf.subarray(o, o + FRAME_HEADER_BYTES + avail)];
        left = len - avail;
        return true;
      },
      payload: (buf: Uint8Array, start: number, end: number, last: boolean) => {
        assert.ok(cur);
        cur.push(...buf.subarray(start, end));
        left -= end - start;
        assert.equal(last, left === 0);
        if (last) {
          got.push(new Uint8Array(cur));
          cur = undefined;
        }
      },
    };
    for (let i = 0; i < all.length; i += size) {
      s.push(all.subarray(i, i + size), (buf, o, len) => {
        assert.equal(cur, undefined);
        got.push(buf.slice(o, o + FRAME_HEADER_BYTES + len));
      }, streamer);
    }
    assert.equal(cur, undefined);
    assert.deepEqual(got, frames, `chunk size ${size}`);
  }
});

Deno.test("frame helpers: stream ids, padding, splitting at 16 KiB", () => {
  const f = frame(FrameType.DATA, Flag.PADDED, 7, new Uint8Array([2, 9, 9, 0, 0]));
  assert.equal(frameStream(f, 0), 7);
  setFrameStream(f, 0, 0x7ffffff1);
  assert.equal(frameStream(f, 0), 0x7ffffff1);
  assert.deepEqual(unpadded(f, 0), new Uint8Array([9, 9]));
  const h = headerFrames(1, new Uint8Array(40_000), true);
  assert.equal(frameLength(h, 0), 16384);
  assert.equal(h[3], FrameType.HEADERS);
  assert.equal(h[4], Flag.END_STREAM);
  const last = h.length - FRAME_HEADER_BYTES - (40_000 - 2 * 16384);
  assert.equal(h[last + 3], FrameType.CONTINUATION);
  assert.equal(h[last + 4], Flag.END_HEADERS);
  const d = dataFrames(3, new Uint8Array(0), true);
  assert.equal(frameLength(d, 0), 0);
  assert.equal(d[4], Flag.END_STREAM);
});

Deno.test("writeFrameHeader and goawayPayload lay out RFC 9113 fields, reserved bits clear", () => {
  const buf = new Uint8Array(4 + FRAME_HEADER_BYTES);
  assert.equal(writeFrameHeader(buf, 4, 0x012345, FrameType.DATA, Flag.END_STREAM, 0xffffffff), 13);
  assert.deepEqual([...buf.subarray(4)], [0x01, 0x23, 0x45, 0, 1, 0x7f, 0xff, 0xff, 0xff]);
  assert.deepEqual(
    frame(FrameType.PING, 1, 0, new Uint8Array([9])),
    new Uint8Array([0, 0, 1, 6, 1, 0, 0, 0, 0, 9]),
  );
  assert.deepEqual(
    [...goawayPayload(0x80000005, 0x9, "hi")],
    [0, 0, 0, 5, 0, 0, 0, 9, 0x68, 0x69],
  );
  assert.deepEqual([...goawayPayload(7, 1)], [0, 0, 0, 7, 0, 0, 0, 1]);
});
