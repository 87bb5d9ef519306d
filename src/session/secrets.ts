/**
 * Secrets/GetSecret (protocol doc §4): serves `--secret` values by id.
 * Values are never logged; an unknown id is NOT_FOUND, as upstream.
 *
 * @module
 */

import { GrpcStatusError, type Handler, Status } from "./grpc_server.ts";
import {
  GetSecretRequest,
  GetSecretResponse,
} from "../gen/github.com/moby/buildkit/session/secrets/secrets.ts";

/** Where a secret's value comes from. */
export type SecretSource =
  | { kind: "file"; path: string }
  | { kind: "env"; name: string }
  | { kind: "value"; value: Uint8Array };

/** Upstream's limit on a secret's size (500 KiB). */
export const MAX_SECRET_SIZE = 500 * 1024;

/** Reads a secret's value. @throws {GrpcStatusError} */
export async function readSecret(id: string, source: SecretSource): Promise<Uint8Array> {
  let data: Uint8Array;
  switch (source.kind) {
    case "env":
      data = new TextEncoder().encode(Deno.env.get(source.name) ?? "");
      break;
    case "value":
      data = source.value;
      break;
    case "file":
      try {
        data = await Deno.readFile(source.path);
      } catch (err) {
        throw new GrpcStatusError(
          Status.UNKNOWN,
          `cannot read secret "${id}" from ${source.path}: ${(err as Error).message}`,
        );
      }
      break;
  }
  if (data.length > MAX_SECRET_SIZE) {
    throw new GrpcStatusError(Status.UNKNOWN, `invalid secret size ${data.length}`);
  }
  return data;
}

/** The GetSecret handler for `secrets` (id → source). */
export function secretsHandler(secrets: ReadonlyMap<string, SecretSource>): Handler {
  return async (call) => {
    const msg = await call.recv();
    const req = GetSecretRequest.decode(msg ?? new Uint8Array());
    const source = secrets.get(req.ID);
    if (!source) throw new GrpcStatusError(Status.NOT_FOUND, "not found");
    const data = await readSecret(req.ID, source);
    await call.send(GetSecretResponse.encode({ data }).finish());
  };
}
