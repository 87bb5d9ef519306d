/**
 * Runs one buildctl-side launcher call (src/daemon/launcher_client.ts) as
 * the current user and prints its result as one JSON line; used by the
 * launcher tests (run with -P=buildctl as the test user).
 *
 * `deno run -P=buildctl launcher_client_cli.ts address|start|state|stop|reset|logs|advice`
 *
 * @module
 */
import {
  grantAdvice,
  launcherAddress,
  launcherLogs,
  launcherReset,
  launcherState,
  launcherStop,
  startViaLauncher,
} from "../../src/daemon/launcher_client.ts";
import { BuildctlError } from "../../src/errors.ts";

const uid = Deno.uid()!;
try {
  let result: unknown;
  switch (Deno.args[0]) {
    case "address":
      result = launcherAddress(uid) ?? null;
      break;
    case "start":
      result = (await startViaLauncher()) ?? null;
      break;
    case "state":
      result = await launcherState();
      break;
    case "stop":
      result = await launcherStop();
      break;
    case "reset":
      await launcherReset();
      result = "reset";
      break;
    case "logs":
      result = (await launcherLogs({ bytes: 65536 })) ?? null;
      break;
    case "advice":
      result = grantAdvice(Deno.env.get("USER") ?? "me", uid, Deno.env.get("HOME") ?? "/");
      break;
    default:
      throw new Error(`unknown op ${Deno.args[0]}`);
  }
  console.log(JSON.stringify({ ok: true, result }));
} catch (err) {
  if (err instanceof BuildctlError) {
    console.log(
      JSON.stringify({ ok: false, message: err.message, hint: err.hint, exitCode: err.exitCode }),
    );
    Deno.exit(err.exitCode);
  }
  throw err;
}
