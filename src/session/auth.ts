/**
 * Auth/Credentials (protocol doc §4): registry credentials from the docker
 * config file (`$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`).
 * Credential helpers are not run: hosts they cover get anonymous (empty)
 * credentials. The token-authority methods are not offered, so the daemon
 * answers UNIMPLEMENTED by fetching tokens itself with these credentials.
 *
 * @module
 */

import { join } from "../path.ts";
import type { Handler } from "./grpc_server.ts";
import {
  CredentialsRequest,
  CredentialsResponse,
} from "../gen/github.com/moby/buildkit/session/auth/auth.ts";

/** Options of the auth attachable. */
export interface AuthOptions {
  /** The docker config file to read (default: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). */
  configFile?: string;
  /** Called once with a warning when the config file exists but cannot be parsed. */
  onWarning?: (message: string) => void;
}

/** Docker Hub's registry host and its key in the docker config. */
const DOCKER_HUB_HOST = "registry-1.docker.io";
const DOCKER_HUB_KEY = "https://index.docker.io/v1/";

/** Credentials for one registry. */
export interface RegistryCredentials {
  username: string;
  secret: string;
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface DockerConfig {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/** The default docker config path. */
export function defaultDockerConfigFile(): string | undefined {
  const dir = Deno.env.get("DOCKER_CONFIG");
  if (dir) return join(dir, "config.json");
  const home = Deno.env.get("HOME");
  return home ? join(home, ".docker", "config.json") : undefined;
}

/** docker's ConvertToHostname: strips the scheme and any path. */
function convertToHostname(url: string): string {
  let s = url;
  if (s.startsWith("http://")) s = s.slice(7);
  else if (s.startsWith("https://")) s = s.slice(8);
  return s.split("/", 1)[0]!;
}

function decodeAuth(auth: string): [string, string] {
  let text: string;
  try {
    text = new TextDecoder().decode(Uint8Array.from(atob(auth), (c) => c.charCodeAt(0)));
  } catch {
    return ["", ""];
  }
  const i = text.indexOf(":");
  if (i < 0) return ["", ""];
  return [text.slice(0, i), text.slice(i + 1)];
}

/** Looks up credentials for `host` in a parsed docker config. Empty strings = anonymous. */
export function lookupCredentials(config: DockerConfig, host: string): RegistryCredentials {
  const key = host === DOCKER_HUB_HOST ? DOCKER_HUB_KEY : host;
  if (config.credHelpers && key in config.credHelpers) return { username: "", secret: "" };
  const auths = config.auths ?? {};
  let entry: AuthEntry | undefined = Object.hasOwn(auths, key) ? auths[key] : undefined;
  if (!entry) {
    for (const [k, v] of Object.entries(auths)) {
      if (convertToHostname(k) === key) {
        entry = v;
        break;
      }
    }
  }
  if (!entry) return { username: "", secret: "" };
  let username = entry.username ?? "";
  let password = entry.password ?? "";
  if (entry.auth) [username, password] = decodeAuth(entry.auth);
  if (entry.identitytoken) return { username: "", secret: entry.identitytoken };
  return { username, secret: password };
}

/** Reads and parses a docker config; a missing file is an empty config. */
async function loadConfig(opts: AuthOptions): Promise<DockerConfig> {
  const path = opts.configFile ?? defaultDockerConfigFile();
  if (!path) return {};
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      opts.onWarning?.(`Error loading config file: ${path}: ${(err as Error).message}`);
    }
    return {};
  }
  try {
    const parsed = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null ? parsed as DockerConfig : {};
  } catch (err) {
    opts.onWarning?.(`Error loading config file: ${path}: ${(err as Error).message}`);
    return {};
  }
}

/** Handlers of the Auth service, by method path. */
export function authHandlers(opts: AuthOptions): Map<string, Handler> {
  return new Map([["/moby.filesync.v1.Auth/Credentials", credentialsHandler(opts)]]);
}

/** The `Auth/Credentials` handler: registry credentials from the docker config, read once. */
export function credentialsHandler(opts: AuthOptions): Handler {
  let config: Promise<DockerConfig> | undefined;
  return async (call) => {
    const req = CredentialsRequest.decode((await call.recv()) ?? new Uint8Array());
    config ??= loadConfig(opts);
    const creds = lookupCredentials(await config, req.Host);
    await call.send(
      CredentialsResponse.encode({ Username: creds.username, Secret: creds.secret }).finish(),
    );
  };
}
