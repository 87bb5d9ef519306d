/**
 * `buildctl build`: the command's flags and help, as upstream spells them.
 * The implementation lives in `build.ts` and is imported when a build runs.
 *
 * @module
 */

import type { Command, Flag } from "../command.ts";
import type { Globals } from "../globals.ts";

const FLAGS: Flag[] = [
  {
    name: "output",
    short: "o",
    kind: "list",
    usage:
      "Define exports for build result, e.g. --output type=image,name=docker.io/username/image,push=true",
  },
  {
    name: "progress",
    kind: "string",
    usage:
      "Set type of progress (auto, plain, tty, rawjson, quiet). Use plain to show container output",
    defaultText: '"auto"',
    env: "BUILDKIT_PROGRESS",
  },
  { name: "trace", kind: "string", usage: "Path to trace file. Defaults to no tracing." },
  { name: "local", kind: "list", usage: "Allow build access to the local directory" },
  { name: "oci-layout", kind: "list", usage: "Allow build access to the local OCI layout" },
  { name: "frontend", kind: "string", usage: "Define frontend used for build" },
  {
    name: "opt",
    kind: "list",
    usage: "Define custom options for frontend, e.g. --opt target=foo --opt build-arg:foo=bar",
  },
  { name: "no-cache", kind: "bool", usage: "Disable cache for all the vertices" },
  {
    name: "export-cache",
    kind: "list",
    usage:
      "Export build cache, e.g. --export-cache type=registry,ref=example.com/foo/bar, or --export-cache type=local,dest=path/to/dir",
  },
  {
    name: "import-cache",
    kind: "list",
    usage:
      "Import build cache, e.g. --import-cache type=registry,ref=example.com/foo/bar, or --import-cache type=local,src=path/to/dir",
  },
  {
    name: "secret",
    kind: "list",
    usage: "Secret value exposed to the build. Format id=secretname,src=filepath",
  },
  {
    name: "allow",
    kind: "list",
    usage: "Allow extra privileged entitlement, e.g. network.host, security.insecure, device",
  },
  {
    name: "ssh",
    kind: "list",
    usage:
      "Allow forwarding SSH agent or a raw Unix socket to the builder. Format default|<id>[=<socket>[,raw=false]|<key>[,<key>]]",
  },
  {
    name: "metadata-file",
    kind: "string",
    usage: "Output build metadata (e.g., image digest) to a file as JSON",
  },
  { name: "source-policy-file", kind: "string", usage: "Read source policy file from a JSON file" },
  { name: "proxy-network", kind: "bool", usage: "Run build with proxy network enforcement" },
  { name: "ref-file", kind: "string", usage: "Write build ref to a file" },
  {
    name: "registry-auth-tlscontext",
    kind: "list",
    usage:
      "Overwrite TLS configuration when authenticating with registries, e.g. --registry-auth-tlscontext host=…",
  },
  {
    name: "debug-json-cache-metrics",
    kind: "string",
    usage:
      "Where to output json cache metrics, use 'stdout' or 'stderr' for standard (error) output.",
  },
];

/** The `build` command. */
export function buildCommand(): Command<Globals> {
  return {
    name: "build",
    aliases: ["b"],
    usage: "build",
    description: [
      "Build a Dockerfile (--frontend dockerfile.v0), a gateway frontend (--frontend gateway.v0",
      "--opt source=IMAGE), or an LLB definition piped to stdin (no --frontend).",
      "",
      "Example:",
      "  buildctl build --frontend dockerfile.v0 --local context=. --local dockerfile=. \\",
      "    --output type=oci,dest=image.tar",
    ].join("\n"),
    flags: FLAGS,
    // The implementation (session, progress, file sync) is loaded only when
    // a build runs, so that other commands start faster.
    action: async (inv) => (await import("./build.ts")).runBuild(inv.flags, inv.globals),
  };
}
