/**
 * `buildctl daemon …`: the daemon's lifecycle (start, state, stop, reset,
 * logs, doctor) and the automatic start every other command relies on
 * ({@linkcode installAutoStart}).
 *
 * @module
 */

import { resolve } from "../../path.ts";
import type { Command, Flag, Invocation } from "../command.ts";
import type { Globals } from "../globals.ts";
import { setAutoStart } from "../connect.ts";
import { formatGoDuration } from "../format/units.ts";
import { GRANT_FLAGS, INSTALL_OVERRIDE_FLAGS, overridesFromFlags } from "../flags/daemon.ts";
import { BuildctlError, ExitCode, usageError } from "../../errors.ts";
import type { DaemonState } from "../../daemon/mod.ts";
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  IDLE_TIMEOUT_ENV,
  START_TIMEOUT_ENV,
} from "../../daemon/settings.ts";

// The daemon manager is loaded by the action that needs it: the command
// tree is built for every command (and for --version), so it imports only
// flag definitions and constants.
const manager = () => import("../../daemon/mod.ts");
const launcher = () => import("../../daemon/launcher_client.ts");

/**
 * Installs the automatic start into `connectDaemon`: when a command needs
 * the daemon at the default address, it is found or started (see
 * `daemon/auto.ts`). Call once from the app.
 */
export function installAutoStart(): void {
  setAutoStart(async (g: Globals) => {
    const { resolveDefaultDaemon } = await import("../../daemon/auto.ts");
    return resolveDefaultDaemon({
      env: g.io.env,
      report: (line) => g.io.stderr.write(`${line}\n`),
    });
  });
}

const DEFAULT_IDLE_TEXT = formatGoDuration(BigInt(DEFAULT_IDLE_TIMEOUT_MS) * 1_000_000n);

function dur(ms: number): string {
  return formatGoDuration(BigInt(Math.round(ms / 1000)) * 1_000_000_000n);
}

function str(inv: Invocation<Globals>, name: string): string | undefined {
  const v = inv.flags[name];
  return typeof v === "string" ? v : undefined;
}

const report = (g: Globals) => (line: string) => g.io.stderr.write(`${line}\n`);

/** `--format text|json` of `daemon state` and `daemon doctor`. */
const TEXT_OR_JSON_FLAG: Flag = {
  name: "format",
  kind: "string",
  usage: 'output format: "text" or "json"',
  defaultText: '"text"',
};

function textOrJson(inv: Invocation<Globals>): "text" | "json" {
  const format = str(inv, "format") ?? "text";
  if (format !== "text" && format !== "json") {
    throw usageError(`unsupported --format "${format}"`, 'use "text" or "json"');
  }
  return format;
}

/** The `daemon` command tree. */
export function daemonCommand(): Command<Globals> {
  return {
    name: "daemon",
    usage: "manage the build daemon (started automatically when a command needs it)",
    description: [
      "Commands that talk to the daemon start buildkitd by themselves when neither --addr nor",
      "BUILDKIT_HOST is given and nothing answers: as root a root daemon at",
      "unix:///run/buildkit/buildkitd.sock (state in /var/lib/buildkit); as any other user a",
      "rootless daemon under rootlesskit at $XDG_RUNTIME_DIR/buildkit/buildkitd.sock (state in",
      "~/.local/share/buildkit). One daemon is shared by every command of that user.",
      "",
      `An automatically started daemon stops after ${DEFAULT_IDLE_TEXT} without builds or commands`,
      `($${IDLE_TIMEOUT_ENV}, 0 = never); the next command starts it again. A daemon started`,
      "with 'daemon start' runs until 'daemon stop' unless --timeout is given.",
      `$${START_TIMEOUT_ENV} bounds how long a start may take (default 30s).`,
      "",
      "Users who cannot run a rootless daemon get one from an administrator, once:",
      "  sudo buildctl daemon start --root=DIR --allow-user=USER[,USER...] --entitlements=E[,E...]",
      "installs a root-owned launcher and a narrow sudoers rule; from then on the user's commands",
      "start that daemon without a password (sudo -n) and reach it through a gatekeeper that checks",
      "the caller (SO_PEERCRED) and the entitlements granted. 'sudo buildctl daemon revoke USER'",
      "removes a grant.",
    ].join("\n"),
    subcommands: [
      startCommand(),
      stateCommand(),
      stopCommand(),
      resetCommand(),
      logsCommand(),
      doctorCommand(),
      revokeCommand(),
      superviseCommand(),
    ],
  };
}

function revokeCommand(): Command<Globals> {
  return {
    name: "revoke",
    usage: "remove a user's grant and its sudoers line (run with sudo)",
    argsUsage: "USER",
    acceptsArgs: true,
    flags: INSTALL_OVERRIDE_FLAGS,
    async action(inv) {
      if (inv.args.length !== 1) {
        throw usageError("daemon revoke takes exactly one USER (a name or a uid)");
      }
      const { revokeDaemonAccess } = await import("../../daemon/grant.ts");
      revokeDaemonAccess({
        user: inv.args[0]!,
        overrides: overridesFromFlags(inv.flags),
        out: (line) => inv.globals.io.stdout.write(`${line}\n`),
      });
    },
  };
}

/** Whether this (non-root) user has a launcher grant. */
async function granted(g: Globals): Promise<boolean> {
  const uid = Deno.uid();
  if (uid === null || uid === 0) return false;
  const { launcherAddress } = await launcher();
  return launcherAddress(uid, { env: g.io.env }) !== undefined;
}

function renderLauncherState(s: unknown): string {
  const rec = s as Record<string, unknown>;
  const lines = [
    `buildkitd is ${
      rec["state"] === "running" ? "running (root, through the launcher)" : "not running"
    }`,
  ];
  for (const [k, v] of Object.entries(rec)) {
    if (k === "state" || v === undefined || v === null || typeof v === "object") continue;
    lines.push(`  ${`${k}:`.padEnd(15)}${v}`);
  }
  return lines.join("\n") + "\n";
}

function startCommand(): Command<Globals> {
  return {
    name: "start",
    usage: "start the daemon now (no-op when it runs)",
    argsUsage: "[-- BUILDKITD_FLAGS...]",
    acceptsArgs: true,
    description: [
      "Starts the daemon of the default address in the background and waits until it answers.",
      "The options stay in force when a later command starts it again; 'daemon reset' keeps them too.",
    ].join("\n"),
    flags: [
      {
        name: "root",
        kind: "string",
        usage: "state directory",
        placeholder: "DIR",
        defaultText: "/var/lib/buildkit or ~/.local/share/buildkit",
      },
      {
        name: "timeout",
        kind: "string",
        usage: "stop after this long without activity (e.g. 30m; 0 = never)",
        placeholder: "DURATION",
        defaultText: "never",
      },
      { name: "debug", kind: "bool", usage: "run buildkitd with --debug" },
      ...GRANT_FLAGS,
      ...INSTALL_OVERRIDE_FLAGS,
    ],
    async action(inv) {
      const g = inv.globals;
      const allowUsers = (inv.flags["allow-user"] as string[] | undefined) ?? [];
      if (allowUsers.length) {
        const root = str(inv, "root");
        if (!root) {
          throw usageError(
            "--allow-user needs --root=DIR: the state directory of the granted users' daemon",
          );
        }
        const { grantDaemonAccess } = await import("../../daemon/grant.ts");
        await grantDaemonAccess({
          root,
          users: allowUsers,
          ...(str(inv, "entitlements") !== undefined
            ? { entitlements: str(inv, "entitlements")! }
            : {}),
          ...(str(inv, "timeout") !== undefined ? { timeout: str(inv, "timeout")! } : {}),
          overrides: overridesFromFlags(inv.flags),
          env: g.io.env,
          out: (line) => g.io.stdout.write(`${line}\n`),
        });
        return;
      }
      if (str(inv, "entitlements") !== undefined) {
        throw usageError("--entitlements goes with --allow-user (a grant for other users)");
      }
      if (inv.args.length && inv.dashDashAt !== 0) {
        throw usageError(
          `unexpected argument "${inv.args[0]}"`,
          'pass buildkitd flags after "--", e.g. buildctl daemon start -- --oci-worker-gc=false',
        );
      }
      const { daemonContext, ensureDaemon, parseDurationMs, recordAlive, startTimeoutMs } =
        await manager();
      const ctx = daemonContext(g.io.env);
      const rootText = str(inv, "root");
      const timeoutText = str(inv, "timeout");
      const requested = {
        ...(rootText ? { rootDir: resolve(rootText) } : {}),
        ...(timeoutText !== undefined
          ? { idleTimeoutMs: parseDurationMs(timeoutText, "--timeout") }
          : {}),
        ...(inv.flags["debug"] === true ? { debug: true } : {}),
        ...(inv.dashDashAt === 0 ? { extraFlags: inv.args } : {}),
      };
      const result = await ensureDaemon({
        id: ctx.id,
        paths: ctx.paths,
        env: g.io.env,
        report: report(g),
        startedBy: "start",
        requested,
        startTimeoutMs: startTimeoutMs(g.io.env),
      });
      if (!result.started) {
        const rec = result.record;
        if (rec && (await recordAlive(rec))) {
          g.io.stdout.write(
            `buildkitd is already running (pid ${rec.daemon.pid}, ${rec.mode}) at ${result.address}\n`,
          );
          const differs = (requested.rootDir && requested.rootDir !== rec.options.rootDir) ||
            (requested.extraFlags &&
              requested.extraFlags.join(" ") !== rec.options.extraFlags.join(" ")) ||
            (requested.debug !== undefined && requested.debug !== rec.options.debug) ||
            (requested.idleTimeoutMs !== undefined &&
              requested.idleTimeoutMs !== rec.options.idleTimeoutMs);
          if (differs) {
            g.io.stderr.write(
              "note: it runs with other options; run 'buildctl daemon stop' first to apply new ones\n",
            );
          }
        } else {
          g.io.stdout.write(
            `a buildkitd not started by buildctl already answers at ${result.address}\n`,
          );
        }
      }
      return ExitCode.Ok;
    },
  };
}

function stateCommand(): Command<Globals> {
  return {
    name: "state",
    aliases: ["status"],
    usage: "show whether the daemon runs, and how",
    flags: [TEXT_OR_JSON_FLAG],
    async action(inv) {
      const g = inv.globals;
      const format = textOrJson(inv);
      if (await granted(g)) {
        const ls = await (await launcher()).launcherState({ env: g.io.env });
        g.io.stdout.write(
          format === "json" ? JSON.stringify(ls, null, 2) + "\n" : renderLauncherState(ls),
        );
        return;
      }
      const { daemonContext, daemonState } = await manager();
      const ctx = daemonContext(g.io.env);
      const s = await daemonState(ctx.paths);
      if (format === "json") g.io.stdout.write(JSON.stringify(s, null, 2) + "\n");
      else g.io.stdout.write(renderState(s));
      return ExitCode.Ok;
    },
  };
}

/** Renders `daemon state` as text. */
export function renderState(s: DaemonState): string {
  const rows: [string, string][] = [];
  const head = s.running
    ? `buildkitd is running (${s.managed ? s.mode : "not started by buildctl"})`
    : "buildkitd is not running (the next command that needs it starts it)";
  if (s.pid !== undefined) rows.push(["pid", String(s.pid)]);
  rows.push(["address", s.address], ["mode", s.mode], ["state dir", s.rootDir]);
  if (s.buildkitdVersion) rows.push(["version", s.buildkitdVersion]);
  if (s.uptimeMs !== undefined) rows.push(["uptime", dur(s.uptimeMs)]);
  if (s.startedBy) {
    rows.push([
      "started by",
      s.startedBy === "auto" ? "a command (automatic start)" : "buildctl daemon start",
    ]);
  }
  if (s.extraFlags.length) rows.push(["extra flags", s.extraFlags.join(" ")]);
  if (s.workers) {
    rows.push([
      "workers",
      `${s.workers.length}${
        s.workers.length
          ? ` (${s.workers.map((w) => `${w.id}: ${w.platforms.join(",")}`).join("; ")})`
          : ""
      }`,
    ]);
  }
  if (s.activeBuilds !== undefined) rows.push(["active builds", String(s.activeBuilds)]);
  if (s.running && s.managed) {
    if (!s.idleTimeoutMs) rows.push(["idle timeout", "none (runs until 'buildctl daemon stop')"]);
    else if (s.supervisorRunning) {
      const left = s.idleLeftMs !== undefined ? `; stops in ${dur(s.idleLeftMs)} if idle` : "";
      rows.push(["idle timeout", `${dur(s.idleTimeoutMs)}${left}`]);
    } else {rows.push([
        "idle timeout",
        `${dur(s.idleTimeoutMs)} (supervisor not running: it will not stop by itself)`,
      ]);}
  }
  if (s.error) rows.push(["error", s.error]);
  rows.push(["log", s.logPath]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  const lines = [head, ...rows.map(([k, v]) => `  ${`${k}:`.padEnd(width)} ${v}`)];
  if (s.lastLogLines.length) lines.push("last log lines:", ...s.lastLogLines.map((l) => `  ${l}`));
  return lines.join("\n") + "\n";
}

function stopCommand(): Command<Globals> {
  return {
    name: "stop",
    usage: "stop the daemon gracefully (the next command starts it again)",
    async action(inv) {
      const g = inv.globals;
      if (await granted(g)) {
        const was = await (await launcher()).launcherStop({ env: g.io.env });
        g.io.stdout.write(
          was ? "stopped buildkitd (through the launcher)\n" : "buildkitd is not running\n",
        );
        return;
      }
      const { daemonContext, stopDaemon } = await manager();
      const ctx = daemonContext(g.io.env);
      const r = await stopDaemon(ctx.paths);
      if (r.kind === "not-running") g.io.stdout.write("buildkitd is not running\n");
      else {
        g.io.stdout.write(
          `stopped buildkitd (pid ${r.pid}) in ${((r.elapsedMs ?? 0) / 1000).toFixed(1)}s${
            r.killed ? " (it ignored SIGTERM and was killed)" : ""
          }\n`,
        );
      }
      return ExitCode.Ok;
    },
  };
}

async function confirm(g: Globals, question: string): Promise<boolean> {
  g.io.stderr.write(`${question} [y/N] `);
  const reader = g.io.stdin.readable.getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
  } finally {
    reader.releaseLock();
  }
  return /^\s*y(es)?\s*$/i.test(text.split("\n")[0] ?? "");
}

function resetCommand(): Command<Globals> {
  return {
    name: "reset",
    usage: "stop the daemon, delete its state dir (all build cache), start it fresh",
    flags: [{ name: "force", short: "f", kind: "bool", usage: "do not ask for confirmation" }],
    async action(inv) {
      const g = inv.globals;
      if (await granted(g)) {
        if (inv.flags["force"] !== true) {
          throw usageError(
            "reset deletes the daemon's whole build cache; run again with --force to confirm",
          );
        }
        await (await launcher()).launcherReset({
          env: g.io.env,
          onStarting: () => report(g)("starting buildkitd through the launcher (sudo -n)"),
        });
        g.io.stdout.write("reset the daemon's state (through the launcher)\n");
        return;
      }
      const {
        daemonContext,
        ensureDaemon,
        readRecord,
        startTimeoutMs,
        stopDaemon,
        wipeStateDir,
      } = await manager();
      const ctx = daemonContext(g.io.env);
      const prev = readRecord(ctx.paths.recordPath);
      const rootDir = prev?.options.rootDir ?? ctx.paths.rootDir;
      if (inv.flags["force"] !== true) {
        if (!g.io.stdin.isTerminal) {
          throw usageError(`refusing to delete "${rootDir}" without confirmation`, "pass --force");
        }
        if (
          !(await confirm(
            g,
            `This stops buildkitd and deletes ${rootDir} (all build cache). Continue?`,
          ))
        ) {
          g.io.stderr.write("aborted\n");
          return ExitCode.Failure;
        }
      }
      const stopped = await stopDaemon(ctx.paths);
      if (stopped.kind === "stopped") g.io.stderr.write(`stopped buildkitd (pid ${stopped.pid})\n`);
      await wipeStateDir(rootDir, ctx.paths.mode, g.io.env);
      g.io.stderr.write(`deleted ${rootDir}\n`);
      const startedBy = prev?.startedBy ?? "auto";
      const opts = prev?.options;
      await ensureDaemon({
        id: ctx.id,
        paths: ctx.paths,
        env: g.io.env,
        report: report(g),
        startedBy,
        requested: opts
          ? {
            rootDir: opts.rootDir,
            extraFlags: opts.extraFlags,
            debug: opts.debug,
            ...(opts.idleTimeoutExplicit ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
          }
          : {},
        startTimeoutMs: startTimeoutMs(g.io.env),
      });
      return ExitCode.Ok;
    },
  };
}

function logsCommand(): Command<Globals> {
  return {
    name: "logs",
    usage: "print the daemon's log",
    flags: [
      {
        name: "follow",
        short: "f",
        kind: "bool",
        usage: "keep printing new lines (Ctrl-C to stop)",
      },
      {
        name: "tail",
        short: "n",
        kind: "string",
        usage: "print only the last N lines first",
        placeholder: "N",
      },
    ],
    async action(inv) {
      const g = inv.globals;
      if (await granted(g)) {
        const text = await (await launcher()).launcherLogs({ env: g.io.env });
        if (text === undefined) g.io.stdout.write("buildkitd is not running\n");
        else g.io.stdout.write(text.endsWith("\n") || text === "" ? text : text + "\n");
        return;
      }
      const { daemonContext, followLog, logPathFor, readRecord } = await manager();
      const ctx = daemonContext(g.io.env);
      const rec = readRecord(ctx.paths.recordPath);
      const logPath = rec?.logPath ?? logPathFor(ctx.paths.rootDir);
      const tailText = str(inv, "tail");
      if (tailText !== undefined && !/^\d+$/.test(tailText)) {
        throw usageError(`invalid value "${tailText}" for --tail`);
      }
      const found = await followLog(logPath, (b) => g.io.stdout.writeBytes(b), {
        follow: inv.flags["follow"] === true,
        ...(tailText !== undefined ? { tail: Number(tailText) } : {}),
        signal: g.io.signal,
      });
      if (!found) {
        throw new BuildctlError(`no daemon log at ${logPath} yet`, {
          hint:
            "the log is written when the daemon starts (any command that needs it, or 'buildctl daemon start')",
        });
      }
      return ExitCode.Ok;
    },
  };
}

function doctorCommand(): Command<Globals> {
  return {
    name: "doctor",
    usage: "check every prerequisite of the daemon and print the fix for each problem",
    flags: [TEXT_OR_JSON_FLAG],
    async action(inv) {
      const g = inv.globals;
      const format = textOrJson(inv);
      const { daemonContext, doctor, renderDoctor } = await manager();
      const ctx = daemonContext(g.io.env);
      const r = await doctor(ctx.id, ctx.paths, g.io.env);
      g.io.stdout.write(format === "json" ? JSON.stringify(r, null, 2) + "\n" : renderDoctor(r));
      return r.failures ? ExitCode.Failure : ExitCode.Ok;
    },
  };
}

function superviseCommand(): Command<Globals> {
  return {
    name: "_supervise",
    hidden: true,
    usage: "internal: the idle supervisor of an automatically started daemon",
    flags: [
      { name: "record", kind: "string", usage: "daemon record" },
      { name: "pid", kind: "string", usage: "daemon pid" },
    ],
    async action(inv) {
      const recordPath = str(inv, "record");
      const pid = Number(str(inv, "pid"));
      if (!recordPath || !Number.isInteger(pid)) {
        throw usageError("_supervise needs --record and --pid");
      }
      const { supervise } = await import("../../daemon/supervisor.ts");
      await supervise({ recordPath, daemonPid: pid });
      return ExitCode.Ok;
    },
  };
}
