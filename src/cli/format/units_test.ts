import {
  formatBytes,
  formatBytesG,
  formatGoDuration,
  formatGoTime,
  goTimeString,
  parseGoDuration,
  RFC3339_NANO,
} from "./units.ts";

function eq(a: unknown, b: unknown): void {
  if (a !== b) throw new Error(`expected ${JSON.stringify(b)}, got ${JSON.stringify(a)}`);
}

Deno.test("formatBytes (%.2f): decimal units, integer bytes below 1000, half-even rounding", () => {
  const cases: [number, string][] = [
    [0, "0B"],
    [999, "999B"],
    [1000, "1.00kB"],
    [1125, "1.12kB"], // exact tie rounds to even (Go big.Float), not up
    [1135, "1.14kB"],
    [1234567, "1.23MB"],
    [4500000, "4.50MB"],
    [999999, "1000.00kB"],
    [12345678901, "12.35GB"],
    [-1234, "-1.23kB"],
  ];
  for (const [n, want] of cases) eq(formatBytes(n), want);
});

Deno.test("formatBytesG (%g)", () => {
  const cases: [number, string][] = [
    [999, "999B"],
    [1000, "1kB"],
    [1234, "1.234kB"],
    [1200, "1.2kB"],
    [512000000, "512MB"],
    [10000000000, "10GB"],
    [3145728, "3.145728MB"],
  ];
  for (const [n, want] of cases) eq(formatBytesG(n), want);
});

Deno.test("formatGoDuration", () => {
  const cases: [number | bigint, string][] = [
    [0, "0s"],
    [1, "1ns"],
    [1500, "1.5µs"],
    [100_000_000, "100ms"],
    [1_500_000_000, "1.5s"],
    [61_000_000_001, "1m1.000000001s"],
    [172_800_000_000_000, "48h0m0s"],
    [-1_500_000_000, "-1.5s"],
    [9223372036854775807n, "2562047h47m16.854775807s"],
  ];
  for (const [n, want] of cases) eq(formatGoDuration(n), want);
});

Deno.test("parseGoDuration", () => {
  eq(parseGoDuration("1h2m3.5s"), 3723500000000n);
  eq(parseGoDuration("-3m"), -180000000000n);
  eq(parseGoDuration("0"), 0n);
  const errs: [string, string][] = [
    ["abc", 'time: invalid duration "abc"'],
    ["", 'time: invalid duration ""'],
    ["1", 'time: missing unit in duration "1"'],
    ["1x", 'time: unknown unit "x" in duration "1x"'],
    ["2562048h", 'time: invalid duration "2562048h"'],
  ];
  for (const [s, msg] of errs) {
    let got = "";
    try {
      parseGoDuration(s);
    } catch (e) {
      got = (e as Error).message;
    }
    eq(got, msg);
  }
});

Deno.test("Go time formatting", () => {
  const t = { seconds: 1764429600n, nanos: 123456789 };
  eq(goTimeString(t), "2025-11-29 15:20:00.123456789 +0000 UTC");
  eq(goTimeString({ seconds: 0, nanos: 0 }), "1970-01-01 00:00:00 +0000 UTC");
  eq(
    goTimeString(new Date(Date.UTC(2026, 10, 29, 15, 20, 0, 120))),
    "2026-11-29 15:20:00.12 +0000 UTC",
  );
  eq(formatGoTime(t, RFC3339_NANO), "2025-11-29T15:20:00.123456789Z");
  // A fixed zone without abbreviation prints Go's numeric fallback for MST.
  const ist = { offsetSeconds: 19800, name: "" };
  eq(goTimeString(t, ist), "2025-11-29 20:50:00.123456789 +0530 +0530");
  eq(formatGoTime(t, RFC3339_NANO, ist), "2025-11-29T20:50:00.123456789+05:30");
  eq(formatGoTime(t, "Mon Jan _2 03:04:05PM 2006 .000"), "Sat Nov 29 03:20:00PM 2025 .123");
});
