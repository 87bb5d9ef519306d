/**
 * Can a daemon run here, and in which mode? Root mode needs euid 0 with
 * CAP_SYS_ADMIN. Rootless mode needs rootlesskit, newuidmap/newgidmap, a
 * subordinate uid and gid range for the user, and user namespaces allowed by
 * the kernel (and by AppArmor on Ubuntu ≥ 23.10). Each missing piece comes
 * with the exact command that fixes it.
 *
 * @module
 */

import { CAP_SYS_ADMIN, effectiveCaps, hasCap, type Identity, readProcFiles } from "./proc.ts";
import { findProgram, type FoundProgram } from "./find.ts";

/** One missing prerequisite and its fix. */
export interface Problem {
  /** What is wrong, e.g. `rootlesskit: not found`. */
  what: string;
  /** The command or step that fixes it. */
  fix: string;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

type Distro = "debian" | "fedora" | "alpine" | "arch" | "other";

function distro(): Distro {
  const osr = readText("/etc/os-release") ?? "";
  const ids = (osr.match(/^ID(?:_LIKE)?=.*$/gm) ?? []).join(" ");
  if (/debian|ubuntu/.test(ids)) return "debian";
  if (/fedora|rhel|centos/.test(ids)) return "fedora";
  if (/alpine/.test(ids)) return "alpine";
  if (/arch/.test(ids)) return "arch";
  return "other";
}

/** The package that ships rootlesskit, per distribution. */
export const ROOTLESSKIT_PACKAGES = {
  debian: "rootlesskit",
  fedora: "rootlesskit",
  alpine: "rootlesskit",
  arch: "rootlesskit",
} as const;

/** The package that ships newuidmap/newgidmap, per distribution. */
export const UIDMAP_PACKAGES = {
  debian: "uidmap",
  fedora: "shadow-utils",
  alpine: "shadow-subids",
  arch: "shadow",
} as const;

/** The install command for a package, spelled for this distribution. */
export function installHint(
  pkg: { debian: string; fedora: string; alpine: string; arch: string },
): string {
  switch (distro()) {
    case "debian":
      return `sudo apt-get install -y ${pkg.debian}`;
    case "fedora":
      return `sudo dnf install -y ${pkg.fedora}`;
    case "alpine":
      return `sudo apk add ${pkg.alpine}`;
    case "arch":
      return `sudo pacman -S ${pkg.arch}`;
    default:
      return `install the package that provides it (Debian: ${pkg.debian}, Fedora: ${pkg.fedora})`;
  }
}

/** Problems that stop a root daemon (empty when root mode works). */
export async function rootProblems(id: Identity): Promise<Problem[]> {
  if (id.euid !== 0) {
    return [{ what: "not running as root", fix: "run as root, or use a rootless daemon" }];
  }
  if (!hasCap(await effectiveCaps(), CAP_SYS_ADMIN)) {
    return [{
      what: "running as uid 0 without CAP_SYS_ADMIN (a restricted container?)",
      fix:
        "run with full privileges (e.g. docker run --privileged), or run buildctl as a normal user for a rootless daemon",
    }];
  }
  return [];
}

/** A user's subordinate id range from /etc/subuid or /etc/subgid. */
export interface SubIdRange {
  start: number;
  count: number;
}

/** Reads the ranges of `user` (by name or uid) from a subuid/subgid file. */
export function subIdRanges(file: string, user: string, uid: number): SubIdRange[] {
  const out: SubIdRange[] = [];
  for (const line of (readText(file) ?? "").split("\n")) {
    const f = line.trim().split(":");
    if (f.length !== 3 || line.startsWith("#")) continue;
    if (f[0] === user || f[0] === String(uid)) {
      out.push({ start: Number(f[1]), count: Number(f[2]) });
    }
  }
  return out;
}

/** The first start ≥ 100000 after every range in the file (for a `usermod` suggestion). */
function freeSubIdStart(file: string): number {
  let end = 100000;
  for (const line of (readText(file) ?? "").split("\n")) {
    const f = line.trim().split(":");
    if (f.length !== 3) continue;
    end = Math.max(end, Number(f[1]) + Number(f[2]));
  }
  return end;
}

/** Programs rootless mode uses, found on PATH or beside us. */
export interface RootlessPrograms {
  rootlesskit: FoundProgram;
  newuidmap: FoundProgram;
  newgidmap: FoundProgram;
}

/** Finds rootlesskit and the uid map helpers. */
export function rootlessPrograms(env: (name: string) => string | undefined): RootlessPrograms {
  return {
    rootlesskit: findProgram("rootlesskit", env),
    newuidmap: findProgram("newuidmap", env),
    newgidmap: findProgram("newgidmap", env),
  };
}

/** Problems that stop a rootless daemon (empty when rootless mode should work). */
export async function rootlessProblems(
  id: Identity,
  programs: RootlessPrograms,
): Promise<Problem[]> {
  const problems: Problem[] = [];
  if (!programs.rootlesskit.path) {
    problems.push({
      what: "rootlesskit: not found on PATH",
      fix: installHint(ROOTLESSKIT_PACKAGES),
    });
  }
  for (const p of [programs.newuidmap, programs.newgidmap]) {
    if (!p.path) {
      problems.push({
        what: `${p.name}: not found on PATH`,
        fix: installHint(UIDMAP_PACKAGES),
      });
    }
  }
  for (const [file, flag] of [["/etc/subuid", "uids"], ["/etc/subgid", "gids"]] as const) {
    const ranges = subIdRanges(file, id.user, id.euid);
    if (ranges.length === 0) {
      const start = freeSubIdStart(file);
      problems.push({
        what: `no subordinate ${flag.slice(0, -1)} range for user "${id.user}" in ${file}`,
        fix: `sudo usermod --add-sub${flag} ${start}-${start + 65535} ${id.user}`,
      });
    }
  }
  problems.push(...(await usernsProblems()));
  return problems;
}

/** Kernel and AppArmor switches that forbid unprivileged user namespaces. */
export async function usernsProblems(): Promise<Problem[]> {
  const problems: Problem[] = [];
  const MAX = "/proc/sys/user/max_user_namespaces";
  const CLONE = "/proc/sys/kernel/unprivileged_userns_clone";
  const APPARMOR = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns";
  const sys = await readProcFiles([MAX, CLONE, APPARMOR]);
  const max = sys.get(MAX)?.trim();
  if (max === "0") {
    problems.push({
      what: "user namespaces are disabled (user.max_user_namespaces = 0)",
      fix:
        "echo 'user.max_user_namespaces=28633' | sudo tee /etc/sysctl.d/51-rootless.conf && sudo sysctl --system",
    });
  }
  const clone = sys.get(CLONE)?.trim();
  if (clone === "0") {
    problems.push({
      what: "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
      fix:
        "echo 'kernel.unprivileged_userns_clone=1' | sudo tee /etc/sysctl.d/50-rootless.conf && sudo sysctl --system",
    });
  }
  const apparmor = sys.get(APPARMOR)?.trim();
  if (apparmor === "1" && !rootlesskitAppArmorProfile()) {
    problems.push({
      what: "AppArmor restricts unprivileged user namespaces and has no profile for rootlesskit",
      fix: [
        "install a profile for rootlesskit:",
        `  cat <<EOT | sudo tee /etc/apparmor.d/usr.bin.rootlesskit`,
        `  abi <abi/4.0>,`,
        `  include <tunables/global>`,
        `  /usr/bin/rootlesskit flags=(unconfined) {`,
        `    userns,`,
        `    include if exists <local/usr.bin.rootlesskit>`,
        `  }`,
        `  EOT`,
        `  sudo systemctl restart apparmor.service`,
      ].join("\n"),
    });
  }
  return problems;
}

function rootlesskitAppArmorProfile(): boolean {
  try {
    for (const e of Deno.readDirSync("/etc/apparmor.d")) {
      if (e.isFile && e.name.includes("rootlesskit")) return true;
    }
  } catch { /* no apparmor dir */ }
  return false;
}
