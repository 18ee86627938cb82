/**
 * The CLI's way to the admin process: the bearer token (ADMIN_TOKEN, else the file `make up`
 * writes), the Connect AdminService client at ADMIN_URL, authenticated GETs of its HTTP routes
 * (the dashboard snapshot), and ConnectErrors turned into messages an operator can act on.
 */
import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AdminService } from "../../gen/orderflow/v1/admin_service_pb.ts";
import { messageOf } from "../../lib/errors.ts";
import type { CliSettings } from "./context.ts";

/** The AdminService client type. */
export type AdminClient = Client<typeof AdminService>;

const TOKEN_REFUSED = "admin token refused — set ADMIN_TOKEN or run make up";

/** The admin token: ADMIN_TOKEN, else the token file; undefined when neither has one. */
export function findAdminToken(settings: CliSettings): string | undefined {
  if (settings.adminToken !== undefined) return settings.adminToken;
  try {
    const token = readFileSync(settings.adminTokenFile, "utf8").trim();
    return token === "" ? undefined : token;
  } catch {
    return undefined;
  }
}

/** The admin token, or an error that says where it was looked for. */
export function adminToken(settings: CliSettings): string {
  const token = findAdminToken(settings);
  if (token === undefined) throw new Error(`no admin token: ADMIN_TOKEN is not set and ${settings.adminTokenFile} does not exist (make up writes it)`);
  return token;
}

/** An AdminService client at ADMIN_URL that sends the bearer token on every call. */
export function createAdminClient(settings: CliSettings): AdminClient {
  const token = adminToken(settings);
  const bearer: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  return createClient(AdminService, createConnectTransport({ baseUrl: settings.adminUrl, httpVersion: "1.1", interceptors: [bearer], defaultTimeoutMs: 30_000 }));
}

/** A failed admin call in an operator's words; the original error is the cause. */
export function adminError(settings: CliSettings, err: unknown): Error {
  const connect = ConnectError.from(err);
  const say = (message: string) => new Error(message, { cause: err });
  switch (connect.code) {
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return say(TOKEN_REFUSED);
    case Code.Unavailable:
      return say(`the admin service at ${settings.adminUrl} is unreachable (${connect.rawMessage}) — is it running? (make up, or set ADMIN_URL)`);
    case Code.DeadlineExceeded:
      return say(`the admin service at ${settings.adminUrl} did not answer in time`);
    case Code.Unimplemented:
      return say(`the admin service at ${settings.adminUrl} does not offer this call (${connect.rawMessage}) — is ADMIN_URL the admin process?`);
    case Code.InvalidArgument:
      return say(`the admin service refused the request: ${connect.rawMessage}`);
    case Code.NotFound:
    case Code.FailedPrecondition:
      return say(connect.rawMessage);
    default:
      return say(`the admin service failed: ${connect.rawMessage}`);
  }
}

/** The Connect code behind an error of callAdmin (or any error): Unavailable when the process did not answer. */
export function adminCode(err: unknown): Code {
  return ConnectError.from(err instanceof Error && err.cause !== undefined ? err.cause : err).code;
}

/** Runs one admin call, with failures turned into adminError. */
export async function callAdmin<T>(settings: CliSettings, call: (client: AdminClient) => Promise<T>): Promise<T> {
  const client = createAdminClient(settings);
  try {
    return await call(client);
  } catch (err) {
    throw adminError(settings, err);
  }
}

/**
 * GET of an HTTP route of the admin process (for example /dashboard/api/snapshot), with the token
 * when one is found; returns the parsed JSON body.
 */
export async function getAdminJson(settings: CliSettings, path: string): Promise<unknown> {
  const token = findAdminToken(settings);
  let response: Response;
  try {
    response = await fetch(`${settings.adminUrl}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = err instanceof Error && err.cause !== undefined ? messageOf(err.cause) : messageOf(err);
    throw new Error(`the admin service at ${settings.adminUrl} is unreachable (${cause}) — is it running? (make up, or set ADMIN_URL)`, { cause: err });
  }
  if (response.status === 401 || response.status === 403) throw new Error(TOKEN_REFUSED);
  if (!response.ok) throw new Error(`the admin service answered ${response.status} for ${path}: ${(await response.text()).slice(0, 200)}`);
  try {
    return await response.json();
  } catch (err) {
    throw new Error(`the admin service answered ${path} with something that is not JSON`, { cause: err });
  }
}
