// The Secrets attachable: sources, NOT_FOUND for unknown ids, the size cap.

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ServerCall, Status } from "./grpc_server.ts";
import { MAX_SECRET_SIZE, secretsHandler, type SecretSource } from "./secrets.ts";
import {
  GetSecretRequest,
  GetSecretResponse,
} from "../gen/github.com/moby/buildkit/session/secrets/secrets.ts";

async function getSecret(secrets: Map<string, SecretSource>, id: string): Promise<string> {
  let reply: Uint8Array | undefined;
  const call = {
    recv: () => Promise.resolve(GetSecretRequest.encode({ ID: id, annotations: {} }).finish()),
    send: (m: Uint8Array) => {
      reply = m;
      return Promise.resolve();
    },
  } as unknown as ServerCall;
  await secretsHandler(secrets)(call);
  return new TextDecoder().decode(GetSecretResponse.decode(reply!).data);
}

Deno.test("Secrets/GetSecret serves file and env sources; unknown ids are NOT_FOUND", async () => {
  const dir = await Deno.makeTempDir({ prefix: "secrets-" });
  try {
    await Deno.writeTextFile(join(dir, "s"), "from-file");
    Deno.env.set("BUILDCTL_SECRET_TEST", "from-env");
    const secrets = new Map<string, SecretSource>([
      ["f", { kind: "file", path: join(dir, "s") }],
      ["e", { kind: "env", name: "BUILDCTL_SECRET_TEST" }],
      ["unset", { kind: "env", name: "BUILDCTL_SECRET_TEST_UNSET" }],
      ["gone", { kind: "file", path: join(dir, "gone") }],
      ["big", { kind: "value", value: new Uint8Array(MAX_SECRET_SIZE + 1) }],
    ]);
    assert.equal(await getSecret(secrets, "f"), "from-file");
    assert.equal(await getSecret(secrets, "e"), "from-env");
    assert.equal(await getSecret(secrets, "unset"), "");
    await assert.rejects(
      getSecret(secrets, "nope"),
      (e: { code?: number }) => e.code === Status.NOT_FOUND,
    );
    await assert.rejects(getSecret(secrets, "gone"), /cannot read secret "gone" from .*gone/);
    await assert.rejects(getSecret(secrets, "big"), /invalid secret size 512001/);
  } finally {
    Deno.env.delete("BUILDCTL_SECRET_TEST");
    await Deno.remove(dir, { recursive: true });
  }
});
