/**
 * The admin API's guard: every call must carry `Authorization: Bearer <ADMIN_TOKEN>`. Tokens are
 * compared as SHA-256 digests with a constant-time comparison, so neither the content nor the
 * length of the configured token leaks through timing. Without a configured token every call is
 * refused: an admin API that anyone could call is worse than one nobody can. The server checks it
 * on the request's headers, before any body is read or decompressed (server.ts).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";

const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();

/** True when `presented` equals `expected`, in time that depends on neither. */
export function tokenMatches(expected: string, presented: string): boolean {
  return timingSafeEqual(digest(expected), digest(presented));
}

/** The token of an `Authorization: Bearer <token>` header, or undefined for any other shape. */
export function bearerToken(header: string | null): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  return match?.[1];
}

/**
 * Why a call with this Authorization header is refused (Code.Unauthenticated), or undefined when it
 * carries the right bearer token. With `token` unset or empty, every call is refused, saying so.
 */
export function tokenRefusal(token: string | undefined, authorization: string | null | undefined): ConnectError | undefined {
  if (token === undefined || token === "") {
    return new ConnectError("the admin API is disabled: ADMIN_TOKEN is not set on the server", Code.Unauthenticated);
  }
  const presented = bearerToken(authorization ?? null);
  if (presented === undefined) return new ConnectError("missing bearer token (Authorization: Bearer <ADMIN_TOKEN>)", Code.Unauthenticated);
  if (!tokenMatches(token, presented)) return new ConnectError("invalid bearer token", Code.Unauthenticated);
  return undefined;
}
