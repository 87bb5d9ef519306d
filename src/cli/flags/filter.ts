/**
 * `--filter` values: containerd-style filter expressions, checked before
 * they are sent so that a malformed one is named by the client.
 *
 * @module
 */

import { usageError } from "../../errors.ts";

const FIELD = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const OPERATOR = /(==|!=|~=|=)/;

/**
 * Validates containerd filter strings (`field==value`, `field!=value`,
 * `field~=regexp`, `field` alone, comma-joined conjunctions).
 *
 * @throws {BuildctlError} naming the flag and the value.
 */
export function validateFilters(filters: string[], flag = "--filter"): string[] {
  for (const filter of filters) {
    if (filter.trim() === "") throw usageError(`invalid ${flag} "${filter}": empty filter`);
    for (const part of splitOutsideQuotes(filter)) {
      const m = OPERATOR.exec(part);
      const field = (m ? part.slice(0, m.index) : part).trim();
      if (!FIELD.test(field.replaceAll(/"[^"]*"/g, "x"))) {
        throw usageError(
          `invalid ${flag} "${filter}": expected field==value, field!=value or field~=regexp`,
          'for example --filter "type==regular"',
        );
      }
      if (m && m[1] === "~=") {
        const value = unquote(part.slice(m.index + 2).trim());
        try {
          new RegExp(value);
        } catch {
          throw usageError(
            `invalid ${flag} "${filter}": "${value}" is not a valid regular expression`,
          );
        }
      }
    }
  }
  return filters;
}

function splitOutsideQuotes(s: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote = "";
  for (const ch of s) {
    if (quote) {
      if (ch === quote) quote = "";
    } else if (ch === '"' || ch === "/") quote = ch;
    else if (ch === ",") {
      out.push(cur);
      cur = "";
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}

function unquote(v: string): string {
  if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("/") && v.endsWith("/"))) {
    return v.slice(1, -1);
  }
  return v;
}
