// The Auth attachable against a real buildkitd pulling from a fake registry: the daemon asks
// our session for credentials (Basic challenge), and with a Bearer challenge it falls back to
// fetching the token itself when GetTokenAuthority is not implemented by the client.

import assert from "node:assert/strict";
import { join } from "node:path";
import { connect, GrpcError, parseAddress } from "../src/client/mod.ts";
import { startSession } from "../src/session/session.ts";
import { startDaemon } from "./_util/daemon.ts";
import { SolveRequest } from "../src/gen/github.com/moby/buildkit/api/services/control/control_solve.ts";

interface Seen {
  path: string;
  authorization: string | null;
}

/** A registry that only answers 401 challenges, recording what it is sent. */
function fakeRegistry(
  scheme: "basic" | "bearer",
): { port: number; seen: Seen[]; close(): Promise<void> } {
  const seen: Seen[] = [];
  const ac = new AbortController();
  let port = 0;
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: ac.signal,
    onListen: () => {},
  }, (req) => {
    const url = new URL(req.url);
    seen.push({ path: url.pathname + url.search, authorization: req.headers.get("authorization") });
    if (url.pathname === "/token") {
      return Response.json({ token: "tkn", access_token: "tkn", expires_in: 300 });
    }
    const challenge = scheme === "basic"
      ? `Basic realm="fake"`
      : `Bearer realm="http://127.0.0.1:${port}/token",service="fake-registry",scope="repository:img:pull"`;
    return new Response("unauthorized", {
      status: 401,
      headers: { "www-authenticate": challenge },
    });
  });
  port = server.addr.port;
  return { port, seen, close: () => (ac.abort(), server.finished) };
}

async function pullWithSession(
  scheme: "basic" | "bearer",
): Promise<{ seen: Seen[]; error: string }> {
  const reg = fakeRegistry(scheme);
  const dir = await Deno.makeTempDir({ prefix: "sess-auth-" });
  const toml = join(dir, "buildkitd.toml");
  await Deno.writeTextFile(
    toml,
    `[registry."127.0.0.1:${reg.port}"]\n  http = true\n  insecure = true\n`,
  );
  const d = await startDaemon({ flags: ["--config", toml] });
  try {
    const ctx = join(dir, "ctx");
    await Deno.mkdir(ctx);
    await Deno.writeTextFile(join(ctx, "Dockerfile"), `FROM 127.0.0.1:${reg.port}/img:tag\n`);
    const docker = join(dir, "config.json");
    await Deno.writeTextFile(
      docker,
      JSON.stringify({ auths: { [`127.0.0.1:${reg.port}`]: { auth: btoa("alice:wonderland") } } }),
    );
    const client = await connect({ address: parseAddress(d.addr), timeoutMs: 10_000 });
    try {
      const session = await startSession(client, {
        localDirs: new Map([["context", ctx], ["dockerfile", ctx]]),
        auth: { configFile: docker },
      });
      const req = SolveRequest.fromPartial({
        Ref: `auth${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`,
        Session: session.id,
        Frontend: "dockerfile.v0",
      });
      const error = await client.solve(req).then(
        () => "",
        (err: GrpcError) => err.details,
      );
      await session.close();
      return { seen: reg.seen, error };
    } finally {
      client.close();
    }
  } finally {
    await d.stop();
    await reg.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("session auth: Basic challenge is answered with docker-config credentials from the session", async () => {
  const { seen, error } = await pullWithSession("basic");
  assert.notEqual(error, "", "the pull cannot succeed against the fake registry");
  const expected = `Basic ${btoa("alice:wonderland")}`;
  assert.ok(
    seen.some((s) => s.authorization === expected),
    `no request carried our credentials: ${JSON.stringify(seen)}`,
  );
});

Deno.test("session auth: Bearer challenge falls back to the daemon fetching the token with our credentials", async () => {
  const { seen } = await pullWithSession("bearer");
  const token = seen.find((s) => s.path.startsWith("/token"));
  assert.ok(token, `the daemon never asked for a token: ${JSON.stringify(seen)}`);
  assert.equal(token.authorization, `Basic ${btoa("alice:wonderland")}`);
  assert.ok(seen.some((s) => s.authorization === "Bearer tkn"), "the token was then used");
});
