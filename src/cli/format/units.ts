/**
 * Go-compatible number, byte-size, duration and time formatting used by buildctl's output.
 *
 * - {@link formatBytes} mirrors `fmt.Sprintf("%.2f", units.Bytes(n))` (github.com/tonistiigi/units):
 *   decimal units (kB, MB, GB, ...) and a plain integer + `B` below 1000.
 * - {@link formatBytesG} mirrors `fmt.Sprintf("%g", units.Bytes(n))`.
 * - {@link formatGoDuration} / {@link parseGoDuration} mirror Go's `time.Duration.String()` and
 *   `time.ParseDuration`.
 * - {@link formatGoTime} mirrors Go's `time.Time.Format`, {@link goTimeString} `time.Time.String()`.
 *
 * @module
 */

/** A point in time with nanosecond precision (the shape of a protobuf Timestamp), or a JS Date. */
export type GoTime = Date | { seconds: bigint | number; nanos: number };

/** A fixed time zone used when formatting times (Go `*time.Location` with one offset). */
export interface GoZone {
  /** Offset east of UTC in seconds. */
  offsetSeconds: number;
  /** Abbreviation printed for `MST`; empty means Go's numeric fallback (`-0700`). */
  name: string;
}

/** The UTC zone, as used by `timestamppb.AsTime()` (all buildctl times are UTC). */
export const UTC: GoZone = { offsetSeconds: 0, name: "UTC" };

// ---------------------------------------------------------------------------
// Exact float formatting helpers

/** Exact decimal expansion of a finite non-negative double: digits and the decimal exponent. */
function exactDecimal(x: number): { digits: string; exp: number } {
  // Returns digits d1d2...dn and exp such that x = 0.d1d2...dn * 10^exp (no leading zeros).
  if (x === 0) return { digits: "", exp: 0 };
  const buf = new DataView(new ArrayBuffer(8));
  buf.setFloat64(0, x);
  const hi = buf.getUint32(0);
  const lo = buf.getUint32(4);
  const biasedExp = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e2: number;
  if (biasedExp === 0) {
    e2 = -1074;
  } else {
    mant |= 1n << 52n;
    e2 = biasedExp - 1075;
  }
  let intDigits: string;
  let fracLen = 0;
  if (e2 >= 0) {
    intDigits = (mant << BigInt(e2)).toString();
  } else {
    // mant / 2^k = mant * 5^k / 10^k
    const k = -e2;
    intDigits = (mant * 5n ** BigInt(k)).toString();
    fracLen = k;
  }
  // value = intDigits * 10^-fracLen
  const digits = intDigits.replace(/0+$/, "");
  return { digits, exp: intDigits.length - fracLen };
}

/** Round a digit string (0.d1d2... * 10^exp) to `n` digits, half to even (like Go's big/strconv). */
function roundDigits(digits: string, exp: number, n: number): { digits: string; exp: number } {
  if (n < 0) return { digits: "", exp };
  if (digits.length <= n) return { digits, exp };
  let roundUp: boolean;
  const d = digits.charCodeAt(n) - 48;
  if (d > 5) roundUp = true;
  else if (d < 5) roundUp = false;
  else if (n + 1 < digits.length) roundUp = true; // more non-zero digits follow (digits are trimmed)
  else roundUp = n > 0 && (digits.charCodeAt(n - 1) - 48) % 2 === 1;
  let kept = digits.slice(0, n);
  if (roundUp) {
    const arr = kept.split("").map((c) => c.charCodeAt(0) - 48);
    let i = arr.length - 1;
    while (i >= 0 && arr[i] === 9) {
      arr[i] = 0;
      i--;
    }
    if (i < 0) {
      arr.unshift(1);
      exp++;
    } else {
      arr[i]++;
    }
    kept = arr.join("");
  }
  return { digits: kept.replace(/0+$/, ""), exp };
}

/** Go `strconv.FormatFloat(x, 'f', prec, 64)` for finite values (exact, round half to even). */
export function formatFloatFixed(x: number, prec: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? "NaN" : x > 0 ? "+Inf" : "-Inf";
  const neg = x < 0 || Object.is(x, -0);
  const { digits: d0, exp: e0 } = exactDecimal(Math.abs(x));
  const { digits, exp } = roundDigits(d0, e0, e0 + prec);
  let intPart = "";
  if (exp <= 0) intPart = "0";
  else {
    for (let i = 0; i < exp; i++) intPart += i < digits.length ? digits[i] : "0";
  }
  let frac = "";
  for (let i = 0; i < prec; i++) {
    const idx = exp + i;
    frac += idx >= 0 && idx < digits.length ? digits[idx] : "0";
  }
  return (neg ? "-" : "") + intPart + (prec > 0 ? "." + frac : "");
}

/** Shortest round-trip digits of a finite positive double: 0.d1d2... * 10^exp. */
function shortestDigits(x: number): { digits: string; exp: number } {
  const s = x.toExponential(); // shortest round-trip digits, e.g. "1.2345e+3"
  const [m, e] = s.split("e");
  const digits = m.replace(".", "").replace(/0+$/, "");
  return { digits, exp: Number(e) + 1 };
}

function fmtExp(digits: string, exp: number, prec: number, upper = false): string {
  // d.ddd e±XX with `prec` digits after the point (digits padded with zeros).
  const first = digits.length > 0 ? digits[0] : "0";
  let rest = digits.slice(1);
  while (rest.length < prec) rest += "0";
  const e = digits.length === 0 ? 0 : exp - 1;
  const es = Math.abs(e) < 10 ? "0" + Math.abs(e) : String(Math.abs(e));
  return first + (prec > 0 ? "." + rest.slice(0, prec) : "") + (upper ? "E" : "e") +
    (e < 0 ? "-" : "+") + es;
}

function fmtF(digits: string, exp: number, prec: number): string {
  let intPart = "";
  if (exp <= 0) intPart = "0";
  else for (let i = 0; i < exp; i++) intPart += i < digits.length ? digits[i] : "0";
  let frac = "";
  for (let i = 0; i < prec; i++) {
    const idx = exp + i;
    frac += idx >= 0 && idx < digits.length ? digits[idx] : "0";
  }
  return intPart + (prec > 0 ? "." + frac : "");
}

/** Go `strconv.FormatFloat(x, fmt, prec, 64)` for 'e', 'f' and 'g' (prec -1 = shortest). */
export function formatGoFloat(x: number, fmt: "e" | "f" | "g" | "E" | "G", prec: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (!Number.isFinite(x)) return x > 0 ? "+Inf" : "-Inf";
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  let digits = "";
  let exp = 0;
  const shortest = prec < 0;
  const lower = fmt.toLowerCase();
  if (ax !== 0) {
    if (shortest) {
      ({ digits, exp } = shortestDigits(ax));
    } else {
      ({ digits, exp } = exactDecimal(ax));
      if (lower === "e") ({ digits, exp } = roundDigits(digits, exp, 1 + prec));
      else if (lower === "f") ({ digits, exp } = roundDigits(digits, exp, exp + prec));
      else ({ digits, exp } = roundDigits(digits, exp, prec === 0 ? 1 : prec));
    }
  }
  if (shortest) {
    if (lower === "e") prec = Math.max(digits.length - 1, 0);
    else if (lower === "f") prec = Math.max(digits.length - exp, 0);
    else prec = digits.length;
  } else if (lower === "g" && prec === 0) {
    prec = 1;
  }
  let out: string;
  if (lower === "e") {
    out = fmtExp(digits, exp, prec, fmt === "E");
  } else if (lower === "f") {
    out = fmtF(digits, exp, prec);
  } else {
    let eprec = prec;
    if (eprec > digits.length && digits.length >= exp) eprec = digits.length;
    if (shortest) eprec = 6;
    const e = exp - 1;
    if (e < -4 || e >= eprec) {
      if (prec > digits.length) prec = digits.length;
      out = fmtExp(digits, exp, Math.max(prec - 1, 0), fmt === "G");
    } else {
      if (prec > exp) prec = digits.length;
      out = fmtF(digits, exp, Math.max(prec - exp, 0));
    }
  }
  return (neg ? "-" : "") + out;
}

// ---------------------------------------------------------------------------
// Bytes (github.com/tonistiigi/units)

const decimalUnits = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

function bytesFloatValue(
  b: bigint,
): { value: number; unit: string } | { panic: string } | undefined {
  // Mirrors units.Bytes.floatValue, including int64 wrap-around of the unit (which makes Go index
  // past the unit table for values >= ~3.9EB and panic inside Format).
  let i = 0;
  let base = b < 0n ? -1n : 1n;
  for (let guard = 0; guard < 1000; guard++) {
    const next = BigInt.asIntN(64, base * 1000n);
    if ((base > 0n && b >= next) || (base < 0n && b <= next)) {
      i++;
      base = next;
      continue;
    }
    if (i === 0) return undefined;
    if (i >= decimalUnits.length) {
      return {
        panic: `runtime error: index out of range [${i}] with length ${decimalUnits.length}`,
      };
    }
    return { value: Number(b) / Math.abs(Number(base)), unit: decimalUnits[i] };
  }
  return undefined;
}

function toBigInt(n: number | bigint): bigint {
  return typeof n === "bigint" ? n : BigInt(Math.trunc(n));
}

/** `fmt.Sprintf("%.<prec>f", units.Bytes(n))`, e.g. `123B`, `1.23kB`, `4.50MB`. */
export function formatBytes(n: number | bigint, prec = 2): string {
  const b = toBigInt(n);
  const fv = bytesFloatValue(b);
  if (!fv) return b.toString() + "B";
  if ("panic" in fv) return `%!f(PANIC=Format method: ${fv.panic})`;
  return formatFloatFixed(fv.value, prec) + fv.unit;
}

/** `fmt.Sprintf("%g", units.Bytes(n))`, e.g. `512B`, `1.2kB`, `10GB`. */
export function formatBytesG(n: number | bigint): string {
  const b = toBigInt(n);
  const fv = bytesFloatValue(b);
  if (!fv) return b.toString() + "B";
  if ("panic" in fv) return `%!g(PANIC=Format method: ${fv.panic})`;
  return formatGoFloat(fv.value, "g", -1) + fv.unit;
}

// ---------------------------------------------------------------------------
// time.Duration

const NS_SECOND = 1_000_000_000n;

function fmtFrac(v: bigint, prec: number): { s: string; v: bigint } {
  // Mirrors Go's fmtFrac: fraction digits without trailing zeros, "." only when non-zero.
  let s = "";
  let print = false;
  for (let i = 0; i < prec; i++) {
    const digit = v % 10n;
    print = print || digit !== 0n;
    if (print) s = digit.toString() + s;
    v /= 10n;
  }
  if (print) s = "." + s;
  return { s, v };
}

/** Go `time.Duration(ns).String()`, e.g. `48h0m0s`, `1.5s`, `100ms`, `0s`. */
export function formatGoDuration(ns: number | bigint): string {
  let u = toBigInt(ns);
  const neg = u < 0n;
  if (neg) u = -u;
  let out: string;
  if (u < NS_SECOND) {
    if (u === 0n) return "0s";
    let prec: number;
    let unit: string;
    if (u < 1000n) {
      prec = 0;
      unit = "ns";
    } else if (u < 1_000_000n) {
      prec = 3;
      unit = "µs";
    } else {
      prec = 6;
      unit = "ms";
    }
    const f = fmtFrac(u, prec);
    out = f.v.toString() + f.s + unit;
  } else {
    const f = fmtFrac(u, 9);
    u = f.v;
    out = (u % 60n).toString() + f.s + "s";
    u /= 60n;
    if (u > 0n) {
      out = (u % 60n).toString() + "m" + out;
      u /= 60n;
      if (u > 0n) out = u.toString() + "h" + out;
    }
  }
  return (neg ? "-" : "") + out;
}

/** Go's time-package `quote` (used in ParseDuration errors). */
function timeQuote(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let out = '"';
  let i = 0;
  while (i < bytes.length) {
    const c = bytes[i];
    if (c >= 0x80 || c < 0x20) {
      // Escape the whole UTF-8 sequence byte by byte.
      let width = 1;
      if (c >= 0xf0) width = 4;
      else if (c >= 0xe0) width = 3;
      else if (c >= 0xc0) width = 2;
      for (let j = 0; j < width && i + j < bytes.length; j++) {
        out += "\\x" + bytes[i + j].toString(16).padStart(2, "0");
      }
      i += width;
      continue;
    }
    const ch = String.fromCharCode(c);
    if (ch === '"' || ch === "\\") out += "\\";
    out += ch;
    i++;
  }
  return out + '"';
}

const durationUnits: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  "µs": 1000n,
  "μs": 1000n,
  ms: 1_000_000n,
  s: NS_SECOND,
  m: 60n * NS_SECOND,
  h: 3600n * NS_SECOND,
};

const MAX_U63 = 1n << 63n;

/**
 * Go `time.ParseDuration`. Returns nanoseconds as a bigint; throws an Error with Go's message,
 * e.g. `time: invalid duration "abc"`.
 */
export function parseGoDuration(input: string): bigint {
  const orig = input;
  const fail = (msg: string): never => {
    throw new Error("time: " + msg + " " + timeQuote(orig));
  };
  let s = input;
  let d = 0n;
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  if (s === "") fail("invalid duration");
  const isDigit = (c: string) => c >= "0" && c <= "9";
  while (s !== "") {
    let v = 0n;
    let f = 0n;
    let scale = 1;
    if (!(s[0] === "." || isDigit(s[0]))) fail("invalid duration");
    // leading int
    let i = 0;
    for (; i < s.length && isDigit(s[i]); i++) {
      if (v > MAX_U63 / 10n) fail("invalid duration");
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > MAX_U63) fail("invalid duration");
    }
    const pre = i > 0;
    s = s.slice(i);
    let post = false;
    if (s !== "" && s[0] === ".") {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      for (; j < s.length && isDigit(s[j]); j++) {
        if (overflow) continue;
        if (f > (MAX_U63 - 1n) / 10n) {
          overflow = true;
          continue;
        }
        const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
        if (y > MAX_U63) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) fail("invalid duration");
    let k = 0;
    while (k < s.length && !(s[k] === "." || isDigit(s[k]))) k++;
    if (k === 0) fail("missing unit in duration");
    const u = s.slice(0, k);
    s = s.slice(k);
    const unit = durationUnits[u];
    if (unit === undefined) fail("unknown unit " + timeQuote(u) + " in duration");
    if (v > MAX_U63 / unit) fail("invalid duration");
    v *= unit;
    if (f > 0n) {
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > MAX_U63) fail("invalid duration");
    }
    d += v;
    if (d > MAX_U63) fail("invalid duration");
  }
  if (neg) return -d;
  if (d > MAX_U63 - 1n) fail("invalid duration");
  return d;
}

// ---------------------------------------------------------------------------
// time.Time

/** Normalises a {@link GoTime} to whole Unix seconds and nanoseconds in [0, 1e9). */
export function goTimeParts(t: GoTime): { sec: bigint; nsec: number } {
  if (t instanceof Date) {
    const ms = t.getTime();
    const sec = Math.floor(ms / 1000);
    return { sec: BigInt(sec), nsec: (ms - sec * 1000) * 1_000_000 };
  }
  let sec = typeof t.seconds === "bigint" ? t.seconds : BigInt(Math.trunc(t.seconds));
  let nsec = Math.trunc(t.nanos);
  if (nsec < 0 || nsec >= 1e9) {
    const adj = Math.floor(nsec / 1e9);
    sec += BigInt(adj);
    nsec -= adj * 1e9;
  }
  return { sec, nsec };
}

/**
 * The local zone like Go's `time.Local` (best effort): uses the JS offset for the instant, named
 * "UTC" when the offset is 0, otherwise unnamed (so `MST` prints the numeric `-0700` fallback).
 */
export function localZone(t: GoTime): GoZone {
  const { sec } = goTimeParts(t);
  const offsetSeconds = -new Date(Number(sec) * 1000).getTimezoneOffset() * 60;
  return { offsetSeconds, name: offsetSeconds === 0 ? "UTC" : "" };
}

const longDays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const longMonths = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

function civil(secs: bigint): {
  year: number;
  month: number;
  day: number;
  hour: number;
  min: number;
  sec: number;
  wday: number;
  yday: number;
} {
  const days = Number(secs >= 0n ? secs / 86400n : -((-secs + 86399n) / 86400n));
  const rem = Number(secs - BigInt(days) * 86400n);
  // Civil from days (Howard Hinnant's algorithm).
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const wday = ((days % 7) + 7 + 4) % 7; // 1970-01-01 was a Thursday
  const isLeap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
  const yday = cum[month - 1] + day + (isLeap && month > 2 ? 1 : 0);
  return {
    year,
    month,
    day,
    hour: Math.floor(rem / 3600),
    min: Math.floor((rem % 3600) / 60),
    sec: rem % 60,
    wday,
    yday,
  };
}

function pad(n: number, w: number): string {
  const neg = n < 0;
  let s = String(Math.abs(n));
  while (s.length < w) s = "0" + s;
  return (neg ? "-" : "") + s;
}

/** The layout of Go's `time.Time.String()`. */
export const GO_TIME_STRING_LAYOUT = "2006-01-02 15:04:05.999999999 -0700 MST";
/** Go's `time.RFC3339Nano` layout (used by encoding/json). */
export const RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00";

/** Go `time.Time.Format(layout)` for the common layout elements, in the given fixed zone. */
export function formatGoTime(t: GoTime, layout: string, zone: GoZone = UTC): string {
  const { sec, nsec } = goTimeParts(t);
  const c = civil(sec + BigInt(zone.offsetSeconds));
  let out = "";
  let i = 0;
  const L = layout;
  const startsLower = (s: string) => s.length > 0 && s[0] >= "a" && s[0] <= "z";
  const tz = (
    kind:
      | "num"
      | "colon"
      | "short"
      | "iso"
      | "isocolon"
      | "isoshort"
      | "numsec"
      | "colonsec"
      | "isosec"
      | "isocolonsec",
  ) => {
    const off = zone.offsetSeconds;
    if (off === 0 && kind.startsWith("iso")) return "Z";
    const z = Math.abs(off);
    const sign = off < 0 ? "-" : "+";
    const hh = pad(Math.floor(z / 3600), 2);
    const mm = pad(Math.floor((z % 3600) / 60), 2);
    const ss = pad(z % 60, 2);
    switch (kind) {
      case "short":
      case "isoshort":
        return sign + hh;
      case "colon":
      case "isocolon":
        return sign + hh + ":" + mm;
      case "numsec":
      case "isosec":
        return sign + hh + mm + ss;
      case "colonsec":
      case "isocolonsec":
        return sign + hh + ":" + mm + ":" + ss;
      default:
        return sign + hh + mm;
    }
  };
  while (i < L.length) {
    const rest = L.slice(i);
    const ch = L[i];
    let matched = true;
    if (rest.startsWith("January")) {
      out += longMonths[c.month - 1];
      i += 7;
    } else if (rest.startsWith("Jan") && !startsLower(L.slice(i + 3))) {
      out += longMonths[c.month - 1].slice(0, 3);
      i += 3;
    } else if (rest.startsWith("Monday")) {
      out += longDays[c.wday];
      i += 6;
    } else if (rest.startsWith("Mon") && !startsLower(L.slice(i + 3))) {
      out += longDays[c.wday].slice(0, 3);
      i += 3;
    } else if (rest.startsWith("MST")) {
      out += zone.name !== "" ? zone.name : tz("num");
      i += 3;
    } else if (ch === "0" && rest.length >= 2 && rest[1] >= "1" && rest[1] <= "6") {
      const k = rest[1];
      if (k === "1") out += pad(c.month, 2);
      else if (k === "2") out += pad(c.day, 2);
      else if (k === "3") out += pad(c.hour % 12 === 0 ? 12 : c.hour % 12, 2);
      else if (k === "4") out += pad(c.min, 2);
      else if (k === "5") out += pad(c.sec, 2);
      else out += pad(((c.year % 100) + 100) % 100, 2);
      i += 2;
    } else if (rest.startsWith("002")) {
      out += pad(c.yday, 3);
      i += 3;
    } else if (rest.startsWith("15")) {
      out += pad(c.hour, 2);
      i += 2;
    } else if (ch === "1") {
      out += String(c.month);
      i += 1;
    } else if (rest.startsWith("2006")) {
      out += c.year >= 0 && c.year < 10000 ? pad(c.year, 4) : String(c.year);
      i += 4;
    } else if (ch === "2") {
      out += String(c.day);
      i += 1;
    } else if (rest.startsWith("_2") && !rest.startsWith("_2006")) {
      out += c.day < 10 ? " " + c.day : String(c.day);
      i += 2;
    } else if (rest.startsWith("__2")) {
      out += String(c.yday).padStart(3, " ");
      i += 3;
    } else if (ch === "3") {
      out += String(c.hour % 12 === 0 ? 12 : c.hour % 12);
      i += 1;
    } else if (ch === "4") {
      out += String(c.min);
      i += 1;
    } else if (ch === "5") {
      out += String(c.sec);
      i += 1;
    } else if (rest.startsWith("PM")) {
      out += c.hour >= 12 ? "PM" : "AM";
      i += 2;
    } else if (rest.startsWith("pm")) {
      out += c.hour >= 12 ? "pm" : "am";
      i += 2;
    } else if (rest.startsWith("-070000")) {
      out += tz("numsec");
      i += 7;
    } else if (rest.startsWith("-07:00:00")) {
      out += tz("colonsec");
      i += 9;
    } else if (rest.startsWith("-0700")) {
      out += tz("num");
      i += 5;
    } else if (rest.startsWith("-07:00")) {
      out += tz("colon");
      i += 6;
    } else if (rest.startsWith("-07")) {
      out += tz("short");
      i += 3;
    } else if (rest.startsWith("Z070000")) {
      out += tz("isosec");
      i += 7;
    } else if (rest.startsWith("Z07:00:00")) {
      out += tz("isocolonsec");
      i += 9;
    } else if (rest.startsWith("Z0700")) {
      out += tz("iso");
      i += 5;
    } else if (rest.startsWith("Z07:00")) {
      out += tz("isocolon");
      i += 6;
    } else if (rest.startsWith("Z07")) {
      out += tz("isoshort");
      i += 3;
    } else if (
      (ch === "." || ch === ",") && rest.length > 1 && (rest[1] === "0" || rest[1] === "9")
    ) {
      const d = rest[1];
      let j = 1;
      while (j < rest.length && rest[j] === d) j++;
      if (j < rest.length && rest[j] >= "0" && rest[j] <= "9") {
        matched = false;
      } else {
        const n = j - 1;
        let frac = pad(nsec, 9).slice(0, Math.min(n, 9));
        if (d === "9") {
          frac = frac.replace(/0+$/, "");
          if (frac !== "") out += ch + frac;
        } else {
          out += ch + frac;
        }
        i += j;
      }
    } else {
      matched = false;
    }
    if (!matched) {
      out += ch;
      i += 1;
    }
  }
  return out;
}

/** Go `time.Time.String()` ("2006-01-02 15:04:05.999999999 -0700 MST"), UTC by default. */
export function goTimeString(t: GoTime, zone: GoZone = UTC): string {
  return formatGoTime(t, GO_TIME_STRING_LAYOUT, zone);
}
