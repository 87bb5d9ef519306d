/**
 * A small command-line framework: command trees, flags as upstream buildctl
 * spells them (`--flag v`, `--flag=v`, `-f v`, repeatable flags never split
 * on commas), generated help, and usage errors that name the culprit.
 *
 * Pure: it parses and renders; it never prints or exits.
 *
 * @module
 */

import { usageError } from "../errors.ts";

/** How a flag takes its value. */
export type FlagKind = "string" | "bool" | "list";

/** One flag of a command. */
export interface Flag {
  /** Long name without dashes, e.g. `keep-storage`. */
  name: string;
  /** One-letter alias, e.g. `f`. */
  short?: string;
  kind: FlagKind;
  /** One-line description for help. */
  usage: string;
  /** Value shown in help, e.g. `value`. */
  placeholder?: string;
  /** Default shown in help (the command applies it). */
  defaultText?: string;
  /** Environment variable shown in help. */
  env?: string;
  hidden?: boolean;
}

/** Parsed flag values, keyed by long name. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/** What a command's action receives. */
export interface Invocation<G> {
  /** Values of the command's own flags. */
  flags: FlagValues;
  /** Positional arguments (after flags; everything after `--` included). */
  args: string[];
  /** Global options, resolved once. */
  globals: G;
  /** Full command path, e.g. `buildctl debug workers`. */
  path: string;
  /** Whether a `--` separator was present, and where positional args after it start. */
  dashDashAt: number;
}

/** A command node. */
export interface Command<G> {
  name: string;
  aliases?: string[];
  /** One-line summary. */
  usage: string;
  /** Argument synopsis shown after the command name, e.g. `[-- BUILDKITD_FLAGS...]`. */
  argsUsage?: string;
  /** Longer text for help. */
  description?: string;
  flags?: Flag[];
  subcommands?: Command<G>[];
  hidden?: boolean;
  /** Most commands take no positional arguments; set to allow them. */
  acceptsArgs?: boolean;
  action?: (inv: Invocation<G>) => Promise<number | void>;
}

/** The result of parsing argv against a command tree. */
export type Parsed<G> =
  | {
    kind: "run";
    command: Command<G>;
    path: string;
    flags: FlagValues;
    globals: FlagValues;
    args: string[];
    dashDashAt: number;
  }
  | { kind: "help"; command: Command<G>; path: string }
  | { kind: "version" };

const HELP: Flag = { name: "help", short: "h", kind: "bool", usage: "show help" };

/**
 * Parses argv against the tree rooted at `root`. Global flags (the root's
 * flags) are accepted before or after the command name.
 *
 * @throws {BuildctlError} with exit code 2 for unknown commands or flags and missing values.
 */
export function parseArgv<G>(root: Command<G>, argv: string[]): Parsed<G> {
  const globalFlags = root.flags ?? [];
  const globals: FlagValues = {};
  let command = root;
  let path = root.name;
  let own: FlagValues = {};
  const args: string[] = [];
  let dashDashAt = -1;
  let sawCommandArg = false;

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === "--") {
      dashDashAt = args.length;
      args.push(...argv.slice(i + 1));
      break;
    }
    if (token.startsWith("-") && token !== "-") {
      const { name, inlineValue } = splitFlag(token);
      if (name === "help" || name === "h") return { kind: "help", command, path };
      if (command === root && (name === "version" || name === "v")) return { kind: "version" };
      const ownFlag = command === root ? undefined : findFlag(command.flags ?? [], name);
      const globalFlag = findFlag(globalFlags, name);
      const flag = ownFlag ?? globalFlag;
      if (!flag) {
        throw usageError(
          `unknown flag "${token.split("=")[0]}" for "${path}"`,
          `run "${path} --help" for the flags it accepts`,
        );
      }
      const target = ownFlag ? own : globals;
      let value: string | boolean;
      if (flag.kind === "bool") {
        if (inlineValue === undefined) value = true;
        else if (/^(true|1|t|TRUE|True)$/.test(inlineValue)) value = true;
        else if (/^(false|0|f|FALSE|False)$/.test(inlineValue)) value = false;
        else {throw usageError(
            `invalid value "${inlineValue}" for flag --${flag.name}: expected true or false`,
          );}
      } else if (inlineValue !== undefined) {
        value = inlineValue;
      } else {
        const next = argv[i + 1];
        if (next === undefined) {
          throw usageError(`flag --${flag.name} needs a value`, `run "${path} --help"`);
        }
        value = next;
        i++;
      }
      if (flag.kind === "list") {
        const list = (target[flag.name] as string[] | undefined) ?? [];
        list.push(value as string);
        target[flag.name] = list;
      } else {
        target[flag.name] = value;
      }
      continue;
    }
    // A positional: a subcommand name while we are still descending.
    const sub = !sawCommandArg ? findCommand(command.subcommands ?? [], token) : undefined;
    if (sub) {
      command = sub;
      path = `${path} ${sub.name}`;
      // Flags given before the subcommand that belong to the parent stay global only.
      own = {};
      continue;
    }
    if (command.subcommands?.length && !command.action) {
      throw usageError(
        `unknown command "${token}" for "${path}"`,
        suggest(token, command.subcommands) ?? `run "${path} --help" for the list of commands`,
      );
    }
    if (!command.acceptsArgs) {
      throw usageError(`"${path}" takes no arguments, got "${token}"`, `run "${path} --help"`);
    }
    sawCommandArg = true;
    args.push(token);
  }

  if (!command.action) return { kind: "help", command, path };
  if (dashDashAt >= 0 && !command.acceptsArgs) {
    throw usageError(`"${path}" takes no arguments after "--"`, `run "${path} --help"`);
  }
  return { kind: "run", command, path, flags: own, globals, args, dashDashAt };
}

function splitFlag(token: string): { name: string; inlineValue: string | undefined } {
  const body = token.replace(/^--?/, "");
  const eq = body.indexOf("=");
  return eq < 0
    ? { name: body, inlineValue: undefined }
    : { name: body.slice(0, eq), inlineValue: body.slice(eq + 1) };
}

function findFlag(flags: Flag[], name: string): Flag | undefined {
  return flags.find((f) => f.name === name || (f.short !== undefined && f.short === name));
}

function findCommand<G>(commands: Command<G>[], name: string): Command<G> | undefined {
  return commands.find((c) => c.name === name || (c.aliases ?? []).includes(name));
}

function suggest<G>(token: string, commands: Command<G>[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const c of commands) {
    if (c.hidden) continue;
    const d = editDistance(token, c.name);
    if (d <= 2 && (!best || d < best.d)) best = { name: c.name, d };
  }
  return best ? `did you mean "${best.name}"?` : undefined;
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** Renders help for a command, in the spirit of upstream's urfave/cli output. */
export function renderHelp<G>(root: Command<G>, command: Command<G>, path: string): string {
  const lines: string[] = [];
  lines.push("NAME:", `   ${path} - ${command.usage}`, "");
  const subs = (command.subcommands ?? []).filter((c) => !c.hidden);
  const synopsis = [path];
  if (command === root) synopsis.push("[global options]");
  if (subs.length) synopsis.push("command [command options]");
  else if ((command.flags ?? []).length) synopsis.push("[command options]");
  if (command.argsUsage) synopsis.push(command.argsUsage);
  lines.push("USAGE:", `   ${synopsis.join(" ")}`, "");
  if (command.description) lines.push("DESCRIPTION:", indent(command.description), "");
  if (subs.length) {
    lines.push("COMMANDS:");
    const width = Math.max(...subs.map((c) => names(c).length));
    for (const c of subs) lines.push(`   ${names(c).padEnd(width)}  ${c.usage}`);
    lines.push("");
  }
  const flags = [...(command === root ? [] : command.flags ?? []), HELP].filter((f) => !f.hidden);
  lines.push(command === root ? "GLOBAL OPTIONS:" : "OPTIONS:");
  const globalsList = command === root ? [...(root.flags ?? []), HELP, versionFlag] : flags;
  appendFlags(lines, globalsList);
  if (command !== root) {
    lines.push("", "GLOBAL OPTIONS (accepted after the command too):");
    appendFlags(lines, (root.flags ?? []).filter((f) => !f.hidden));
  }
  return lines.join("\n") + "\n";
}

const versionFlag: Flag = { name: "version", short: "v", kind: "bool", usage: "print the version" };

function appendFlags(lines: string[], flags: Flag[]): void {
  const rendered = flags.map((f) => {
    const short = f.short ? `-${f.short}, ` : "";
    const value = f.kind === "bool" ? "" : ` ${f.placeholder ?? "value"}`;
    return { left: `${short}--${f.name}${value}`, f };
  });
  const width = Math.max(...rendered.map((r) => r.left.length));
  for (const { left, f } of rendered) {
    let text = f.usage;
    if (f.defaultText !== undefined) text += ` (default: ${f.defaultText})`;
    if (f.env) text += ` [$${f.env}]`;
    if (f.kind === "list") text += " (repeatable)";
    lines.push(`   ${left.padEnd(width)}  ${text}`);
  }
}

function names<G>(c: Command<G>): string {
  return [c.name, ...(c.aliases ?? [])].join(", ");
}

function indent(text: string): string {
  return text.split("\n").map((l) => (l ? `   ${l}` : l)).join("\n");
}
