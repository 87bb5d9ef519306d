/**
 * "Is this really root?": root in the initial user namespace with the
 * capabilities buildkitd and the launcher need, in both the effective and
 * the bounding set (sudo can run under a bounded set, e.g. in a container).
 * Pure parsing plus one reader of /proc/self.
 *
 * @module
 */

/** Capabilities needed, by number, with their names. */
export const REQUIRED_CAPS: ReadonlyMap<number, string> = new Map([
  [0, "CAP_CHOWN"],
  [1, "CAP_DAC_OVERRIDE"],
  [2, "CAP_DAC_READ_SEARCH"],
  [3, "CAP_FOWNER"],
  [4, "CAP_FSETID"],
  [5, "CAP_KILL"],
  [6, "CAP_SETGID"],
  [7, "CAP_SETUID"],
  [8, "CAP_SETPCAP"],
  [10, "CAP_NET_BIND_SERVICE"],
  [12, "CAP_NET_ADMIN"],
  [13, "CAP_NET_RAW"],
  [18, "CAP_SYS_CHROOT"],
  [19, "CAP_SYS_PTRACE"],
  [21, "CAP_SYS_ADMIN"],
  [27, "CAP_MKNOD"],
  [29, "CAP_AUDIT_WRITE"],
  [31, "CAP_SETFCAP"],
]);

/** What is missing for a privileged run; empty lists mean all is well. */
export interface PrivilegeReport {
  /** Effective uid is not 0. */
  notRoot: boolean;
  /** Running inside a user namespace (uid 0 is not the host's root). */
  userNamespace: boolean;
  /** no_new_privs is set. */
  noNewPrivs: boolean;
  /** Required capabilities absent from the effective set. */
  missingEffective: string[];
  /** Required capabilities absent from the bounding set. */
  missingBounding: string[];
}

function capSet(status: string, field: string): bigint | undefined {
  const m = new RegExp(`^${field}:\\s+([0-9a-fA-F]+)\\s*$`, "m").exec(status);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

/**
 * Evaluates /proc/self/status and /proc/self/uid_map texts.
 */
export function evaluatePrivileges(status: string, uidMap: string): PrivilegeReport {
  const euid = /^Uid:\s+\d+\s+(\d+)/m.exec(status)?.[1];
  const eff = capSet(status, "CapEff") ?? 0n;
  const bnd = capSet(status, "CapBnd") ?? 0n;
  const nnp = /^NoNewPrivs:\s+1\s*$/m.test(status);
  const missing = (set: bigint) =>
    [...REQUIRED_CAPS].filter(([n]) => (set & (1n << BigInt(n))) === 0n).map(([, name]) => name);
  const fullMap = uidMap.trim().split("\n").some((l) => {
    const f = l.trim().split(/\s+/);
    return f[0] === "0" && f[1] === "0" && f[2] === "4294967295";
  });
  return {
    notRoot: euid !== "0",
    userNamespace: !fullMap,
    noNewPrivs: nnp,
    missingEffective: missing(eff),
    missingBounding: missing(bnd),
  };
}

/** The problems in a report as sentences; empty when privileged enough. */
export function privilegeProblems(r: PrivilegeReport): string[] {
  const out: string[] = [];
  if (r.notRoot) out.push("not running as root (effective uid is not 0)");
  if (r.userNamespace) {
    out.push("running inside a user namespace: uid 0 here is not the host's root");
  }
  if (r.missingEffective.length > 0) {
    out.push(`missing effective capabilities: ${r.missingEffective.join(", ")}`);
  }
  if (r.missingBounding.length > 0) {
    out.push(`capability bounding set lacks: ${r.missingBounding.join(", ")}`);
  }
  return out;
}

/**
 * Reads this process's privilege report. Deno guards every /proc path behind
 * --allow-all, so the caller passes a reader (FFI in the launcher, a child
 * process in buildctl).
 */
export function currentPrivileges(read: (path: string) => string): PrivilegeReport {
  return evaluatePrivileges(read("/proc/self/status"), read("/proc/self/uid_map"));
}
