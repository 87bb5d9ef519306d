/**
 * Walks a `--local` directory the way fsutil's sender does (protocol doc
 * §3.5–§3.7): depth-first, entries sorted by name bytes, parents before
 * children, root excluded, symlinks never followed; include/exclude
 * patterns and followpaths applied like fsutil's FilterFS; hard links
 * detected by inode; uid/gid forced to 0 (buildctl's map function).
 *
 * @module
 */

import { join } from "../path.ts";
import { globMatch, type MatchInfo, PatternMatcher } from "./patternmatcher.ts";
import { FileMode, goFileMode, type Stat } from "./fsutil_wire.ts";

/** The daemon-supplied filter lists (already header-decoded). */
export interface FilterOptions {
  includePatterns?: readonly string[] | undefined;
  excludePatterns?: readonly string[] | undefined;
  /** `undefined` = none sent (differs from an empty list only in name). */
  followPaths?: readonly string[] | undefined;
}

/** Called for each entry to send, in order. `abs` is its host path. */
export type EmitFn = (stat: Stat, abs: string, info: Deno.FileInfo) => Promise<void> | void;

/** Compares strings by Unicode code point (= UTF-8 byte order, Go's string order). */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** A stat built from `Deno.lstat`, like fsutil's mkstat (xattrs are not sent). */
async function makeStat(abs: string, rel: string, info: Deno.FileInfo): Promise<Stat> {
  const mode = (goFileMode(info.mode ?? 0) & ~FileMode.Socket) >>> 0;
  const isDir = info.isDirectory;
  const stat: Stat = {
    path: rel,
    mode,
    uid: 0,
    gid: 0,
    size: isDir ? 0n : BigInt(info.size),
    modTime: BigInt(info.mtime?.getTime() ?? 0) * 1_000_000n,
    linkname: "",
    devmajor: 0n,
    devminor: 0n,
    xattrs: {},
  };
  if (!isDir) {
    const rdev = info.rdev ?? 0;
    if (rdev !== 0) {
      stat.devmajor = BigInt((rdev >>> 8) & 0xfff);
      stat.devminor = BigInt((rdev & 0xff) | ((Math.floor(rdev / 4096)) & 0xfff00));
    }
    if (info.isSymlink) stat.linkname = await Deno.readLink(abs);
  }
  return stat;
}

function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory ||
    (err as { code?: string })?.code === "ENOTDIR";
}

/** Removes paths covered by an earlier one (`a` covers `a/b`); a `.` means "no filter" (null). */
function dedupePaths(input: readonly string[]): string[] | null {
  const out: string[] = [];
  let last = "";
  for (const s of input) {
    if (s === ".") return null;
    if (s.startsWith(last + "/")) continue;
    out.push(s);
    last = s;
  }
  return out;
}

function containsWildcards(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const ch = name[i];
    if (ch === "\\") i++;
    else if (ch === "*" || ch === "?" || ch === "[") return true;
  }
  return false;
}

function posixJoin(...parts: string[]): string {
  return cleanRel(parts.filter((p) => p !== "").join("/"));
}

function cleanRel(p: string): string {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else out.push("..");
      continue;
    }
    out.push(part);
  }
  return out.length ? out.join("/") : ".";
}

function dirOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "." : p.slice(0, i);
}

function baseOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? p : p.slice(i + 1);
}

/**
 * Resolves `followpaths` like fsutil's FollowLinks: every symlink met on the
 * way is kept and resolved further (absolute targets are relative to the
 * root); a component may be a glob. Returns the sorted, deduplicated list
 * (null when it covers the whole root).
 */
export async function followLinks(
  root: string,
  paths: readonly string[],
): Promise<string[] | null> {
  const resolved = new Set<string>();

  const lstatRel = async (rel: string): Promise<Deno.FileInfo | undefined> => {
    if (rel === "." || rel === ".." || rel.startsWith("../")) return undefined;
    try {
      return await Deno.lstat(join(root, rel));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  };

  const readSymlink = async (p: string, allowWildcard: boolean): Promise<string[] | undefined> => {
    const base = baseOf(p);
    if (allowWildcard && containsWildcards(base)) {
      const dir = dirOf(p);
      let names: string[];
      try {
        names = [];
        for await (const e of Deno.readDir(join(root, dir === "." ? "" : dir))) names.push(e.name);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw new Error(`readdir: ${(err as Error).message}`, { cause: err });
      }
      names.sort(compareNames);
      let out: string[] | undefined;
      for (const name of names) {
        let ok = false;
        try {
          ok = globMatch(base, name);
        } catch { /* Go ignores the error here */ }
        if (!ok) continue;
        const res = await readSymlink(posixJoin(dir, name), false);
        if (res) (out ??= []).push(...res);
      }
      return out;
    }
    const info = await lstatRel(cleanRel(p));
    if (!info || !info.isSymlink) return undefined;
    const link = cleanRel(await Deno.readLink(join(root, p)));
    if (link.startsWith("/")) return [link];
    return ["/" + posixJoin(dirOf(p), link)];
  };

  const append = async (input: string): Promise<void> => {
    let p = cleanRel(input.startsWith("/") ? input.slice(1) : input);
    let current = ".";
    for (;;) {
      const slash = p.indexOf("/");
      const first = slash < 0 ? p : p.slice(0, slash);
      current = posixJoin(current, first);
      const targets = await readSymlink(current, true);
      p = slash < 0 ? "" : p.slice(slash + 1);
      if ((p === "" || targets !== undefined) && resolved.has(current)) return;
      if (targets !== undefined) {
        resolved.add(current);
        for (const t of targets) await append(posixJoin(t, p));
        return;
      }
      if (p === "") {
        resolved.add(current);
        return;
      }
    }
  };

  for (const p of paths) await append(p);
  const list = [...resolved].sort(compareNames);
  return dedupePaths(list);
}

interface VisitedDir {
  rel: string;
  abs: string;
  info: Deno.FileInfo;
  includeInfo: MatchInfo;
  excludeInfo: MatchInfo;
  calledFn: boolean;
}

/** The compiled filter, as fsutil's NewFilterFS builds it. */
export interface CompiledFilter {
  include: PatternMatcher | undefined;
  exclude: PatternMatcher | undefined;
  onlyPrefixIncludes: boolean;
  onlyPrefixExcludeExceptions: boolean;
}

const PATTERN_CHARS = /[*[\]?^\\]/;

function withoutTrailingGlob(text: string): string {
  if (text.endsWith("/**")) return text.slice(0, -3);
  if (text.endsWith("/*")) return text.slice(0, -2);
  return text;
}

/**
 * Compiles the filter lists (followpaths resolved against `root`).
 *
 * @throws {Error} `invalid includepatterns: …` / `invalid excludepatterns: …`
 */
export async function compileFilter(root: string, opts: FilterOptions): Promise<CompiledFilter> {
  let includes: string[] | undefined = opts.includePatterns ? [...opts.includePatterns] : undefined;
  if (opts.followPaths !== undefined) {
    const targets = await followLinks(root, opts.followPaths);
    if (targets !== null) {
      const merged = dedupePaths([...(includes ?? []), ...targets]);
      includes = merged ?? undefined;
    }
  }
  let include: PatternMatcher | undefined;
  let exclude: PatternMatcher | undefined;
  let onlyPrefixIncludes = true;
  let onlyPrefixExcludeExceptions = true;
  if (includes && includes.length > 0) {
    try {
      include = new PatternMatcher(includes);
    } catch (err) {
      throw new Error(
        `invalid includepatterns: [${includes.join(" ")}]: ${(err as Error).message}`,
      );
    }
    onlyPrefixIncludes = !include.patterns.some((p) =>
      !p.exclusion && PATTERN_CHARS.test(withoutTrailingGlob(p.text))
    );
  }
  if (opts.excludePatterns && opts.excludePatterns.length > 0) {
    try {
      exclude = new PatternMatcher(opts.excludePatterns);
    } catch (err) {
      throw new Error(
        `invalid excludepatterns: [${opts.excludePatterns.join(" ")}]: ${(err as Error).message}`,
      );
    }
    onlyPrefixExcludeExceptions = !exclude.patterns.some((p) =>
      p.exclusion && PATTERN_CHARS.test(withoutTrailingGlob(p.text))
    );
  }
  return { include, exclude, onlyPrefixIncludes, onlyPrefixExcludeExceptions };
}

/** Options of {@linkcode walk}. */
export interface WalkOptions {
  signal?: AbortSignal;
}

/**
 * Walks `root` (already symlink-resolved) and calls `emit` for each entry to
 * send, in fsutil order. Errors name the host path.
 */
export async function walk(
  root: string,
  filter: CompiledFilter,
  emit: EmitFn,
  opts: WalkOptions = {},
): Promise<void> {
  const { include, exclude } = filter;
  const filtering = include !== undefined || exclude !== undefined;
  const inodes = new Map<string, string>();
  const stack: VisitedDir[] = [];

  const sendStat = async (rel: string, abs: string, info: Deno.FileInfo) => {
    const stat = await makeStat(abs, rel, info);
    if (!info.isDirectory && !info.isSymlink) {
      // Hard links: the first kept path of an inode is the canonical one.
      if ((info.nlink ?? 1) > 1) {
        const key = `${info.dev}:${info.ino}`;
        const first = inodes.get(key);
        if (first !== undefined) {
          // Size stays the file's size: fsutil's mkstat sets it after the link check.
          stat.linkname = first;
        } else {
          inodes.set(key, rel);
        }
      }
    }
    await emit(stat, abs, info);
  };

  const visit = async (dirRel: string, dirAbs: string, skipped: boolean): Promise<void> => {
    const entries: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(dirAbs)) entries.push(e);
    } catch (err) {
      if (isNotFound(err)) return;
      // A directory we would not send anyway may be unreadable.
      if (skipped && err instanceof Deno.errors.PermissionDenied) return;
      throw new Error(`failed to read directory ${dirAbs}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    entries.sort((a, b) => compareNames(a.name, b.name));
    // lstat the whole directory at once; failures count only for entries we keep.
    const infos = await Promise.all(entries.map(async (e) => {
      try {
        return await Deno.lstat(join(dirAbs, e.name));
      } catch (err) {
        return err as Error;
      }
    }));
    for (let i = 0; i < entries.length; i++) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      const info = infos[i]!;
      if (info instanceof Error && isNotFound(info)) continue; // vanished since readdir
      const entry = entries[i]!;
      const rel = dirRel === "" ? entry.name : `${dirRel}/${entry.name}`;
      await visitEntry(rel, join(dirAbs, entry.name), entry.isDirectory, info);
    }
  };

  const visitEntry = async (
    rel: string,
    abs: string,
    isDir: boolean,
    info: Deno.FileInfo | Error,
  ): Promise<void> => {
    const parent = stack.length > 0 ? stack[stack.length - 1] : undefined;
    let skip = false;
    let includeInfo: MatchInfo;
    let excludeInfo: MatchInfo;

    if (include) {
      let m: boolean;
      try {
        [m, includeInfo] = include.matchesUsingParentResults(rel, parent?.includeInfo);
      } catch (err) {
        throw new Error(`failed to match includepatterns: ${(err as Error).message}`);
      }
      if (!m) {
        if (isDir && filter.onlyPrefixIncludes) {
          const dirSlash = rel + "/";
          const below = include.patterns.some((p) =>
            !p.exclusion && (withoutTrailingGlob(p.text) + "/").startsWith(dirSlash)
          );
          if (!below) return;
        }
        skip = true;
      }
    }
    if (exclude) {
      let m: boolean;
      try {
        [m, excludeInfo] = exclude.matchesUsingParentResults(rel, parent?.excludeInfo);
      } catch (err) {
        throw new Error(`failed to match excludepatterns: ${(err as Error).message}`);
      }
      if (m) {
        if (isDir && filter.onlyPrefixExcludeExceptions) {
          if (!exclude.exclusions) return;
          const dirSlash = rel + "/";
          const below = exclude.patterns.some((p) =>
            p.exclusion && (withoutTrailingGlob(p.text) + "/").startsWith(dirSlash)
          );
          if (!below) return;
        }
        skip = true;
      }
    }

    if (info instanceof Error) {
      if (skip) return;
      throw new Error(`failed to stat ${abs}: ${info.message}`, { cause: info });
    }
    isDir = info.isDirectory;
    const dir: VisitedDir | undefined = isDir
      ? { rel, abs, info, includeInfo, excludeInfo, calledFn: false }
      : undefined;

    if (!skip) {
      // Parents that were skipped themselves but have a kept descendant go first.
      for (const anc of stack) {
        if (anc.calledFn) continue;
        anc.calledFn = true;
        await sendStat(anc.rel, anc.abs, anc.info);
      }
      await sendStat(rel, abs, info);
      if (dir) dir.calledFn = true;
    }

    if (dir) {
      if (filtering) stack.push(dir);
      try {
        await visit(rel, abs, skip);
      } finally {
        if (filtering) stack.pop();
      }
    }
  };

  await visit("", root, false);
}
