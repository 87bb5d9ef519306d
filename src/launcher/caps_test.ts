import assert from "node:assert/strict";
import { evaluatePrivileges, privilegeProblems } from "./caps.ts";

const full = "ffffffffff";
const status = (eff: string, bnd: string, euid = "0", nnp = "0") =>
  `Uid:\t0\t${euid}\t0\t0\nNoNewPrivs:\t${nnp}\nCapEff:\t${eff}\nCapBnd:\t${bnd}\n`;
const hostMap = "         0          0 4294967295\n";

Deno.test("evaluatePrivileges() accepts root with every needed capability", () => {
  assert.deepEqual(privilegeProblems(evaluatePrivileges(status(full, full), hostMap)), []);
});

Deno.test("evaluatePrivileges() names what is missing", () => {
  const noSysAdmin = (BigInt(`0x${full}`) & ~(1n << 21n)).toString(16);
  const p = privilegeProblems(evaluatePrivileges(status(full, noSysAdmin), hostMap));
  assert.deepEqual(p, ["capability bounding set lacks: CAP_SYS_ADMIN"]);
  const eff = privilegeProblems(evaluatePrivileges(status("0", full), hostMap));
  assert.match(eff[0]!, /^missing effective capabilities: CAP_CHOWN, CAP_DAC_OVERRIDE/);
  assert.match(
    privilegeProblems(evaluatePrivileges(status(full, full, "1000"), hostMap))[0]!,
    /not running as root/,
  );
  assert.match(
    privilegeProblems(evaluatePrivileges(status(full, full), "0 100000 65536\n"))[0]!,
    /user namespace/,
  );
});
