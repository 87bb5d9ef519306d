/**
 * buildctl for Deno: a BuildKit client compatible with upstream `buildctl`.
 *
 * @module
 */

import { main } from "./src/cli/main.ts";
import { processIo } from "./src/cli/io.ts";

if (import.meta.main) {
  const abort = new AbortController();
  // First Ctrl-C cancels the running command (a build is cancelled on the
  // daemon); a second one, or a command that does not finish within 5 s,
  // exits at once.
  Deno.addSignalListener("SIGINT", () => {
    if (abort.signal.aborted) Deno.exit(130);
    abort.abort(new DOMException("interrupted", "AbortError"));
    setTimeout(() => Deno.exit(130), 5000);
  });
  const code = await main(Deno.args, processIo(abort.signal));
  Deno.exit(abort.signal.aborted ? 130 : code);
}
