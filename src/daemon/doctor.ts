/**
 * `buildctl daemon doctor`: checks every prerequisite of the daemon and
 * names the exact fix for each failure. Read-only: it never starts,
 * stops or changes anything.
 *
 * @module
 */

import { dirname } from "../path.ts";
import { CAP_SYS_ADMIN, effectiveCaps, hasCap, type Identity, readProcFiles } from "./proc.ts";
import type { DaemonPaths } from "./paths.ts";
import { daemonPath, findProgram } from "./find.ts";
import {
  installHint,
  ROOTLESSKIT_PACKAGES,
  rootlessPrograms,
  subIdRanges,
  UIDMAP_PACKAGES,
  usernsProblems,
} from "./prereq.ts";
import { answers } from "../client/probe.ts";
import { readRecord, recordAlive } from "./record.ts";
import { BUILDKIT_VERSION } from "../version.ts";

/** One check. */
export interface Check {
  name: string;
  status: "ok" | "warn" | "fail";
  detail: string;
  fix?: string;
}

/** The whole report. */
export interface DoctorReport {
  mode: DaemonPaths["mode"];
  user: string;
  address: string;
  checks: Check[];
  failures: number;
  warnings: number;
}

async function run(cmd: string, args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const o = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
      .output();
    const dec = new TextDecoder();
    return { ok: o.success, out: (dec.decode(o.stdout) + dec.decode(o.stderr)).trim() };
  } catch (err) {
    return { ok: false, out: (err as Error).message };
  }
}

/** Runs every check for the daemon at `paths`. */
export async function doctor(
  id: Identity,
  paths: DaemonPaths,
  env: (name: string) => string | undefined,
): Promise<DoctorReport> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);
  const rootless = paths.mode === "rootless";

  // 1. buildkitd
  const bk = findProgram("buildkitd", env);
  if (bk.path) {
    const v = await run(bk.path, ["--version"]);
    const version = /\bv\d+\.\d+\.\d+\S*/.exec(v.out)?.[0];
    add({
      name: "buildkitd",
      status: v.ok ? (version && version !== BUILDKIT_VERSION ? "warn" : "ok") : "fail",
      detail: v.ok
        ? `${bk.path} (${version ?? v.out})${
          version && version !== BUILDKIT_VERSION
            ? `; this buildctl is tested with ${BUILDKIT_VERSION}`
            : ""
        }`
        : `${bk.path} does not run: ${v.out.split("\n")[0]}`,
      ...(v.ok ? {} : { fix: `reinstall buildkitd ${BUILDKIT_VERSION} for this architecture` }),
    });
  } else {
    add({
      name: "buildkitd",
      status: "fail",
      detail: `not found (looked in ${bk.searched.join(", ")})`,
      fix:
        `download buildkit-${BUILDKIT_VERSION}.linux-amd64.tar.gz from https://github.com/moby/buildkit/releases and put bin/buildkitd on PATH or beside buildctl`,
    });
  }

  // 2. privileges
  if (!rootless) {
    const capOk = hasCap(await effectiveCaps(), CAP_SYS_ADMIN);
    add({
      name: "privileges",
      status: capOk ? "ok" : "fail",
      detail: capOk ? "root with CAP_SYS_ADMIN: root daemon" : "uid 0 without CAP_SYS_ADMIN",
      ...(capOk ? {} : {
        fix:
          "run with full privileges (e.g. docker run --privileged), or as a normal user for rootless mode",
      }),
    });
  } else {
    add({
      name: "privileges",
      status: "ok",
      detail: `user "${id.user}" (uid ${id.euid}): rootless daemon`,
    });
  }

  // 3. runc (buildkitd looks for buildkit-runc, then runc, on its PATH)
  const pathForDaemon = daemonPath(env, [bk.path]);
  const daemonEnv = (n: string) => (n === "PATH" ? pathForDaemon : env(n));
  const runc = findProgram("buildkit-runc", daemonEnv).path ?? findProgram("runc", daemonEnv).path;
  if (runc) {
    const v = await run(runc, ["--version"]);
    add({
      name: "runc",
      status: v.ok ? "ok" : "fail",
      detail: `${runc} (${v.out.split("\n")[0]?.replace(/^runc version /, "") ?? "?"})`,
      ...(v.ok
        ? {}
        : { fix: installHint({ debian: "runc", fedora: "runc", alpine: "runc", arch: "runc" }) }),
    });
  } else {
    add({
      name: "runc",
      status: "fail",
      detail: "not found on PATH or beside buildkitd (the OCI worker needs it)",
      fix: installHint({ debian: "runc", fedora: "runc", alpine: "runc", arch: "runc" }),
    });
  }

  // 4. snapshotter
  const procs = await readProcFiles(["/proc/filesystems", "/proc/self/mountinfo"]);
  const filesystems = procs.get("/proc/filesystems") ?? "";
  const overlay = /\boverlay$/m.test(filesystems);
  const [major = 0, minor = 0] = Deno.osRelease().split(".").map((
    n,
  ) => parseInt(n));
  const kernel = `${major}.${minor}`;
  const userOverlay = major > 5 || (major === 5 && minor >= 11);
  const fuse = findProgram("fuse-overlayfs", env).path;
  if (overlay && (!rootless || userOverlay)) {
    add({ name: "snapshotter", status: "ok", detail: `overlayfs (kernel ${kernel})` });
  } else if (rootless && fuse) {
    add({
      name: "snapshotter",
      status: "ok",
      detail: `fuse-overlayfs (${fuse}); kernel ${kernel} has no rootless overlayfs`,
    });
  } else {
    add({
      name: "snapshotter",
      status: "warn",
      detail: overlay
        ? `kernel ${kernel} does not allow overlayfs in a user namespace (needs ≥ 5.11): the "native" snapshotter is used (slower, more disk)`
        : `overlayfs is not available: the "native" snapshotter is used (slower, more disk)`,
      fix: rootless
        ? installHint({
          debian: "fuse-overlayfs",
          fedora: "fuse-overlayfs",
          alpine: "fuse-overlayfs",
          arch: "fuse-overlayfs",
        })
        : "sudo modprobe overlay",
    });
  }

  // 5. cgroups
  // /proc/self is the helper's here; it shares our mount namespace.
  const mounts = procs.get("/proc/self/mountinfo") ?? "";
  const v2 = / \/sys\/fs\/cgroup [^\n]* - cgroup2 /.test(mounts);
  const hybrid = !v2 && / \/sys\/fs\/cgroup\/unified [^\n]* - cgroup2 /.test(mounts);
  if (v2) add({ name: "cgroups", status: "ok", detail: "cgroup v2 (unified)" });
  else {
    add({
      name: "cgroups",
      status: rootless ? "warn" : "ok",
      detail: `cgroup v1${hybrid ? " (hybrid)" : ""}${
        rootless ? ": rootless builds get no resource limits" : ""
      }`,
      ...(rootless
        ? { fix: "boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2 (optional)" }
        : {}),
    });
  }

  // 6. rootless pieces
  if (rootless) {
    const progs = rootlessPrograms(env);
    add(
      progs.rootlesskit.path
        ? { name: "rootlesskit", status: "ok", detail: progs.rootlesskit.path }
        : {
          name: "rootlesskit",
          status: "fail",
          detail: "not found on PATH",
          fix: installHint(ROOTLESSKIT_PACKAGES),
        },
    );
    for (const p of [progs.newuidmap, progs.newgidmap]) {
      if (!p.path) {
        add({
          name: p.name,
          status: "fail",
          detail: "not found on PATH",
          fix: installHint(UIDMAP_PACKAGES),
        });
        continue;
      }
      const st = await Deno.stat(p.path);
      const setuid = ((st.mode ?? 0) & 0o4000) !== 0 && st.uid === 0;
      let caps = "";
      if (!setuid) caps = (await run("getcap", [p.path])).out;
      const ok = setuid || /cap_set[ug]id/.test(caps);
      add({
        name: p.name,
        status: ok ? "ok" : "fail",
        detail: `${p.path}${
          setuid
            ? " (setuid root)"
            : caps
            ? ` (${caps})`
            : " (neither setuid root nor file capabilities)"
        }`,
        ...(ok ? {} : { fix: `sudo chmod u+s ${p.path}` }),
      });
    }
    for (const [file, kind] of [["/etc/subuid", "uid"], ["/etc/subgid", "gid"]] as const) {
      const ranges = subIdRanges(file, id.user, id.euid);
      const total = ranges.reduce((s, r) => s + r.count, 0);
      add(
        ranges.length === 0
          ? {
            name: `sub${kind}`,
            status: "fail",
            detail: `no range for "${id.user}" in ${file}`,
            fix:
              `sudo usermod --add-sub${kind}s 100000-165535 ${id.user}  (pick a range no other user has)`,
          }
          : {
            name: `sub${kind}`,
            status: total >= 65536 ? "ok" : "warn",
            detail: `${ranges.map((r) => `${r.start}+${r.count}`).join(", ")} in ${file}${
              total < 65536 ? " (fewer than 65536 ids: images with high uids fail)" : ""
            }`,
            ...(total < 65536
              ? { fix: `sudo usermod --add-sub${kind}s 200000-265535 ${id.user}` }
              : {}),
          },
      );
    }
    const userns = await usernsProblems();
    add(
      userns.length === 0 ? { name: "user namespaces", status: "ok", detail: "allowed" } : {
        name: "user namespaces",
        status: "fail",
        detail: userns.map((p) => p.what).join("; "),
        fix: userns.map((p) => p.fix).join("\n"),
      },
    );
    const xdg = env("XDG_RUNTIME_DIR");
    add(
      xdg ? { name: "XDG_RUNTIME_DIR", status: "ok", detail: xdg } : {
        name: "XDG_RUNTIME_DIR",
        status: "warn",
        detail:
          `not set; using ${paths.xdgRuntimeDir} (tools that read XDG_RUNTIME_DIR will not find the socket)`,
        fix:
          `export XDG_RUNTIME_DIR=${paths.xdgRuntimeDir}  (or log in through a session that sets it)`,
      },
    );
  }

  // 7. socket and run dir
  const socketCheck = await checkSocket(id, paths);
  add(socketCheck);

  // 8. state dir and its disk
  const rec = readRecord(paths.recordPath);
  const rootDir = rec?.options.rootDir ?? paths.rootDir;
  add(await checkDisk(rootDir, id));

  // 9. the daemon itself
  const alive = await recordAlive(rec);
  const answering = await answers(paths.socketPath);
  add({
    name: "daemon",
    status: "ok",
    detail: answering
      ? `running${
        alive ? ` (pid ${rec!.daemon.pid}, started by buildctl)` : " (not started by buildctl)"
      } at ${paths.address}`
      : "not running (the next command starts it)",
  });

  const failures = checks.filter((c) => c.status === "fail").length;
  const warnings = checks.filter((c) => c.status === "warn").length;
  return { mode: paths.mode, user: id.user, address: paths.address, checks, failures, warnings };
}

async function checkSocket(id: Identity, paths: DaemonPaths): Promise<Check> {
  let dir: Deno.FileInfo | undefined;
  try {
    dir = await Deno.stat(paths.runDir);
  } catch { /* created at start */ }
  if (dir) {
    const mode = (dir.mode ?? 0) & 0o777;
    if (paths.mode === "rootless" && (dir.uid !== id.euid || (mode & 0o077) !== 0)) {
      return {
        name: "socket",
        status: "fail",
        detail: `${paths.runDir} must be owned by you with mode 0700 (is uid ${dir.uid}, mode ${
          mode.toString(8)
        })`,
        fix: `rm -rf ${paths.runDir}  (it is recreated at the next start)`,
      };
    }
  }
  let sock: Deno.FileInfo | undefined;
  try {
    sock = await Deno.stat(paths.socketPath);
  } catch { /* none */ }
  if (!sock) {
    return {
      name: "socket",
      status: "ok",
      detail: `${paths.socketPath} (created when the daemon starts)`,
    };
  }
  const mode = ((sock.mode ?? 0) & 0o777).toString(8);
  const ok = await answers(paths.socketPath);
  if (ok) {
    return {
      name: "socket",
      status: "ok",
      detail: `${paths.socketPath} (mode ${mode}, uid ${sock.uid}, gid ${sock.gid})`,
    };
  }
  try {
    const c = await Deno.connect({ transport: "unix", path: paths.socketPath });
    c.close();
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) {
      return {
        name: "socket",
        status: "fail",
        detail:
          `${paths.socketPath}: permission denied (mode ${mode}, uid ${sock.uid}, gid ${sock.gid})`,
        fix: `run as a member of gid ${sock.gid}, or start the daemon with --group`,
      };
    }
  }
  return {
    name: "socket",
    status: "ok",
    detail: `${paths.socketPath}: stale (nothing listens); replaced at the next start`,
  };
}

async function checkDisk(rootDir: string, id: Identity): Promise<Check> {
  let probe = rootDir;
  for (;;) {
    try {
      await Deno.stat(probe);
      break;
    } catch {
      const up = dirname(probe);
      if (up === probe) break;
      probe = up;
    }
  }
  const df = await run("df", ["-Pk", probe]);
  const fields = df.out.split("\n")[1]?.trim().split(/\s+/);
  if (!df.ok || !fields || fields.length < 6) {
    return {
      name: "state dir",
      status: "warn",
      detail: `${rootDir}: cannot measure free space (${df.out.split("\n")[0]})`,
    };
  }
  const availKiB = Number(fields[3]);
  const sizeKiB = Number(fields[1]);
  const gib = (kib: number) => `${(kib / (1 << 20)).toFixed(1)} GiB`;
  let writable = true;
  if (probe === rootDir) {
    try {
      const st = await Deno.stat(rootDir);
      writable = st.uid === id.euid || id.euid === 0;
    } catch { /* checked above */ }
  }
  const detail = `${rootDir} on ${fields[5]}: ${gib(availKiB)} free of ${gib(sizeKiB)}`;
  if (!writable) {
    return {
      name: "state dir",
      status: "fail",
      detail: `${detail}; not owned by you`,
      fix: `sudo chown -R ${id.user} ${rootDir}`,
    };
  }
  if (availKiB < 1 << 20) {
    return {
      name: "state dir",
      status: "fail",
      detail,
      fix: "free disk space, or run 'buildctl prune' / 'buildctl daemon reset'",
    };
  }
  if (availKiB < 5 << 20 || availKiB < sizeKiB * 0.05) {
    return {
      name: "state dir",
      status: "warn",
      detail,
      fix: "builds may fail when the disk fills; run 'buildctl prune'",
    };
  }
  return { name: "state dir", status: "ok", detail };
}

/** Renders the report as text. */
export function renderDoctor(r: DoctorReport): string {
  const lines = [`buildctl daemon doctor: ${r.mode} daemon for user "${r.user}" at ${r.address}`];
  const width = Math.max(...r.checks.map((c) => c.name.length));
  for (const c of r.checks) {
    const tag = c.status === "ok" ? "ok  " : c.status === "warn" ? "warn" : "FAIL";
    lines.push(`  ${tag}  ${c.name.padEnd(width)}  ${c.detail}`);
    if (c.fix && c.status !== "ok") {
      const pad = " ".repeat(10 + width);
      lines.push(`${pad}fix: ${c.fix.split("\n").join(`\n${pad}     `)}`);
    }
  }
  lines.push(
    r.failures === 0
      ? `no problems found${
        r.warnings ? ` (${r.warnings} warning${r.warnings === 1 ? "" : "s"})` : ""
      }`
      : `${r.failures} problem${r.failures === 1 ? "" : "s"} found${
        r.warnings ? `, ${r.warnings} warning${r.warnings === 1 ? "" : "s"}` : ""
      }`,
  );
  return lines.join("\n") + "\n";
}
