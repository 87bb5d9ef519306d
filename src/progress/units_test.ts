import assert from "node:assert/strict";
import { durationSeconds, formatBytes, formatDuration, formatFixed } from "./units.ts";

Deno.test("formatBytes() prints integer bytes below 1000", () => {
  assert.equal(formatBytes(0), "0B");
  assert.equal(formatBytes(2), "2B");
  assert.equal(formatBytes(123), "123B");
  assert.equal(formatBytes(999), "999B");
  assert.equal(formatBytes(-123), "-123B");
});

Deno.test("formatBytes() uses decimal units with two decimals (go-units %.2f)", () => {
  assert.equal(formatBytes(1000), "1.00kB");
  assert.equal(formatBytes(1234), "1.23kB");
  assert.equal(formatBytes(4_500_000), "4.50MB");
  assert.equal(formatBytes(2_150_000n), "2.15MB");
  assert.equal(formatBytes(999_999), "1000.00kB"); // no carry into the next unit, like upstream
  assert.equal(formatBytes(3_150_000_000), "3.15GB");
  assert.equal(formatBytes(1_000_000_000_000n), "1.00TB");
  assert.equal(formatBytes(1_500_000_000_000_000n), "1.50PB");
  assert.equal(formatBytes(9_223_372_036_854_775_807n), "9.22EB");
  assert.equal(formatBytes(-1234), "-1.23kB");
  assert.equal(formatBytes(1234.9), "1.23kB");
});

Deno.test("formatFixed() rounds the exact binary value, ties to even, like Go", () => {
  assert.equal(formatFixed(0.125, 2), "0.12");
  assert.equal(formatFixed(0.375, 2), "0.38");
  assert.equal(formatFixed(2.5, 0), "2");
  assert.equal(formatFixed(3.5, 0), "4");
  assert.equal(formatFixed(0.05, 1), "0.1"); // 0.05 is slightly above 0.05 in binary
  assert.equal(formatFixed(0.25, 1), "0.2");
  assert.equal(formatFixed(9.9999, 3), "10.000");
  assert.equal(formatFixed(0, 1), "0.0");
  assert.equal(formatFixed(-0.001, 2), "-0.00");
  assert.equal(formatFixed(1.005, 2), "1.00"); // 1.005 is below 1.005 in binary
  assert.equal(formatFixed(Infinity, 1), "+Inf");
  assert.equal(formatFixed(NaN, 1), "NaN");
});

Deno.test("durationSeconds() splits whole seconds like Go's Duration.Seconds()", () => {
  assert.equal(durationSeconds(182), 0.182);
  assert.equal(durationSeconds(12345), 12.345);
  assert.equal(durationSeconds(-1500), -1.5);
});

Deno.test("formatDuration() prints seconds with one decimal by default", () => {
  assert.equal(formatDuration(1234), "1.2s");
  assert.equal(formatDuration(250), "0.2s");
  assert.equal(formatDuration(905 - 700), "0.2s");
  assert.equal(formatDuration(65_432, 2), "65.43s");
});
