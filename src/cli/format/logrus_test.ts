import assert from "node:assert/strict";
import { formatLogEntry, rfc3339 } from "./logrus.ts";

const now = new Date(Date.UTC(2026, 10, 29, 15, 45, 15));
const entry = {
  level: "warning" as const,
  msg: "local cache import at c skipped: no digest found for tag nope",
  fields: { path: "c", error: "x y" },
};

Deno.test("logrus text format (not a terminal), as upstream buildctl prints warnings", () => {
  assert.equal(
    formatLogEntry(entry, { format: "text", isTerminal: false, now }),
    `time="${
      rfc3339(now)
    }" level=warning msg="local cache import at c skipped: no digest found for tag nope" error="x y" path=c\n`,
  );
});

Deno.test("logrus text format on a terminal: colored, message padded to 44", () => {
  assert.equal(
    formatLogEntry({ level: "warning", msg: "short" }, { format: "text", isTerminal: true, now }),
    `\x1b[33mWARN\x1b[0m[${rfc3339(now)}] short${" ".repeat(39)} \n`,
  );
  assert.equal(
    formatLogEntry({ level: "warning", msg: "m", fields: { error: "e" } }, {
      format: "text",
      isTerminal: true,
      now,
    }),
    `\x1b[33mWARN\x1b[0m[${rfc3339(now)}] m${" ".repeat(43)}  \x1b[33merror\x1b[0m=e\n`,
  );
});

Deno.test("logrus JSON format: sorted keys, Go escaping", () => {
  assert.equal(
    formatLogEntry({ level: "warning", msg: "a<b", fields: { error: "e" } }, {
      format: "json",
      isTerminal: false,
      now,
    }),
    `{"error":"e","level":"warning","msg":"a\\u003cb","time":"${rfc3339(now)}"}\n`,
  );
});

Deno.test("rfc3339 in local time", () => {
  assert.match(rfc3339(now), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/);
});
