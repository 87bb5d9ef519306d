/**
 * Describes a directory tree (paths, types, modes, symlink targets, hard-link
 * groups, content digests) so two exports can be compared exactly.
 *
 * @module
 */

import { join } from "node:path";

/** One entry of a tree description. */
export interface TreeEntry {
  path: string;
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  size?: number;
  sha256?: string;
  target?: string;
  /** Paths sharing this entry's inode (hard links), sorted; only when nlink > 1. */
  links?: string[];
}

/** Describes `root` recursively, sorted by path. */
export async function describeTree(
  root: string,
  opts: { mtimes?: boolean } = {},
): Promise<TreeEntry[]> {
  const out: (TreeEntry & { ino?: number; nlink?: number; mtime?: number })[] = [];
  async function walk(rel: string): Promise<void> {
    for await (const e of Deno.readDir(join(root, rel))) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      const full = join(root, p);
      const st = await Deno.lstat(full);
      const mode = (st.mode ?? 0) & 0o7777;
      if (st.isSymlink) {
        out.push({ path: p, type: "symlink", mode: 0, target: await Deno.readLink(full) });
      } else if (st.isDirectory) {
        out.push({ path: p, type: "dir", mode });
        await walk(p);
      } else if (st.isFile) {
        const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(full));
        out.push({
          path: p,
          type: "file",
          mode,
          size: st.size,
          sha256: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join(
            "",
          ),
          ino: st.ino ?? undefined,
          nlink: st.nlink ?? undefined,
          ...(opts.mtimes ? { mtime: st.mtime?.getTime() } : {}),
        });
      } else out.push({ path: p, type: "other", mode });
    }
  }
  await walk("");
  const byIno = new Map<number, string[]>();
  for (const e of out) {
    if (e.ino !== undefined && (e.nlink ?? 1) > 1) {
      byIno.set(e.ino, [...(byIno.get(e.ino) ?? []), e.path]);
    }
  }
  const result: TreeEntry[] = out.map(({ ino, nlink: _n, ...rest }) => {
    const links = ino !== undefined ? byIno.get(ino) : undefined;
    return links && links.length > 1 ? { ...rest, links: [...links].sort() } : rest;
  });
  return result.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Lists the member names of a tar file (via the system tar). */
export async function tarMembers(path: string): Promise<string[]> {
  const out = await new Deno.Command("tar", {
    args: ["-tvf", path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(`tar -tvf ${path}: ${new TextDecoder().decode(out.stderr)}`);
  // Keep mode, owner and name; drop the date column (the daemon stamps export time).
  return new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => {
    const f = l.split(/\s+/);
    return [f[0], f[1], f[2], ...f.slice(5)].join(" ");
  });
}
