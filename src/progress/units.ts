/**
 * Number formatting shared by the progress displays and the du/prune tables:
 * byte sizes the way BuildKit's `units.Bytes` prints them with `%.2f`
 * (decimal units), Go-exact `%.Nf` rounding, and Go `Duration.Seconds()`.
 *
 * @module
 */

const DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB"] as const;

/**
 * Formats `x` with `prec` digits after the point exactly like Go's `%.Nf`:
 * the exact binary value is rounded, ties go to the even digit.
 *
 * @example Usage
 * ```ts
 * import { formatFixed } from "./units.ts";
 * formatFixed(0.125, 2); // "0.12" (JavaScript's toFixed gives "0.13")
 * ```
 */
export function formatFixed(x: number, prec: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "+Inf" : "-Inf";
  if (Math.abs(x) >= 1e21) return x.toFixed(prec);
  // toFixed(100) is the exact decimal expansion for every value this code
  // meets (anything that needs more digits is far below any rounding tie).
  const exact = Math.abs(x).toFixed(100);
  const dot = exact.indexOf(".");
  const intPart = exact.slice(0, dot);
  const frac = exact.slice(dot + 1);
  let kept = intPart + frac.slice(0, prec);
  const first = frac.charCodeAt(prec) - 48;
  const restNonZero = /[1-9]/.test(frac.slice(prec + 1));
  const lastKept = kept.charCodeAt(kept.length - 1) - 48;
  const roundUp = first > 5 || (first === 5 && (restNonZero || lastKept % 2 === 1));
  if (roundUp) kept = incrementDecimal(kept);
  const whole = kept.slice(0, kept.length - prec) || "0";
  let out = prec > 0 ? `${whole}.${kept.slice(kept.length - prec)}` : whole;
  if (x < 0 || Object.is(x, -0)) {
    // Go prints "-0.00" for negative values that round to zero, like C.
    out = "-" + out;
  }
  return out;
}

function incrementDecimal(digits: string): string {
  const arr = digits.split("");
  let i = arr.length - 1;
  while (i >= 0) {
    if (arr[i] === "9") {
      arr[i] = "0";
      i--;
    } else {
      arr[i] = String.fromCharCode(arr[i]!.charCodeAt(0) + 1);
      return arr.join("");
    }
  }
  return "1" + arr.join("");
}

/**
 * Formats a byte count as BuildKit's progress output does (`%.2f` of
 * `units.Bytes`): decimal units with two decimals from 1000 up
 * (`1.23kB`, `4.50MB`), plain integer bytes below (`123B`).
 *
 * @example Usage
 * ```ts
 * import { formatBytes } from "./units.ts";
 * formatBytes(92); // "92B"
 * formatBytes(4_500_000n); // "4.50MB"
 * ```
 */
export function formatBytes(n: number | bigint): string {
  let b: bigint;
  if (typeof n === "bigint") {
    b = n;
  } else if (Number.isFinite(n)) {
    b = BigInt(Math.trunc(n));
  } else {
    return `${n}B`;
  }
  const neg = b < 0n;
  const abs = neg ? -b : b;
  let i = 0;
  let base = 1n;
  while (i < DECIMAL_UNITS.length - 1 && abs >= base * 1000n) {
    base *= 1000n;
    i++;
  }
  if (i === 0) return `${b}B`;
  return formatFixed(Number(b) / Number(base), 2) + DECIMAL_UNITS[i];
}

/**
 * Converts a millisecond duration to seconds the way Go's
 * `Duration.Seconds()` does (whole seconds plus the remainder), so that
 * rounding of the result matches upstream output.
 */
export function durationSeconds(ms: number): number {
  const whole = Math.trunc(ms / 1000);
  const nsec = Math.round((ms - whole * 1000) * 1e6);
  return whole + nsec / 1e9;
}

/**
 * Formats a millisecond duration as `<seconds>s` with `prec` decimals
 * (Go `%.1fs` by default), e.g. `1.2s`.
 *
 * @example Usage
 * ```ts
 * import { formatDuration } from "./units.ts";
 * formatDuration(1234); // "1.2s"
 * ```
 */
export function formatDuration(ms: number, prec = 1): string {
  return `${formatFixed(durationSeconds(ms), prec)}s`;
}
