// Registry credentials from a docker config file, as the Auth attachable serves them.

import assert from "node:assert/strict";
import { join } from "node:path";
import type { ServerCall } from "./grpc_server.ts";
import { authHandlers, lookupCredentials } from "./auth.ts";
import {
  CredentialsRequest,
  CredentialsResponse,
} from "../gen/github.com/moby/buildkit/session/auth/auth.ts";

const b64 = (s: string) => btoa(s);

Deno.test("lookupCredentials() finds auths entries like docker's file store", () => {
  const config = {
    auths: {
      "https://index.docker.io/v1/": { auth: b64("hubuser:hubpass") },
      "registry.example.com": { username: "u", password: "p" },
      "https://legacy.example.com/v1/": { auth: b64("lu:lp:with:colons") },
      "tokens.example.com": { auth: b64("ignored:ignored"), identitytoken: "tok" },
    },
  };
  assert.deepEqual(lookupCredentials(config, "registry-1.docker.io"), {
    username: "hubuser",
    secret: "hubpass",
  });
  assert.deepEqual(lookupCredentials(config, "registry.example.com"), {
    username: "u",
    secret: "p",
  });
  assert.deepEqual(lookupCredentials(config, "legacy.example.com"), {
    username: "lu",
    secret: "lp:with:colons",
  });
  assert.deepEqual(lookupCredentials(config, "tokens.example.com"), {
    username: "",
    secret: "tok",
  });
  assert.deepEqual(lookupCredentials(config, "other.example.com"), { username: "", secret: "" });
});

Deno.test("lookupCredentials() gives anonymous credentials for hosts handled by credential helpers", () => {
  const config = {
    auths: { "ghcr.io": { auth: b64("a:b") } },
    credHelpers: { "ghcr.io": "gh" },
    credsStore: "desktop",
  };
  assert.deepEqual(lookupCredentials(config, "ghcr.io"), { username: "", secret: "" });
});

Deno.test("Auth/Credentials reads the config file once, and survives a broken file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auth-" });
  try {
    const file = join(dir, "config.json");
    await Deno.writeTextFile(
      file,
      JSON.stringify({ auths: { "r.example": { auth: b64("x:y") } } }),
    );
    const ask = async (configFile: string, host: string, warnings: string[] = []) => {
      const handler = authHandlers({ configFile, onWarning: (m) => warnings.push(m) })
        .get("/moby.filesync.v1.Auth/Credentials")!;
      let reply: Uint8Array | undefined;
      const call = {
        recv: () => Promise.resolve(CredentialsRequest.encode({ Host: host }).finish()),
        send: (m: Uint8Array) => {
          reply = m;
          return Promise.resolve();
        },
      } as unknown as ServerCall;
      await handler(call);
      return CredentialsResponse.decode(reply!);
    };
    assert.deepEqual(await ask(file, "r.example"), { Username: "x", Secret: "y" });
    await Deno.writeTextFile(file, "{not json");
    const warnings: string[] = [];
    assert.deepEqual(await ask(file, "r.example", warnings), { Username: "", Secret: "" });
    assert.equal(warnings.length, 1);
    assert.deepEqual(await ask(join(dir, "missing.json"), "r.example"), {
      Username: "",
      Secret: "",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
