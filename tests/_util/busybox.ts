/**
 * The offline base image: a busybox rootfs made from Debian's busybox-static,
 * used as a named build context (`--opt context:busybox=local:bb --local bb=DIR`).
 *
 * @module
 */

import { join } from "node:path";

let cached: Promise<string> | undefined;

/** Builds (once per process) a busybox rootfs directory and returns its path. */
export function busyboxRootfs(): Promise<string> {
  cached ??= make();
  return cached;
}

async function make(): Promise<string> {
  const src = ["/bin/busybox", "/usr/bin/busybox"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  if (!src) throw new Error("busybox-static is not installed (run scripts/deps.sh)");
  const dir = await Deno.makeTempDir({ prefix: "bb-rootfs-" });
  for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev", "root"]) {
    await Deno.mkdir(join(dir, d));
  }
  await Deno.copyFile(src, join(dir, "bin", "busybox"));
  await Deno.chmod(join(dir, "bin", "busybox"), 0o755);
  const list = await new Deno.Command(src, { args: ["--list"], stdout: "piped" }).output();
  for (const applet of new TextDecoder().decode(list.stdout).split("\n")) {
    if (!applet || applet === "busybox") continue;
    await Deno.symlink("busybox", join(dir, "bin", applet));
  }
  await Deno.chmod(join(dir, "tmp"), 0o1777);
  await Deno.writeTextFile(join(dir, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  await Deno.writeTextFile(join(dir, "etc", "group"), "root:x:0:\n");
  return dir;
}

/** The build args that make `FROM busybox` resolve to the fixture. */
export async function busyboxArgs(): Promise<string[]> {
  const dir = await busyboxRootfs();
  return ["--opt", "context:busybox=local:bb", "--local", `bb=${dir}`];
}
