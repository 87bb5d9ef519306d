/**
 * POSIX path strings: `join`, `resolve`, `dirname`, `basename`, with the
 * results `node:path` gives, and Go's `filepath.Clean`. buildctl uses these instead of `node:path`
 * because the first `node:` import of a process sets up Deno's Node
 * compatibility layer, about 5 ms of every command's start-up; a client
 * that is started for every build and every race to start the daemon pays
 * that for a few string functions.
 *
 * @module
 */

/** Go's `filepath.Clean` for `/`-separated paths: `.`, `..` and repeated slashes collapsed, no trailing slash, `""` → `"."`. */
export function cleanPath(path: string): string {
  if (path === "") return ".";
  const rooted = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  if (rooted) return "/" + joined;
  return joined === "" ? "." : joined;
}

/** `node:path`'s `normalize`: {@linkcode cleanPath}, keeping a trailing slash. */
export function normalize(path: string): string {
  const clean = cleanPath(path);
  return path.endsWith("/") && clean !== "/" ? clean + "/" : clean;
}

/** Joins the non-empty `parts` with `/` and normalizes the result. */
export function join(...parts: string[]): string {
  const joined = parts.filter((p) => p !== "").join("/");
  return joined === "" ? "." : normalize(joined);
}

/** The absolute, normalized path of `parts` taken from the right, against the current directory. */
export function resolve(...parts: string[]): string {
  let path = "";
  for (let i = parts.length - 1; i >= 0 && !path.startsWith("/"); i--) {
    const p = parts[i]!;
    if (p !== "") path = path === "" ? p : `${p}/${path}`;
  }
  if (!path.startsWith("/")) path = `${Deno.cwd()}/${path}`;
  const n = normalize(path);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/** The directory part of `path` (trailing slashes ignored): `/a/b` → `/a`, `b` → `.`. */
export function dirname(path: string): string {
  const p = trimTrailingSlashes(path);
  if (p === "") return path.startsWith("/") ? "/" : ".";
  const i = p.lastIndexOf("/");
  if (i < 0) return ".";
  return i === 0 ? "/" : p.slice(0, i);
}

/** The last part of `path` (trailing slashes ignored): `/a/b/` → `b`. */
export function basename(path: string): string {
  const p = trimTrailingSlashes(path);
  return p.slice(p.lastIndexOf("/") + 1);
}

/** The path of a `file:` URL (percent-decoded). */
export function fromFileUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol !== "file:") throw new TypeError(`not a file URL: ${url}`);
  return decodeURIComponent(u.pathname);
}

function trimTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path[end - 1] === "/") end--;
  return path.slice(0, end);
}
