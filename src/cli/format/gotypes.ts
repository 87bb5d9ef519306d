/**
 * Minimal Go type descriptors so templates, `fmt`-style printing and `encoding/json` can treat plain
 * TypeScript data like the Go structs upstream buildctl uses.
 *
 * JS representation of Go values:
 * - string/bool kinds: string/boolean; int kinds: number or bigint; float64: number;
 * - `time.Duration`: nanoseconds (number or bigint); `time.Time`: {@link GoTime};
 * - pointer, slice, map: `null`/`undefined` is Go `nil`, otherwise the element / array / record;
 * - struct: an object keyed by the Go field names.
 *
 * @module
 */

import {
  formatGoDuration,
  formatGoFloat,
  formatGoTime,
  type GoTime,
  goTimeString,
  RFC3339_NANO,
} from "./units.ts";

/** A struct field: Go name, json name (from the tag), omitempty and its type. */
export interface GoField {
  name: string;
  json: string;
  omitempty?: boolean;
  type: GoType;
}

/** A Go type descriptor. `name` is the printed (qualified) type name, e.g. `client.UsageInfo`. */
export type GoType =
  | { kind: "string"; name?: string }
  | { kind: "bool"; name?: string }
  | { kind: "int"; name?: string }
  | { kind: "float"; name?: string }
  | { kind: "duration" }
  | { kind: "time" }
  | { kind: "ptr"; elem: GoType }
  | { kind: "slice"; elem: GoType; nil?: NilMode }
  | { kind: "map"; key: GoType; elem: GoType; nil?: NilMode }
  | { kind: "struct"; name: string; fields: GoField[] }
  | { kind: "any" };

/** Go `string`. */
export const tString: GoType = { kind: "string" };
/** Go `bool`. */
export const tBool: GoType = { kind: "bool" };
/** Go `int`. */
export const tInt: GoType = { kind: "int", name: "int" };
/** Go `int64`. */
export const tInt64: GoType = { kind: "int", name: "int64" };
/** Go `float64`. */
export const tFloat64: GoType = { kind: "float", name: "float64" };
/** Go `time.Time`. */
export const tTime: GoType = { kind: "time" };
/** Go `time.Duration`. */
export const tDuration: GoType = { kind: "duration" };
/** Go `any` (interface{}). */
export const tAny: GoType = { kind: "any" };
/** Go `*T`. */
export const ptrTo = (elem: GoType): GoType => ({ kind: "ptr", elem });
/** Go `[]T`. */
export const sliceOf = (elem: GoType): GoType => ({ kind: "slice", elem });
/** Go `map[K]V`. */
export const mapOf = (key: GoType, elem: GoType): GoType => ({ kind: "map", key, elem });

/**
 * How JS values map to Go nil for slices/maps coming from protobuf (where "empty" and "absent" are
 * indistinguishable in JS): `"ifEmpty"` = an empty array/record is Go nil (JSON `null`), as for
 * fields copied straight from a decoded protobuf message; `"never"` = never nil (JSON `[]`/`{}`),
 * as for slices built with `make`. Default: only `null`/`undefined` is nil.
 */
export type NilMode = "ifEmpty" | "never";

/** Go `[]T` with a {@link NilMode}. */
export const sliceOfNil = (elem: GoType, nil: NilMode): GoType => ({ kind: "slice", elem, nil });
/** Go `map[K]V` with a {@link NilMode}. */
export const mapOfNil = (key: GoType, elem: GoType, nil: NilMode): GoType => ({
  kind: "map",
  key,
  elem,
  nil,
});

/** A typed Go value; `type === undefined` is Go's invalid reflect.Value ("<no value>"). */
export interface GoValue {
  type?: GoType;
  value: unknown;
}

/** Wraps a JS value with a Go type. */
export function goValue(type: GoType, value: unknown): GoValue {
  return { type, value };
}

/** The invalid (missing) value. */
export const noValue: GoValue = { type: undefined, value: undefined };

/** Go's `reflect.Type.String()` for a descriptor. */
export function typeName(t: GoType | undefined): string {
  if (!t) return "<nil>";
  switch (t.kind) {
    case "string":
      return t.name ?? "string";
    case "bool":
      return t.name ?? "bool";
    case "int":
      return t.name ?? "int";
    case "float":
      return t.name ?? "float64";
    case "duration":
      return "time.Duration";
    case "time":
      return "time.Time";
    case "ptr":
      return "*" + typeName(t.elem);
    case "slice":
      return "[]" + typeName(t.elem);
    case "map":
      return "map[" + typeName(t.key) + "]" + typeName(t.elem);
    case "struct":
      return t.name;
    case "any":
      return "interface {}";
  }
}

/** Whether a JS value represents Go nil for a nilable kind. */
export function isNilJS(v: unknown): boolean {
  return v === null || v === undefined;
}

/** Resolves `any`-typed values to their dynamic type (numbers → int/float64, etc.). */
export function dynamic(v: GoValue): GoValue {
  if (!v.type || v.type.kind !== "any") return v;
  const x = v.value;
  if (x === null || x === undefined) return noValue;
  if (typeof x === "string") return goValue(tString, x);
  if (typeof x === "boolean") return goValue(tBool, x);
  if (typeof x === "bigint") return goValue(tInt, x);
  if (typeof x === "number") return goValue(Number.isInteger(x) ? tInt : tFloat64, x);
  if (x instanceof Date) return goValue(tTime, x);
  if (Array.isArray(x)) return goValue(sliceOf(tAny), x);
  return goValue(mapOf(tString, tAny), x);
}

/** Go's `reflect.Value.IsZero`-style emptiness used by encoding/json omitempty. */
function isEmptyForJSON(t: GoType, v: unknown): boolean {
  switch (t.kind) {
    case "string":
      return v === "" || v === undefined || v === null;
    case "bool":
      return !v;
    case "int":
    case "float":
    case "duration":
      return v === undefined || v === null || v === 0 || v === 0n;
    case "ptr":
    case "any":
      return isNilJS(v);
    case "slice":
      return isNilJS(v) || (v as unknown[]).length === 0;
    case "map":
      return isNilJS(v) || Object.keys(v as object).length === 0;
    default:
      return false;
  }
}

/** Sorts map keys as Go's fmt and encoding/json do (byte-wise for strings). */
export function sortedMapKeys(m: Record<string, unknown>): string[] {
  const enc = new TextEncoder();
  return Object.keys(m).sort((a, b) => {
    const x = enc.encode(a);
    const y = enc.encode(b);
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  });
}

function jsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (c < 0x20) {
      if (ch === "\b") out += "\\b";
      else if (ch === "\f") out += "\\f";
      else if (ch === "\n") out += "\\n";
      else if (ch === "\r") out += "\\r";
      else if (ch === "\t") out += "\\t";
      else out += "\\u00" + c.toString(16).padStart(2, "0");
    } else if (c === 0x2028 || c === 0x2029) out += "\\u" + c.toString(16);
    else if (c >= 0xd800 && c <= 0xdfff) out += "\\ufffd"; // lone surrogate = invalid UTF-8
    else out += ch;
  }
  return out + '"';
}

function jsonFloat(f: number): string {
  if (!Number.isFinite(f)) throw new Error(`json: unsupported value: ${formatGoFloat(f, "g", -1)}`);
  const abs = Math.abs(f);
  let fmt: "f" | "e" = "f";
  if (abs !== 0 && (abs < 1e-6 || abs >= 1e21)) fmt = "e";
  let s = formatGoFloat(f, fmt, -1);
  if (fmt === "e") {
    // clean up e-09 to e-9
    const n = s.length;
    if (n >= 4 && s[n - 4] === "e" && s[n - 3] === "-" && s[n - 2] === "0") {
      s = s.slice(0, n - 2) + s.slice(n - 1);
    }
  }
  return s;
}

function intString(v: unknown): string {
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") {
    return Number.isInteger(v) ? BigInt(v).toString() : String(Math.trunc(v));
  }
  return "0";
}

/** Go `encoding/json` encoding (no HTML escaping) of a typed value. */
export function encodeJSON(v: GoValue): string {
  const t = v.type;
  if (!t) return "null";
  const x = v.value;
  switch (t.kind) {
    case "any": {
      const d = dynamic(v);
      if (!d.type) return "null";
      if (d.type.kind === "slice" && d.type.elem.kind === "any") {
        return "[" + (x as unknown[]).map((e) => encodeJSON(goValue(tAny, e))).join(",") + "]";
      }
      return encodeJSON(d);
    }
    case "string":
      return jsonString(String(x ?? ""));
    case "bool":
      return x ? "true" : "false";
    case "int":
    case "duration":
      return intString(x ?? 0);
    case "float":
      return jsonFloat(Number(x ?? 0));
    case "time":
      return '"' + formatGoTime(x as GoTime, RFC3339_NANO) + '"';
    case "ptr":
      return isNilJS(x) ? "null" : encodeJSON(goValue(t.elem, x));
    case "slice":
      if (isNilJS(x) || (t.nil === "ifEmpty" && (x as unknown[]).length === 0)) {
        return t.nil === "never" ? "[]" : "null";
      }
      return "[" + (x as unknown[]).map((e) => encodeJSON(goValue(t.elem, e))).join(",") + "]";
    case "map": {
      if (isNilJS(x) || (t.nil === "ifEmpty" && Object.keys(x as object).length === 0)) {
        return t.nil === "never" ? "{}" : "null";
      }
      const m = x as Record<string, unknown>;
      return "{" +
        sortedMapKeys(m).map((k) => jsonString(k) + ":" + encodeJSON(goValue(t.elem, m[k]))).join(
          ",",
        ) +
        "}";
    }
    case "struct": {
      const o = (x ?? {}) as Record<string, unknown>;
      const parts: string[] = [];
      for (const f of t.fields) {
        const fv = o[f.name];
        if (f.omitempty && isEmptyForJSON(f.type, fv)) continue;
        parts.push(jsonString(f.json) + ":" + encodeJSON(goValue(f.type, fv)));
      }
      return "{" + parts.join(",") + "}";
    }
  }
}

/** Whether the type has a `String()` method (fmt.Stringer) in our model. */
function isStringer(t: GoType): boolean {
  return t.kind === "time" || t.kind === "duration" ||
    (t.kind === "ptr" && (t.elem.kind === "time" || t.elem.kind === "duration"));
}

let fakeAddr = 0xc000010000;

/**
 * Go `fmt` `%v` formatting of a typed value (`depth` > 0 inside composite values, where pointers to
 * structs print as an address, like Go).
 */
export function formatValue(v: GoValue, depth = 0): string {
  const t = v.type;
  if (!t) return "<nil>";
  const x = v.value;
  if (isStringer(t)) {
    if (t.kind === "ptr") {
      if (isNilJS(x)) return "<nil>";
      return formatValue(goValue(t.elem, x), depth);
    }
    if (t.kind === "time") return goTimeString(x as GoTime);
    return formatGoDuration((x ?? 0) as number | bigint);
  }
  switch (t.kind) {
    case "any": {
      const d = dynamic(v);
      if (!d.type) return "<nil>";
      if (d.type.kind === "slice" && d.type.elem.kind === "any") {
        return "[" + (x as unknown[]).map((e) =>
          formatValue(goValue(tAny, e), depth + 1)
        ).join(" ") + "]";
      }
      return formatValue(d, depth);
    }
    case "string":
      return String(x ?? "");
    case "bool":
      return x ? "true" : "false";
    case "int":
      return intString(x ?? 0);
    case "float":
      return formatGoFloat(Number(x ?? 0), "g", -1);
    case "ptr":
      if (isNilJS(x)) return "<nil>";
      if (
        depth === 0 &&
        (t.elem.kind === "struct" || t.elem.kind === "slice" || t.elem.kind === "map")
      ) {
        return "&" + formatValue(goValue(t.elem, x), depth + 1);
      }
      return "0x" + (fakeAddr += 0x40).toString(16);
    case "slice":
      if (isNilJS(x)) return "[]";
      return "[" +
        (x as unknown[]).map((e) => formatValue(goValue(t.elem, e), depth + 1)).join(" ") + "]";
    case "map": {
      if (isNilJS(x)) return "map[]";
      const m = x as Record<string, unknown>;
      return "map[" +
        sortedMapKeys(m).map((k) =>
          formatValue(goValue(t.key, k), depth + 1) + ":" +
          formatValue(goValue(t.elem, m[k]), depth + 1)
        ).join(" ") + "]";
    }
    case "struct": {
      const o = (x ?? {}) as Record<string, unknown>;
      return "{" +
        t.fields.map((f) => formatValue(goValue(f.type, o[f.name]), depth + 1)).join(" ") + "}";
    }
  }
  return "";
}
