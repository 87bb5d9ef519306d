/**
 * `buildctl debug info` output, byte-for-byte as upstream (cmd/buildctl/debug/info.go).
 *
 * @module
 */

import { TabWriter } from "./tabwriter.ts";
import type { Template } from "./template.ts";
import { goValue } from "./gotypes.ts";
import { type Info, InfoPtrType } from "./types.ts";

/** Renders the stdout of `buildctl debug info [--format F]` (F parsed). Throws TemplateError on template errors. */
export function renderInfo(info: Info, opts: { template?: Template } = {}): string {
  if (opts.template) return opts.template.execute(goValue(InfoPtrType, info)) + "\n";
  const v = info.BuildkitVersion;
  const tw = new TabWriter(0, 0, 1, " ");
  tw.write(`BuildKit:\t${v.Package} ${v.Version} ${v.Revision}\n`);
  if (v.DockerfileVersion) tw.write(`Dockerfile:\t${v.DockerfileVersion}\n`);
  return tw.flush().take();
}
