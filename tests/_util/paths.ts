/** Paths of the repository and its tools folder, for tests. @module */

import { join } from "node:path";

/** The repository root. */
export const REPO = join(import.meta.dirname!, "..", "..");
/** The git-ignored tools folder that scripts/deps.sh fills. */
export const TOOLS = Deno.env.get("BUILDCTL_TOOLS") ?? join(REPO, ".tools");
/** Its bin folder (deno, buildkitd, buildctl-upstream, runc links). */
export const TOOLS_BIN = join(TOOLS, "bin");
/** The pinned Deno. */
export const DENO = join(TOOLS_BIN, "deno");
/** Upstream Go buildctl, used only as a reference. */
export const UPSTREAM_BUILDCTL = join(TOOLS_BIN, "buildctl-upstream");
/** buildkitd. */
export const BUILDKITD = join(TOOLS_BIN, "buildkitd");
/** PATH for processes the tests start: the tools first. */
export const TEST_PATH =
  `${TOOLS_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
