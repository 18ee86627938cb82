/**
 * Who is calling the order API and what they may see. A caller proves itself with a bearer JWT
 * (RFC 6750) verified by jose against the configured issuer, audience and keys (a JWKS URL or a
 * local public key); its `sub` is the customer id, and a `scope` holding the operator scope makes it
 * an operator. What a caller may do with which order is decided in access.ts.
 */
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload } from "jose";
import { ConfigError, type OrderApiAuthConfig } from "../../lib/config.ts";
import { messageOf } from "../../lib/errors.ts";

/** An authenticated caller: the token's subject, and whether it holds the operator scope. */
export interface Caller {
  readonly subject: string;
  readonly operator: boolean;
}

/** Asymmetric algorithms only: never "none", never a shared secret an API server could sign with. */
const acceptedAlgorithms = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA", "Ed25519"];

/** The realm named in every WWW-Authenticate challenge. */
const REALM = "orderflow-orders";

/**
 * Unauthenticated, with the RFC 6750 challenge in its metadata (a response header on REST and
 * Connect alike). A request without a token gets the bare challenge; a bad token also says why.
 */
export class AuthenticationError extends ConnectError {
  constructor(reason: string, tokenPresented: boolean, cause?: unknown) {
    const challenge = tokenPresented ? `Bearer realm="${REALM}", error="invalid_token", error_description="${reason}"` : `Bearer realm="${REALM}"`;
    super(reason, Code.Unauthenticated, { "www-authenticate": challenge }, undefined, cause);
  }
}

/** What was wrong with a token, in words for the caller (no key material, no claims echoed). */
function reasonOf(err: unknown): string {
  if (err instanceof errors.JWTExpired) return "the token has expired";
  if (err instanceof errors.JWTClaimValidationFailed) return `the token's ${err.claim} claim is not accepted here`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (err instanceof errors.JOSEAlgNotAllowed) return "the token's signing algorithm is not accepted";
  if (err instanceof errors.JWKSNoMatchingKey) return "no known key signed the token";
  if (err instanceof errors.JOSEError) return "the token is malformed";
  return "the token does not fit the verification key";
}

/** The key verification uses: a local PEM public key (SPKI or certificate) or a remote key set. */
function keyOf(config: OrderApiAuthConfig): KeyObject | ReturnType<typeof createRemoteJWKSet> {
  if ("jwksUrl" in config.keys) return createRemoteJWKSet(config.keys.jwksUrl);
  const file = config.keys.publicKeyFile;
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`ORDER_AUTH_PUBLIC_KEY_FILE ${file} cannot be read: ${messageOf(err)}`);
  }
  try {
    return createPublicKey(pem);
  } catch (err) {
    throw new ConfigError(`ORDER_AUTH_PUBLIC_KEY_FILE ${file} holds no PEM public key: ${messageOf(err)}`);
  }
}

/** Whether the token's `scope` (a space-separated string, or a list) holds `wanted`. */
function hasScope(payload: JWTPayload, wanted: string): boolean {
  const scope = payload["scope"] ?? payload["scp"];
  const words = typeof scope === "string" ? scope.split(" ") : Array.isArray(scope) ? scope : [];
  return words.includes(wanted);
}

export interface Authenticator {
  /** The caller behind an Authorization header value; throws AuthenticationError (or Unavailable when the key set cannot be fetched). */
  authenticate(authorization: string | null | undefined): Promise<Caller>;
}

/**
 * Verified tokens are remembered (by SHA-256, never the token itself) until they expire, for at most
 * VERIFIED_FOR_MS: a client sends the same token with every request, and an ES256 verification costs
 * about a quarter of a millisecond. A key withdrawn from the JWKS stops tokens within this time.
 */
const VERIFIED_FOR_MS = 60_000;
const VERIFIED_MAX_ENTRIES = 10_000;

/** Builds the verifier once at start; a key that cannot be loaded is a ConfigError (the service does not start open). */
export function createAuthenticator(config: OrderApiAuthConfig, clock: { readonly now?: () => number } = {}): Authenticator {
  const key = keyOf(config);
  const now = clock.now ?? Date.now;
  const verified = new Map<string, { readonly caller: Caller; readonly untilMs: number }>();
  const remember = (digest: string, caller: Caller, payload: JWTPayload) => {
    if (verified.size >= VERIFIED_MAX_ENTRIES) verified.delete(verified.keys().next().value as string);
    const expiresMs = payload.exp === undefined ? Infinity : payload.exp * 1000;
    verified.set(digest, { caller, untilMs: Math.min(expiresMs, now() + VERIFIED_FOR_MS) });
  };
  return {
    async authenticate(authorization) {
      const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization ?? "");
      if (authorization === null || authorization === undefined || authorization === "") throw new AuthenticationError("a bearer token is required (Authorization: Bearer <token>)", false);
      if (match?.[1] === undefined) throw new AuthenticationError("the Authorization header must be a bearer token", true);
      const digest = createHash("sha256").update(match[1]).digest("base64");
      const known = verified.get(digest);
      if (known !== undefined && now() < known.untilMs) return known.caller;
      if (known !== undefined) verified.delete(digest);
      const options = { issuer: config.issuer, audience: config.audience, algorithms: acceptedAlgorithms, clockTolerance: config.clockToleranceS, currentDate: new Date(now()) };
      let payload: JWTPayload;
      try {
        // The two overloads (a key, a key set) differ only in the key's type.
        payload = (typeof key === "function" ? await jwtVerify(match[1], key, options) : await jwtVerify(match[1], key, options)).payload;
      } catch (err) {
        // A key set that does not answer, answers an error status (a generic JOSEError) or no key set.
        const keySetUnreachable = !(err instanceof errors.JOSEError) || err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err.code === errors.JOSEError.code;
        if (typeof key === "function" && keySetUnreachable) {
          throw new ConnectError("the keys to verify tokens with cannot be fetched right now; retry later", Code.Unavailable, undefined, undefined, err);
        }
        throw new AuthenticationError(reasonOf(err), true, err);
      }
      if (typeof payload.sub !== "string" || payload.sub === "") throw new AuthenticationError("the token has no subject", true);
      const caller = { subject: payload.sub, operator: hasScope(payload, config.operatorScope) };
      remember(digest, caller, payload);
      return caller;
    },
  };
}
