/**
 * TLS over tcp:// end to end: a real buildkitd that serves TLS and requires
 * client certificates (its `--tlscacert`), certificates made with openssl
 * for the test, and our CLI next to upstream buildctl: the three TLS flags,
 * `--tlsdir`, `--tlsservername`, and the failures (wrong CA, no client
 * certificate, a server name that does not match).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startDaemon, type TestDaemon } from "./_util/daemon.ts";
import { run, runBuildctl, runUpstream } from "./_util/run.ts";

/** Certificates and keys of one test run (all PEM files). */
interface Pki {
  dir: string;
  ca: string;
  /** Server certificate for IP:127.0.0.1 and DNS:buildkitd.test. */
  serverCert: string;
  serverKey: string;
  /** Server certificate for DNS:buildkitd.test only. */
  dnsOnlyCert: string;
  dnsOnlyKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed none of the above. */
  otherCa: string;
  /** A `--tlsdir` folder: ca.pem, cert.pem, key.pem. */
  tlsDir: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const r = await run("openssl", args, { cwd: dir });
  assert.equal(r.code, 0, `openssl ${args.join(" ")}:\n${r.stderr}`);
}

async function makePki(dir: string): Promise<Pki> {
  const p = (name: string) => join(dir, name);
  const newKey = (name: string) =>
    openssl(dir, [
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-out",
      p(name),
    ]);
  const newCa = async (name: string, cn: string) => {
    await newKey(`${name}-key.pem`);
    await openssl(dir, [
      "req",
      "-x509",
      "-new",
      "-key",
      p(`${name}-key.pem`),
      "-out",
      p(`${name}.pem`),
      "-days",
      "2",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
  };
  const newLeaf = async (name: string, cn: string, extensions: string[]) => {
    await newKey(`${name}-key.pem`);
    await openssl(dir, [
      "req",
      "-new",
      "-key",
      p(`${name}-key.pem`),
      "-out",
      p(`${name}.csr`),
      "-subj",
      `/CN=${cn}`,
    ]);
    await Deno.writeTextFile(p(`${name}.ext`), extensions.join("\n") + "\n");
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      "-CA",
      p("ca.pem"),
      "-CAkey",
      p("ca-key.pem"),
      "-CAcreateserial",
      "-out",
      p(`${name}.pem`),
      "-days",
      "2",
      "-extfile",
      p(`${name}.ext`),
    ]);
  };
  await newCa("ca", "buildctl test CA");
  await newCa("other-ca", "some other CA");
  await newLeaf("server", "buildkitd", [
    "subjectAltName=IP:127.0.0.1,DNS:buildkitd.test",
    "extendedKeyUsage=serverAuth",
  ]);
  await newLeaf("dns-only", "buildkitd", [
    "subjectAltName=DNS:buildkitd.test",
    "extendedKeyUsage=serverAuth",
  ]);
  await newLeaf("client", "buildctl", ["extendedKeyUsage=clientAuth"]);
  const tlsDir = p("tlsdir");
  await Deno.mkdir(tlsDir);
  await Deno.copyFile(p("ca.pem"), join(tlsDir, "ca.pem"));
  await Deno.copyFile(p("client.pem"), join(tlsDir, "cert.pem"));
  await Deno.copyFile(p("client-key.pem"), join(tlsDir, "key.pem"));
  return {
    dir,
    ca: p("ca.pem"),
    serverCert: p("server.pem"),
    serverKey: p("server-key.pem"),
    dnsOnlyCert: p("dns-only.pem"),
    dnsOnlyKey: p("dns-only-key.pem"),
    clientCert: p("client.pem"),
    clientKey: p("client-key.pem"),
    otherCa: p("other-ca.pem"),
    tlsDir,
  };
}

/** A tcp port that was free a moment ago. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Runs `fn` with a fresh PKI and a daemon serving TLS with the given server
 * certificate on `tcp://127.0.0.1:<port>` (plus its usual unix socket),
 * requiring client certificates signed by the PKI's CA.
 */
async function withTlsDaemon(
  server: (pki: Pki) => { cert: string; key: string },
  fn: (addr: string, pki: Pki) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bkt-tls-" });
  let d: TestDaemon | undefined;
  try {
    const pki = await makePki(dir);
    const { cert, key } = server(pki);
    const addr = `tcp://127.0.0.1:${freePort()}`;
    d = await startDaemon({
      flags: ["--addr", addr, "--tlscert", cert, "--tlskey", key, "--tlscacert", pki.ca],
    });
    try {
      await fn(addr, pki);
    } catch (err) {
      console.error(`--- buildkitd log (${d.logPath}) ---\n${d.log()}\n--- end of log ---`);
      throw err;
    }
  } finally {
    await d?.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs ours and upstream with the same arguments: both succeed with the same output. */
async function sameAsUpstream(args: string[]): Promise<string> {
  const ours = await runBuildctl(args);
  const theirs = await runUpstream(args);
  assert.equal(theirs.code, 0, `upstream ${args.join(" ")} failed:\n${theirs.stderr}`);
  assert.equal(ours.code, 0, `ours failed:\n${ours.stderr}`);
  assert.equal(ours.stdout, theirs.stdout, `stdout differs\n--- ours stderr:\n${ours.stderr}`);
  assert.ok(ours.stdout.length > 0);
  return ours.stdout;
}

Deno.test("TLS with client certificates: flags and --tlsdir work like upstream, bad settings fail with 69", async (t) => {
  await withTlsDaemon(
    (pki) => ({ cert: pki.serverCert, key: pki.serverKey }),
    async (addr, pki) => {
      const certFlags = ["--tlscert", pki.clientCert, "--tlskey", pki.clientKey];

      await t.step("--tlscacert --tlscert --tlskey: debug workers and debug info", async () => {
        const out = await sameAsUpstream([
          "--addr",
          addr,
          "--tlscacert",
          pki.ca,
          ...certFlags,
          "debug",
          "workers",
        ]);
        assert.match(out, /^ID\s+PLATFORMS\n\S+\s+linux\//);
        await sameAsUpstream([
          "--addr",
          addr,
          "--tlscacert",
          pki.ca,
          ...certFlags,
          "debug",
          "info",
        ]);
      });

      await t.step("--tlsdir", async () => {
        await sameAsUpstream(["--addr", addr, "--tlsdir", pki.tlsDir, "debug", "workers"]);
      });

      await t.step("--tlsservername naming a SAN of the certificate", async () => {
        await sameAsUpstream([
          "--addr",
          addr,
          "--tlsdir",
          pki.tlsDir,
          "--tlsservername",
          "buildkitd.test",
          "debug",
          "workers",
        ]);
      });

      await t.step("a CA that did not sign the server's certificate: exit 69", async () => {
        const args = ["--addr", addr, "--tlscacert", pki.otherCa, ...certFlags, "debug", "workers"];
        const ours = await runBuildctl(args);
        assert.equal(ours.code, 69, ours.stderr);
        assert.equal(ours.stdout, "");
        assert.match(
          ours.stderr,
          new RegExp(`cannot connect to buildkitd at ${addr}: .*certificate`),
        );
        assert.notEqual((await runUpstream(args)).code, 0, "upstream fails too");
      });

      await t.step("no client certificate (the daemon requires one): exit 69", async () => {
        const args = ["--addr", addr, "--tlscacert", pki.ca, "debug", "workers"];
        const ours = await runBuildctl(args);
        assert.equal(ours.code, 69, ours.stderr);
        assert.equal(ours.stdout, "");
        assert.match(ours.stderr, new RegExp(`cannot connect to buildkitd at ${addr}`));
        assert.match(ours.stderr, /pass --tlscert and --tlskey \(or --tlsdir\)/);
        assert.notEqual((await runUpstream(args)).code, 0, "upstream fails too");
      });

      await t.step("a server name the certificate does not have: exit 69", async () => {
        const ours = await runBuildctl([
          "--addr",
          addr,
          "--tlsdir",
          pki.tlsDir,
          "--tlsservername",
          "other.test",
          "debug",
          "workers",
        ]);
        assert.equal(ours.code, 69, ours.stderr);
        assert.match(
          ours.stderr,
          new RegExp(`cannot connect to buildkitd at ${addr}: .*other\\.test`),
        );
      });

      await t.step("cleartext against the TLS port: exit 69", async () => {
        const ours = await runBuildctl(["--addr", addr, "debug", "workers"]);
        assert.equal(ours.code, 69, ours.stderr);
        assert.match(ours.stderr, new RegExp(`cannot connect to buildkitd at ${addr}`));
      });
    },
  );
});

Deno.test("TLS with a DNS-only server certificate: --tlsservername makes 127.0.0.1 work", async (t) => {
  await withTlsDaemon(
    (pki) => ({ cert: pki.dnsOnlyCert, key: pki.dnsOnlyKey }),
    async (addr, pki) => {
      await t.step("with --tlsservername buildkitd.test: same as upstream", async () => {
        await sameAsUpstream([
          "--addr",
          addr,
          "--tlscacert",
          pki.ca,
          "--tlscert",
          pki.clientCert,
          "--tlskey",
          pki.clientKey,
          "--tlsservername",
          "buildkitd.test",
          "debug",
          "workers",
        ]);
      });

      await t.step("without it: the IP is not in the certificate, exit 69", async () => {
        const args = ["--addr", addr, "--tlsdir", pki.tlsDir, "debug", "workers"];
        const ours = await runBuildctl(args);
        assert.equal(ours.code, 69, ours.stderr);
        assert.equal(ours.stdout, "");
        assert.match(
          ours.stderr,
          new RegExp(`cannot connect to buildkitd at ${addr}: .*127\\.0\\.0\\.1`),
        );
        assert.notEqual((await runUpstream(args)).code, 0, "upstream fails too");
      });
    },
  );
});
