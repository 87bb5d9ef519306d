/**
 * `buildctl debug info` output, byte-for-byte as upstream (cmd/buildctl/debug/info.go).
 *
 * @module
 */

import { TabWriter } from "./tabwriter.ts";
import { executeTemplate } from "./template.ts";
import { type Info, InfoPtrType } from "./types.ts";

/** Renders the stdout of `buildctl debug info [--format F]`. Throws TemplateError on template errors. */
export function renderInfo(info: Info, opts: { format?: string } = {}): string {
  if (opts.format) return executeTemplate(opts.format, InfoPtrType, info) + "\n";
  const v = info.BuildkitVersion;
  const tw = new TabWriter(0, 0, 1, " ");
  tw.write(`BuildKit:\t${v.Package} ${v.Version} ${v.Revision}\n`);
  if (v.DockerfileVersion) tw.write(`Dockerfile:\t${v.DockerfileVersion}\n`);
  return tw.flush().take();
}
