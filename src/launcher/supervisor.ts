/**
 * The per-root-dir supervisor: one detached root process per daemon. It
 * pins the state directory, runs buildkitd in a private mount namespace on a
 * bind mount of the pinned directory, serves one gatekeeper and one control
 * socket per user granted on that root dir, a root-only admin socket, and
 * stops everything after the idle timeout.
 *
 * Daemon start, in order:
 * 1. `pinStateDir` walks the root dir by fd and opens `.buildkit-root`
 *    (root-owned, 0700; planted objects are refused, never repaired).
 * 2. The pinned fd is bind-mounted (`/proc/self/fd/N`, resolved by the kernel,
 *    not by name) onto `<runDir>/d/<id>/root` (root-only), remounted
 *    `nosuid,nodev`.
 * 3. `setpriv --pdeathsig SIGKILL -- unshare --mount --propagation private --
 *    buildkitd …` with a cleared environment, fixed PATH, cwd `/`, and only
 *    constants and config values as flags; the daemon's namespace keeps a
 *    private copy of the bind mount.
 * 4. Once the daemon listens, the bind mount is detached from the initial
 *    namespace: only the daemon's private namespace holds it, so renames or
 *    symlink swaps in the user's directory cannot redirect root's writes.
 *
 * @module
 */
import {
  AT,
  closeFd,
  connectUnix,
  listenUnix,
  LOCK,
  MNT,
  mount,
  MS,
  O,
  openat,
  type PeerCred,
  socketFromFd,
  tryFlock,
  umount2,
  type UnixListener,
} from "../sys/mod.ts";
import {
  entitlementHint,
  type Grant,
  grantsForRoot,
  idleTimeoutFor,
  type LauncherConfig,
  rootId,
  unionEntitlements,
} from "./config.ts";
import {
  type AuditRecord,
  formatAuditLine,
  type Gatekeeper,
  startGatekeeper,
} from "./gatekeeper.ts";
import { lookupUser } from "./identity.ts";
import { daemonPaths, type Layout, layoutPaths, SYSTEM_PATH, userSockets } from "./layout.ts";
import { appendLine, rotateIfLarge, tail, type TextLog, textLog } from "./logfile.ts";
import {
  ADMIN_OPS,
  type ControlResponse,
  type DaemonState,
  encodeResponse,
  MAX_LOG_BYTES,
  MAX_REQUEST_BYTES,
  parseRequest,
  USER_OPS,
} from "./protocol.ts";
import { loadConfig } from "./runtime.ts";
import {
  type Accessor,
  ensureRootDir,
  ensureRootDirs,
  type PinnedState,
  pinStateDir,
} from "./secure_fs.ts";

/** How the supervisor tells the `start` process the outcome (one JSON line). */
export type ReadyReport =
  | { ok: true; uids: number[] }
  | { ok: false; code: string; message: string };

/** How long buildkitd may take to listen. */
const DAEMON_READY_MS = 60_000;
/** How long buildkitd gets between SIGTERM and SIGKILL. */
const DAEMON_STOP_MS = 10_000;
/** How long a control client may take to send its request. */
const REQUEST_TIMEOUT_MS = 5_000;

/** The audit log path of a layout. */
export function auditPath(layout: Layout): string {
  return `${layout.logDir}/audit.log`;
}

/** Appends one launcher event to the audit log. */
export function auditEvent(layout: Layout, record: Record<string, unknown>): void {
  appendLine(auditPath(layout), JSON.stringify({ time: new Date().toISOString(), ...record }));
}

/** Opens (creating 0600) a lock file in a root-only directory; returns the fd. */
export function openLockFile(path: string): number {
  return openat(AT.FDCWD, path, O.RDWR | O.CREAT | O.NOFOLLOW | O.CLOEXEC, 0o600);
}

/** Creates the run and log directories with their fixed owners and modes. */
export function prepareDirs(layout: Layout, id: string): void {
  const paths = layoutPaths(layout);
  ensureRootDirs(layout.runDir, 0o755);
  ensureRootDir(layout.runDir, 0o755);
  ensureRootDir(paths.usersDir, 0o755);
  ensureRootDir(paths.daemonsDir, 0o700);
  ensureRootDir(daemonPaths(layout, id).dir, 0o700);
  ensureRootDirs(layout.logDir, 0o700);
  ensureRootDir(layout.logDir, 0o700);
}

/** The grants whose root dir has this id. */
export async function grantsForId(config: LauncherConfig, id: string): Promise<Grant[]> {
  const out: Grant[] = [];
  for (const g of config.grants) {
    if ((await rootId(g.root)) === id) out.push(g);
  }
  return out.length > 0 ? grantsForRoot(config, out[0]!.root) : [];
}

interface RunningDaemon {
  child: Deno.ChildProcess;
  pid: number;
  startedAt: string;
  entitlements: string[];
  exited: Promise<Deno.CommandStatus>;
  pumps: Promise<unknown>;
}

interface UserEndpoints {
  gate: Gatekeeper;
  control: UnixListener;
  loop: Promise<void>;
}

/**
 * Runs the supervisor for root-dir id `id` until it stops (idle timeout,
 * `stop`, `reset`, or no grant left). `report` is called exactly once, when
 * the daemon is ready or start-up failed.
 *
 * @returns the exit code
 */
export async function runSupervisor(
  layout: Layout,
  id: string,
  report: (r: ReadyReport) => void,
): Promise<number> {
  const s = new Supervisor(layout, id);
  return await s.run(report);
}

class Supervisor {
  readonly #layout: Layout;
  readonly #id: string;
  readonly #paths: ReturnType<typeof daemonPaths>;
  readonly #log: TextLog;
  #root = "";
  #runLockFd = -1;
  #startLockFd = -1;
  #pin: PinnedState | undefined;
  #served = new Map<number, Grant>();
  #users = new Map<number, UserEndpoints>();
  #admin: UnixListener | undefined;
  #adminLoop: Promise<void> | undefined;
  #daemon: RunningDaemon | undefined;
  #idleTimeoutMs = 600_000;
  #lastActive = Date.now();
  #busy = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #done!: (code: number) => void;
  readonly #finished: Promise<number>;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(layout: Layout, id: string) {
    this.#layout = layout;
    this.#id = id;
    this.#paths = daemonPaths(layout, id);
    this.#log = textLog(this.#paths.log, "launcher");
    this.#finished = new Promise((resolve) => (this.#done = resolve));
  }

  async run(report: (r: ReadyReport) => void): Promise<number> {
    try {
      prepareDirs(this.#layout, this.#id);
      rotateIfLarge(this.#paths.log);
      this.#runLockFd = openLockFile(this.#paths.runLock);
      if (!tryFlock(this.#runLockFd, LOCK.EX)) {
        report({ ok: false, code: "ALREADY_RUNNING", message: "a supervisor is already running" });
        return 0;
      }
      this.#startLockFd = openLockFile(this.#paths.startLock);
      const config = loadConfig(this.#layout);
      const grants = await grantsForId(config, this.#id);
      if (grants.length === 0) {
        throw new SupervisorError("NO_GRANT", "no grant names this root dir");
      }
      this.#root = grants[0]!.root;
      this.#log.write(`supervisor ${Deno.pid} starting for ${this.#root}`);
      const { pin, served } = this.#pinFor(grants);
      this.#pin = pin;
      this.#served = served;
      this.#idleTimeoutMs = idleTimeoutFor([...served.values()]) * 1000;
      await this.#startDaemon();
      this.#startAdmin();
      for (const uid of served.keys()) this.#openUser(uid);
      this.#lastActive = Date.now();
      this.#timer = setInterval(
        () => this.#checkIdle(),
        Math.max(200, Math.min(1000, this.#idleTimeoutMs / 4)),
      );
      this.#log.write(`ready: users ${[...served.keys()].join(",")}`);
      report({ ok: true, uids: [...served.keys()] });
    } catch (err) {
      const code = err instanceof SupervisorError ? err.code : "START_FAILED";
      const message = err instanceof Error ? err.message : String(err);
      this.#log.write(`start failed: ${message}`);
      auditEvent(this.#layout, {
        event: "daemon-start",
        root: this.#root || undefined,
        decision: "deny",
        reason: message,
      });
      report({ ok: false, code, message });
      await this.#shutdown("start failed");
      return 1;
    }
    return await this.#finished;
  }

  /** Pins the state dir for these grants; users who cannot use it are left out. */
  #pinFor(grants: Grant[]): { pin: PinnedState; served: Map<number, Grant> } {
    const accessors: Accessor[] = [];
    const failed: string[] = [];
    for (const g of grants) {
      try {
        const u = lookupUser(g.uid);
        accessors.push({ uid: u.uid, gids: u.gids, name: u.name });
      } catch (err) {
        failed.push(err instanceof Error ? err.message : String(err));
      }
    }
    if (accessors.length === 0) {
      throw new SupervisorError("NO_USER", `no granted user resolves: ${failed.join("; ")}`);
    }
    let pin: PinnedState;
    try {
      pin = pinStateDir(grants[0]!.root, accessors);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new SupervisorError("UNSAFE_ROOT", `unsafe root dir ${grants[0]!.root}: ${why}`);
    }
    const excluded = new Set(pin.excluded.map((e) => e.uid));
    for (const e of pin.excluded) this.#log.write(`excluded uid ${e.uid}: ${e.reason}`);
    const served = new Map<number, Grant>();
    for (const g of grants) {
      if (!excluded.has(g.uid) && accessors.some((a) => a.uid === g.uid)) served.set(g.uid, g);
    }
    return { pin, served };
  }

  // --- the daemon -------------------------------------------------------------

  async #startDaemon(): Promise<void> {
    const pin = this.#pin!;
    const paths = layoutPaths(this.#layout);
    const mp = this.#paths.mountPoint;
    const entitlements = unionEntitlements([...this.#served.values()]);
    try {
      umount2(mp, MNT.DETACH); // a stale mount from a killed supervisor
    } catch { /* not mounted */ }
    ensureRootDir(mp, 0o700);
    mount(`/proc/self/fd/${pin.stateFd}`, mp, null, MS.BIND);
    try {
      mount(null, mp, null, MS.REMOUNT | MS.BIND | MS.NOSUID | MS.NODEV);
      const args = [
        "--pdeathsig",
        "SIGKILL",
        "--",
        "/usr/bin/unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        paths.buildkitd,
        "--root",
        mp,
        "--addr",
        `unix://${this.#paths.socket}`,
        "--config",
        paths.buildkitdToml,
        "--oci-worker-binary",
        paths.runc,
        "--containerd-worker=false",
        ...bridgeNetwork(),
        ...entitlements.flatMap((e) => ["--allow-insecure-entitlement", e]),
      ];
      this.#log.write(`starting buildkitd (entitlements: ${entitlements.join(",") || "none"})`);
      const child = new Deno.Command("/usr/bin/setpriv", {
        args,
        clearEnv: true,
        env: { PATH: `${paths.binDir}:${SYSTEM_PATH}`, HOME: "/root", LANG: "C.UTF-8" },
        cwd: "/",
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const logPath = this.#paths.log;
      const pump = async (rs: ReadableStream<Uint8Array>) => {
        const f = await Deno.open(logPath, { append: true, create: true, mode: 0o600 });
        try {
          for await (const chunk of rs) await f.write(chunk);
        } catch {
          /* closed */
        } finally {
          f.close();
        }
      };
      const pumps = Promise.allSettled([pump(child.stdout), pump(child.stderr)]);
      let exited = false;
      const status = child.status.then((st) => {
        exited = true;
        return st;
      });
      this.#daemon = {
        child,
        pid: child.pid,
        startedAt: new Date().toISOString(),
        entitlements,
        exited: status,
        pumps,
      };
      status.then((st) => {
        if (this.#daemon?.child === child && !this.#stopping) {
          this.#log.write(`buildkitd exited unexpectedly (${st.code}/${st.signal ?? "-"})`);
          this.#enqueue(() => this.#shutdown("daemon exited"));
        }
      });
      const deadline = Date.now() + DAEMON_READY_MS;
      for (;;) {
        if (exited) {
          throw new SupervisorError(
            "DAEMON_FAILED",
            `buildkitd exited during start-up; its log: ${this.#paths.log}`,
          );
        }
        try {
          closeFd(await connectUnix(this.#paths.socket, { timeoutMs: 100 }));
          break;
        } catch { /* not yet */ }
        if (Date.now() > deadline) {
          throw new SupervisorError("DAEMON_FAILED", "buildkitd did not listen in time");
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      this.#log.write(`buildkitd ${child.pid} ready`);
    } finally {
      // The daemon's namespace has its own copy now; leave none in the initial namespace.
      try {
        umount2(mp, MNT.DETACH);
      } catch (err) {
        this.#log.write(`cannot detach ${mp}: ${err instanceof Error ? err.message : err}`);
      }
    }
  }

  async #stopDaemon(): Promise<void> {
    const d = this.#daemon;
    if (!d) return;
    this.#daemon = undefined;
    try {
      d.child.kill("SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      try {
        d.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, DAEMON_STOP_MS);
    const st = await d.exited;
    clearTimeout(timer);
    await d.pumps;
    this.#log.write(`buildkitd ${d.pid} stopped (${st.code}/${st.signal ?? "-"})`);
  }

  /** Removes everything inside the state dir, through a root-only bind mount of the pinned fd. */
  #wipe(): void {
    const pin = this.#pin;
    if (!pin) return;
    const wp = this.#paths.wipePoint;
    try {
      umount2(wp, MNT.DETACH);
    } catch { /* not mounted */ }
    ensureRootDir(wp, 0o700);
    mount(`/proc/self/fd/${pin.stateFd}`, wp, null, MS.BIND);
    try {
      mount(null, wp, null, MS.REMOUNT | MS.BIND | MS.NOSUID | MS.NODEV | MS.NOEXEC);
      for (const entry of [...Deno.readDirSync(wp)]) {
        Deno.removeSync(`${wp}/${entry.name}`, { recursive: true });
      }
    } finally {
      umount2(wp, MNT.DETACH);
    }
    this.#log.write(`state wiped`);
  }

  // --- endpoints ----------------------------------------------------------------

  #audit(r: AuditRecord): void {
    appendLine(auditPath(this.#layout), formatAuditLine({ ...r }).trimEnd() + "\n");
  }

  #openUser(uid: number): void {
    if (this.#users.has(uid)) return;
    const sockets = userSockets(this.#layout, uid);
    ensureRootDir(`${this.#layout.runDir}/users/${uid}`, 0o755);
    const gate = startGatekeeper({
      path: sockets.gate,
      mode: 0o666,
      replaceStaleSocket: true,
      upstream: this.#paths.socket,
      policy: (peer) => {
        const g = this.#served.get(peer);
        return g
          ? { allowed: true, entitlements: g.entitlements }
          : { allowed: false, entitlements: [] };
      },
      audit: (r) => this.#audit(r),
      hint: (peer, missing) => {
        const g = this.#served.get(peer);
        return g ? entitlementHint(g, missing) : undefined;
      },
      onError: (err) => this.#log.write(`gate ${uid}: ${err instanceof Error ? err.message : err}`),
    });
    const control = listenUnix(sockets.control, 0o666, { replaceStaleSocket: true });
    const loop = (async () => {
      for await (const conn of control) {
        this.#handle(conn.fd, conn.peer, "user").catch((err) =>
          this.#log.write(`control: ${err instanceof Error ? err.message : err}`)
        );
      }
    })();
    this.#users.set(uid, { gate, control, loop });
  }

  async #closeUser(uid: number): Promise<void> {
    const u = this.#users.get(uid);
    if (!u) return;
    this.#users.delete(uid);
    u.control.close();
    await u.loop.catch(() => {});
    await u.gate.close();
  }

  #startAdmin(): void {
    this.#admin = listenUnix(this.#paths.admin, 0o600, { replaceStaleSocket: true });
    const admin = this.#admin;
    this.#adminLoop = (async () => {
      for await (const conn of admin) {
        this.#handle(conn.fd, conn.peer, "admin").catch((err) =>
          this.#log.write(`admin: ${err instanceof Error ? err.message : err}`)
        );
      }
    })();
  }

  async #handle(fd: number, peer: PeerCred, kind: "user" | "admin"): Promise<void> {
    const sock = socketFromFd(fd);
    sock.on("error", () => sock.destroy());
    this.#busy++;
    try {
      const respond = (r: ControlResponse) =>
        new Promise<void>((resolve) => {
          if (sock.destroyed || !sock.writable) {
            sock.destroy();
            resolve();
            return;
          }
          const timer = setTimeout(() => {
            sock.destroy();
            resolve();
          }, REQUEST_TIMEOUT_MS);
          sock.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
          sock.end(encodeResponse(r));
        });
      const allowedPeer = kind === "admin" ? peer.uid === 0 : this.#served.has(peer.uid);
      if (!allowedPeer) {
        this.#audit({
          time: new Date().toISOString(),
          event: "connect",
          uid: peer.uid,
          gid: peer.gid,
          pid: peer.pid,
          method: `control/${kind}`,
          decision: "deny",
          reason: "uid not allowed by policy",
        });
        sock.destroy();
        return;
      }
      let line: string;
      try {
        line = await readLine(sock, MAX_REQUEST_BYTES, REQUEST_TIMEOUT_MS);
      } catch (err) {
        await respond({ ok: false, code: "BAD_REQUEST", message: errorText(err) });
        return;
      }
      let op;
      let bytes: number | undefined;
      try {
        const req = parseRequest(line, kind === "admin" ? ADMIN_OPS : USER_OPS);
        op = req.op;
        bytes = req.bytes;
      } catch (err) {
        await respond({ ok: false, code: "BAD_REQUEST", message: errorText(err) });
        return;
      }
      this.#lastActive = Date.now();
      auditEvent(this.#layout, {
        event: "control",
        uid: peer.uid,
        pid: peer.pid,
        op,
        root: this.#root,
        decision: "allow",
      });
      switch (op) {
        case "state":
          await respond({ ok: true, state: this.#state(peer.uid) });
          return;
        case "logs":
          await respond({ ok: true, log: tail(this.#paths.log, bytes ?? MAX_LOG_BYTES) });
          return;
        case "ping":
          await respond({ ok: true, uids: [...this.#served.keys()] });
          return;
        case "reload": {
          let uids: number[];
          try {
            uids = await this.#enqueue(() => this.#reload());
          } catch (err) {
            await respond({ ok: false, code: "FAILED", message: errorText(err) });
            return;
          }
          await respond({ ok: true, uids });
          return;
        }
        case "stop":
          await respond({ ok: true, message: "stopping" });
          this.#enqueue(() => this.#shutdown(`stop requested by uid ${peer.uid}`));
          return;
        case "reset": {
          await this.#enqueue(async () => {
            this.#stopping = true;
            await this.#stopDaemon();
            this.#wipe();
          });
          await respond({ ok: true, message: "state wiped" });
          this.#enqueue(() => this.#shutdown(`reset by uid ${peer.uid}`));
          return;
        }
      }
    } finally {
      this.#busy--;
      if (!sock.destroyed) sock.destroy();
    }
  }

  #state(uid: number): DaemonState {
    const d = this.#daemon;
    let connections = 0;
    for (const u of this.#users.values()) connections += u.gate.connections;
    return {
      state: "running",
      root: this.#root,
      entitlements: this.#served.get(uid)?.entitlements ?? [],
      daemonEntitlements: d?.entitlements ?? [],
      users: this.#served.size,
      pid: d?.pid ?? 0,
      startedAt: d?.startedAt ?? "",
      idleTimeoutSeconds: this.#idleTimeoutMs / 1000,
      connections,
      address: `unix://${userSockets(this.#layout, uid).gate}`,
    };
  }

  /** Serialises state changes (reload, stop, reset, idle shutdown). */
  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  async #reload(): Promise<number[]> {
    if (this.#stopping) return [];
    let grants: Grant[];
    try {
      grants = await grantsForId(loadConfig(this.#layout), this.#id);
    } catch (err) {
      this.#log.write(`reload: ${errorText(err)}; keeping the current policy`);
      throw err;
    }
    if (grants.length === 0) {
      this.#enqueue(() => this.#shutdown("no grant left for this root dir"));
      return [];
    }
    const { pin, served } = this.#pinFor(grants);
    const old = this.#served;
    const oldPin = this.#pin!;
    const samePin = pin.state.ino === oldPin.state.ino && pin.state.dev === oldPin.state.dev;
    const union = unionEntitlements([...served.values()]).join(",");
    const restart = !samePin || union !== (this.#daemon?.entitlements.join(",") ?? "");
    // Anyone removed or narrowed: drop every open connection (they were admitted under the old grant).
    const narrowed = [...old.values()].some((g) => {
      const n = served.get(g.uid);
      return !n || g.entitlements.some((e) => !n.entitlements.includes(e));
    });
    this.#served = served;
    this.#idleTimeoutMs = idleTimeoutFor([...served.values()]) * 1000;
    if (restart) {
      this.#log.write("reload: restarting buildkitd for the new grants");
      this.#stopping = true;
      await this.#stopDaemon();
      this.#stopping = false;
      if (!samePin) {
        closeFd(oldPin.stateFd);
        closeFd(oldPin.rootFd);
        this.#pin = pin;
      } else {
        closeFd(pin.stateFd);
        closeFd(pin.rootFd);
      }
      await this.#startDaemon();
    } else {
      closeFd(pin.stateFd);
      closeFd(pin.rootFd);
    }
    for (const uid of [...this.#users.keys()]) {
      if (!served.has(uid) || narrowed) await this.#closeUser(uid);
    }
    for (const uid of served.keys()) this.#openUser(uid);
    this.#log.write(`reloaded: users ${[...served.keys()].join(",")}`);
    return [...served.keys()];
  }

  #checkIdle(): void {
    if (this.#stopping) return;
    let connections = this.#busy;
    for (const u of this.#users.values()) connections += u.gate.connections;
    const now = Date.now();
    if (connections > 0) {
      this.#lastActive = now;
      return;
    }
    if (now - this.#lastActive < this.#idleTimeoutMs) return;
    // Never stop while a `start` holds the start lock (it is about to use us).
    if (this.#startLockFd < 0 || !tryFlock(this.#startLockFd, LOCK.EX)) return;
    this.#enqueue(() => this.#shutdown("idle timeout"));
  }

  async #shutdown(reason: string): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stopping = true;
    this.#admin?.close();
    await this.#adminLoop?.catch(() => {});
    for (const uid of [...this.#users.keys()]) await this.#closeUser(uid);
    await this.#stopDaemon();
    if (this.#pin) {
      closeFd(this.#pin.stateFd);
      closeFd(this.#pin.rootFd);
      this.#pin = undefined;
    }
    this.#log.write(`supervisor stopped: ${reason}`);
    auditEvent(this.#layout, { event: "daemon-stop", root: this.#root, reason });
    this.#done(0);
  }
}

class SupervisorError extends Error {
  override name = "SupervisorError";
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Reads one `\n`-terminated line of at most `max` bytes from a socket, within `timeoutMs`. */
function readLine(
  sock: ReturnType<typeof socketFromFd>,
  max: number,
  timeoutMs: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const done = (err?: Error, line?: string) => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("end", onEnd);
      sock.off("error", onEnd);
      if (err) reject(err);
      else resolve(line!);
    };
    const timer = setTimeout(() => done(new Error("request timed out")), timeoutMs);
    const onData = (chunk: Uint8Array) => {
      chunks.push(chunk);
      size += chunk.length;
      const all = new Uint8Array(size);
      let off = 0;
      for (const c of chunks) {
        all.set(c, off);
        off += c.length;
      }
      const nl = all.indexOf(10);
      if (nl >= 0) {
        done(undefined, new TextDecoder().decode(all.subarray(0, nl)));
      } else if (size >= max) {
        done(new Error("request too large"));
      }
    };
    const onEnd = () => done(new Error("connection closed before a full request"));
    sock.on("data", onData);
    sock.on("end", onEnd);
    sock.on("error", onEnd);
  });
}

/** Debian's CNI plugin dir (root-owned system path). */
const CNI_BIN_DIR = "/usr/lib/cni";

/**
 * Gives every RUN its own network namespace when the CNI plugins are
 * installed root-owned: without them buildkitd runs every step on the host's
 * network, and withholding `network.host` would isolate nothing.
 */
function bridgeNetwork(): string[] {
  try {
    const dir = Deno.statSync(CNI_BIN_DIR);
    const bridge = Deno.statSync(`${CNI_BIN_DIR}/bridge`);
    const safe = (st: Deno.FileInfo) => st.uid === 0 && ((st.mode ?? 0) & 0o022) === 0;
    if (!dir.isDirectory || !bridge.isFile || !safe(dir) || !safe(bridge)) return [];
  } catch {
    return [];
  }
  return ["--oci-worker-net=bridge", `--oci-cni-binary-dir=${CNI_BIN_DIR}`];
}
