/**
 * A sandbox for the daemon tests: a private mount namespace
 * (`unshare --mount --propagation private`) with its own tmpfs /run,
 * /var/lib and /home, so that the real default address
 * (/run/buildkit/buildkitd.sock), /var/lib/buildkit and the test user's home
 * are empty and private. A daemon a developer already runs on the host is
 * never seen nor touched. Our buildctl runs inside it (as root or as a real
 * unprivileged user made with useradd), exactly as a user would run it.
 *
 * Deno refuses to read /proc without --allow-all, so process inspection
 * here goes through `sh`.
 *
 * @module
 */

import nodeAssert from "node:assert/strict";
import { REPO, TEST_PATH } from "./paths.ts";
import { buildctlCommand, collect } from "./run.ts";

/** The unprivileged user of the rootless tests (created with useradd, which adds a subuid range). */
export const TEST_USER = "bkdtest";

/** The outcome of a command in the sandbox. */
export interface NsResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time in ms. */
  ms: number;
}

/** Options of a command in the sandbox. */
export interface NsRunOptions {
  /** Run as the test user (rootless) instead of root. */
  user?: boolean;
  /** Extra environment (over PATH, HOME, NO_COLOR, and XDG_RUNTIME_DIR for the user). */
  env?: Record<string, string>;
  /** Remove these variables from the default environment. */
  unset?: string[];
  stdin?: string;
  timeoutMs?: number;
}

/** A private mount namespace with helpers. */
export interface Sandbox {
  /** pid of the process that keeps the namespace alive. */
  holderPid: number;
  /** uid/gid of the test user (when created with `user: true`). */
  uid: number;
  gid: number;
  /** Runs our buildctl inside. */
  buildctl(args: string[], opts?: NsRunOptions): Promise<NsResult>;
  /** Starts our buildctl inside without waiting. */
  spawnBuildctl(args: string[], opts?: NsRunOptions): { done: Promise<NsResult> };
  /** Runs `sh -c script` inside (as root, or as the user). */
  sh(script: string, opts?: NsRunOptions): Promise<NsResult>;
  /** Reads a file inside the namespace ("" when missing). */
  read(path: string): Promise<string>;
  /** pids of processes in the namespace whose command name is `comm`. */
  pids(comm: string): Promise<number[]>;
  /** Stops everything started inside and leaves the namespace. */
  dispose(): Promise<void>;
}

async function capture(cmd: string, args: string[]): Promise<string> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(o.stdout).trim();
}

/** Makes sure the test user exists (useradd -m, which also assigns a subuid/subgid range). */
export async function ensureTestUser(): Promise<{ uid: number; gid: number }> {
  let uid = await capture("id", ["-u", TEST_USER]);
  if (!uid) {
    const o = await new Deno.Command("useradd", {
      args: ["-m", "-s", "/bin/sh", TEST_USER],
      stderr: "piped",
    })
      .output();
    if (!o.success) throw new Error(`useradd failed: ${new TextDecoder().decode(o.stderr)}`);
    uid = await capture("id", ["-u", TEST_USER]);
  }
  const gid = await capture("id", ["-g", TEST_USER]);
  return { uid: Number(uid), gid: Number(gid) };
}

/** Options of {@linkcode createSandbox}. */
export interface SandboxOptions {
  /** Prepare the test user (home, XDG_RUNTIME_DIR, Deno cache). */
  user?: boolean;
  /** Hide the user's subordinate id ranges (bind an empty file over /etc/subuid and /etc/subgid). */
  noSubIds?: boolean;
}

/** Creates a sandbox. Always `dispose()` it (try/finally). */
export async function createSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const { uid, gid } = opts.user ? await ensureTestUser() : { uid: 0, gid: 0 };
  const denoDir = opts.user ? `/tmp/buildctl-test-deno-${uid}` : "";
  if (opts.user) {
    await Deno.mkdir(denoDir, { recursive: true });
    await Deno.chown(denoDir, uid, gid);
  }
  const empty = await Deno.makeTempFile({ prefix: "empty-subid-" });
  const setup = [
    "set -e",
    "mount -t tmpfs -o mode=755 tmpfs /run",
    "mkdir -p /run/buildkit",
    "mount -t tmpfs -o mode=755 tmpfs /var/lib",
    "mkdir -p /var/lib/buildkit",
    "mount -t tmpfs -o mode=755 tmpfs /home",
    ...(opts.user
      ? [
        `mkdir -p /home/${TEST_USER} /run/user/${uid}`,
        `chown ${uid}:${gid} /home/${TEST_USER} /run/user/${uid}`,
        `chmod 700 /run/user/${uid}`,
      ]
      : []),
    ...(opts.noSubIds
      ? [`mount --bind ${empty} /etc/subuid`, `mount --bind ${empty} /etc/subgid`]
      : []),
    'echo "ready $$"',
    "exec sleep infinity",
  ].join("\n");
  const holder = new Deno.Command("unshare", {
    args: ["--mount", "--propagation", "private", "--fork", "--", "sh", "-c", setup],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = holder.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  holder.stdout.cancel().catch(() => {});
  const m = /ready (\d+)/.exec(text);
  if (!m) {
    const err = new TextDecoder().decode(
      (await holder.output().catch(() => ({ stderr: new Uint8Array() }))).stderr,
    );
    throw new Error(`cannot create the mount namespace: ${text} ${err}`);
  }
  const holderPid = Number(m[1]);

  const envFor = (o: NsRunOptions): string[] => {
    const env: Record<string, string> = {
      PATH: TEST_PATH,
      HOME: o.user ? `/home/${TEST_USER}` : "/root",
      NO_COLOR: "1",
      ...(o.user
        ? { XDG_RUNTIME_DIR: `/run/user/${uid}`, DENO_DIR: denoDir, USER: TEST_USER }
        : {}),
      ...(o.env ?? {}),
    };
    for (const k of o.unset ?? []) delete env[k];
    return Object.entries(env).map(([k, v]) => `${k}=${v}`);
  };
  const wrap = (argv: string[], o: NsRunOptions): string[] => [
    "--target",
    String(holderPid),
    "--mount",
    "--",
    ...(o.user ? ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--init-groups"] : []),
    "env",
    "-i",
    ...envFor(o),
    ...argv,
  ];
  const start = (argv: string[], o: NsRunOptions): { done: Promise<NsResult> } => ({
    done: collect("nsenter", wrap(argv, o), {
      cwd: REPO,
      ...(o.stdin !== undefined ? { stdin: o.stdin } : {}),
      ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
    }),
  });
  const buildctlArgv = (args: string[]) => [...buildctlCommand(), ...args];
  const sb: Sandbox = {
    holderPid,
    uid,
    gid,
    buildctl: (args, o = {}) => start(buildctlArgv(args), o).done,
    spawnBuildctl: (args, o = {}) => start(buildctlArgv(args), o),
    sh: (script, o = {}) => start(["sh", "-c", script], o).done,
    async read(path) {
      return (await sb.sh(`cat ${shellQuote(path)} 2>/dev/null || true`)).stdout;
    },
    async pids(comm) {
      const r = await sb.sh(
        `ns=$(readlink /proc/${holderPid}/ns/mnt); for p in /proc/[0-9]*; do ` +
          `[ "$(readlink $p/ns/mnt 2>/dev/null)" = "$ns" ] || continue; ` +
          `[ "$(cat $p/comm 2>/dev/null)" = ${shellQuote(comm)} ] && echo \${p#/proc/}; done; true`,
      );
      return r.stdout.split("\n").filter(Boolean).map(Number).filter((p) => p !== holderPid);
    },
    async dispose() {
      // Every process in the namespace and all their descendants (rootlesskit
      // puts buildkitd in a child namespace): SIGTERM, then SIGKILL.
      const victims = async () => {
        const r = await new Deno.Command("sh", {
          args: [
            "-c",
            `for p in /proc/[0-9]*; do q=\${p#/proc/}; ` +
            `set -- $(sed 's/.*) //' $p/stat 2>/dev/null); ` +
            `echo "$q $2 $(readlink $p/ns/mnt 2>/dev/null)"; done; true`,
          ],
          stdout: "piped",
        }).output();
        const rows = new TextDecoder().decode(r.stdout).split("\n").map((l) => l.split(" "))
          .filter((f) => f.length >= 3).map(([pid, ppid, ns]) => ({
            pid: Number(pid),
            ppid: Number(ppid),
            ns,
          }));
        const ns = rows.find((x) => x.pid === holderPid)?.ns;
        const set = new Set(rows.filter((x) => ns && x.ns === ns).map((x) => x.pid));
        for (let grew = true; grew;) {
          grew = false;
          for (const x of rows) {
            if (!set.has(x.pid) && set.has(x.ppid)) (set.add(x.pid), grew = true);
          }
        }
        set.delete(holderPid);
        return [...set];
      };
      for (const sig of ["SIGTERM", "SIGKILL"] as const) {
        for (const pid of await victims()) {
          try {
            Deno.kill(pid, sig);
          } catch { /* gone */ }
        }
        if (sig === "SIGTERM") await new Promise((r) => setTimeout(r, 500));
      }
      try {
        holder.kill("SIGKILL");
      } catch { /* gone */ }
      await new Deno.Command("kill", { args: ["-9", String(holderPid)], stderr: "null" }).output();
      await holder.status;
      await holder.stderr.cancel().catch(() => {});
      await Deno.remove(empty).catch(() => {});
    },
  };
  return sb;
}

/** Quotes a string for sh. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The pid in a `started buildkitd (pid N, …)` line, if any. */
export function startedPid(stderr: string): number | undefined {
  const m = /started buildkitd \(pid (\d+), (root|rootless)\) in \d+\.\ds; logs: \S+/.exec(stderr);
  return m ? Number(m[1]) : undefined;
}

/** Asserts a condition. */
export function assert(cond: unknown, msg?: string): asserts cond {
  nodeAssert.ok(cond, msg as string);
}

/** Asserts deep equality. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, msg as string);
}

/** Asserts that `text` matches `re`. */
export function assertMatch(text: string, re: RegExp, msg?: string): void {
  nodeAssert.match(text, re, msg as string);
}

/** Asserts that `text` contains `part`. */
export function assertStringIncludes(text: string, part: string, msg?: string): void {
  nodeAssert.ok(
    text.includes(part),
    msg ?? `expected to include ${JSON.stringify(part)}:\n${text}`,
  );
}
