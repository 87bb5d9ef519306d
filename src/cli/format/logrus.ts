/**
 * Log lines in the format of logrus as upstream buildctl configures it
 * (`TextFormatter{FullTimestamp: true}` or `JSONFormatter`, chosen by
 * `--log-format`): used for the client-side warnings upstream prints with
 * `bklog` (e.g. a skipped local cache import).
 *
 * Text output, not a terminal: `time="…" level=warning msg="…" k=v…`.
 * Text output, terminal: `\x1b[33mWARN\x1b[0m[time] msg-padded-to-44  k=v…`.
 * JSON: one object with sorted keys. Times are RFC 3339 in local time.
 *
 * @module
 */

import { goJsonString } from "../../session/oci_index.ts";

/** A log entry. */
export interface LogEntry {
  level: "debug" | "info" | "warning" | "error";
  msg: string;
  /** Extra fields (`error`, `path`, …), printed sorted by key. */
  fields?: Record<string, string>;
}

/** Options of {@linkcode formatLogEntry}. */
export interface LogFormatOptions {
  format: "text" | "json";
  /** Whether stderr is a terminal (colored text output, as logrus). */
  isTerminal: boolean;
  /** Timestamp (default: now). */
  now?: Date;
}

const COLORS: Record<LogEntry["level"], number> = {
  debug: 37,
  info: 36,
  warning: 33,
  error: 31,
};

/** Go's `time.RFC3339` in local time. */
export function rfc3339(d: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const off = -d.getTimezoneOffset();
  const zone = off === 0
    ? "Z"
    : `${off > 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${
    pad(d.getHours())
  }:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone}`;
}

/** logrus quotes a value unless it only has `[A-Za-z0-9-._/@^+]`. */
function textValue(v: string): string {
  return /^[A-Za-z0-9\-._/@^+]*$/.test(v) ? v : goQuote(v);
}

/** Go's `%q` for printable text (close enough for log messages). */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}

/** One log line (with its newline). */
export function formatLogEntry(e: LogEntry, opts: LogFormatOptions): string {
  const time = rfc3339(opts.now ?? new Date());
  const fields = e.fields ?? {};
  const keys = Object.keys(fields).sort();
  if (opts.format === "json") {
    const all: Record<string, string> = { ...fields, level: e.level, msg: e.msg, time };
    const sorted = Object.keys(all).sort();
    return "{" + sorted.map((k) => `${goJsonString(k)}:${goJsonString(all[k]!)}`).join(",") +
      "}\n";
  }
  if (opts.isTerminal) {
    const color = COLORS[e.level];
    const level = e.level.toUpperCase().slice(0, 4);
    let out = `\x1b[${color}m${level}\x1b[0m[${time}] ${e.msg.replace(/\n+$/, "").padEnd(44)} `;
    for (const k of keys) out += ` \x1b[${color}m${k}\x1b[0m=${textValue(fields[k]!)}`;
    return out + "\n";
  }
  const parts = [`time=${textValue(time)}`, `level=${e.level}`];
  if (e.msg !== "") parts.push(`msg=${textValue(e.msg)}`);
  for (const k of keys) parts.push(`${k}=${textValue(fields[k]!)}`);
  return parts.join(" ") + "\n";
}
