/**
 * Tokens for the order API where orderflow itself is the issuer: local development (`make up` makes
 * an ES256 key pair once; `orderflow token` signs with it) and test runs (a key pair per run). In a
 * shop's deployment an identity provider issues the tokens and these keys are not used. Clients
 * get their tokens from an OrderApiCredentials: signed here per customer, or one token given to them.
 */
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { importPKCS8, SignJWT } from "jose";
import { orderApiAuthDefaults } from "../../lib/config.ts";

/** The signing algorithm of the keys made here. */
export const SIGNING_ALGORITHM = "ES256";

/** Where a key pair lives: the private key (mode 0600) and the public key the order service reads. */
export interface SigningKeyFiles {
  readonly privateKeyFile: string;
  readonly publicKeyFile: string;
}

/** The key pair's files in `dir`. */
export function signingKeyFiles(dir: string): SigningKeyFiles {
  return { privateKeyFile: join(dir, "order-api-signing-key.pem"), publicKeyFile: join(dir, "order-api-public-key.pem") };
}

/** Makes the key pair in `dir` unless it is there already (then only the private key's mode is set again). */
export function ensureSigningKeyPair(dir: string): SigningKeyFiles {
  const files = signingKeyFiles(dir);
  if (!existsSync(files.privateKeyFile) || !existsSync(files.publicKeyFile)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // P-256, the curve of ES256.
    const { privateKey, publicKey } = generateKeyPairSync("ec", {
      namedCurve: "prime256v1",
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    writeFileSync(files.privateKeyFile, privateKey, { mode: 0o600 });
    writeFileSync(files.publicKeyFile, publicKey, { mode: 0o644 });
  }
  chmodSync(files.privateKeyFile, 0o600);
  return files;
}

/** Who a token is for and what it says about its issuer, audience and lifetime. */
export interface TokenClaims {
  readonly subject: string;
  readonly operator?: boolean;
  readonly issuer?: string;
  readonly audience?: string;
  readonly ttlSeconds?: number;
}

/** A token signed with the PEM private key: `sub`, `iss`, `aud`, `iat`, `exp`, and the operator scope if asked. */
export async function signToken(privateKeyPem: string, claims: TokenClaims): Promise<string> {
  return signWith(await importPKCS8(privateKeyPem, SIGNING_ALGORITHM), claims);
}

async function signWith(key: Awaited<ReturnType<typeof importPKCS8>>, claims: TokenClaims): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims.operator === true ? { scope: orderApiAuthDefaults.operatorScope } : {})
    .setProtectedHeader({ alg: SIGNING_ALGORITHM, typ: "JWT" })
    .setSubject(claims.subject)
    .setIssuer(claims.issuer ?? orderApiAuthDefaults.issuer)
    .setAudience(claims.audience ?? orderApiAuthDefaults.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.ttlSeconds ?? 3600))
    .sign(key);
}

/** The bearer tokens a client sends: one per customer it orders for, and an operator's for reading any order. */
export interface OrderApiCredentials {
  forCustomer(customerId: string): Promise<string>;
  operator(): Promise<string>;
}

/** The subject of the operator tokens signed here. */
export const OPERATOR_SUBJECT = "operator";

const TOKEN_TTL_S = 3600;
/** A cached token is renewed this long before it expires. */
const RENEW_BEFORE_MS = 5 * 60 * 1000;

/** Credentials that sign tokens with a private key, each kept until shortly before it expires. */
export function signingCredentials(privateKeyPem: string, options: { issuer?: string; audience?: string } = {}): OrderApiCredentials {
  // Imported once, when the first token is asked for.
  let key: ReturnType<typeof importPKCS8> | undefined;
  const cache = new Map<string, { token: Promise<string>; renewAt: number }>();
  const get = (subject: string, operator: boolean): Promise<string> => {
    const id = `${operator ? "operator" : "customer"}:${subject}`;
    const cached = cache.get(id);
    if (cached !== undefined && cached.renewAt > Date.now()) return cached.token;
    const token = (key ??= importPKCS8(privateKeyPem, SIGNING_ALGORITHM)).then((imported) => signWith(imported, { ...options, subject, operator, ttlSeconds: TOKEN_TTL_S }));
    cache.set(id, { token, renewAt: Date.now() + TOKEN_TTL_S * 1000 - RENEW_BEFORE_MS });
    return token;
  };
  return { forCustomer: (customerId) => get(customerId, false), operator: () => get(OPERATOR_SUBJECT, true) };
}

/** Credentials from one given token, used for every call (an operator's token may order for anyone). */
export function fixedCredentials(token: string): OrderApiCredentials {
  return { forCustomer: () => Promise.resolve(token), operator: () => Promise.resolve(token) };
}

/** Credentials from a private key file, read when a call first needs a token. */
export function keyFileCredentials(privateKeyFile: string): OrderApiCredentials {
  let credentials: OrderApiCredentials | undefined;
  const load = (): OrderApiCredentials => {
    if (credentials !== undefined) return credentials;
    let pem: string;
    try {
      pem = readFileSync(privateKeyFile, "utf8");
    } catch {
      throw new Error(`no order API token: set ORDER_API_TOKEN, or run make up to make the development signing key ${privateKeyFile}`);
    }
    return (credentials = signingCredentials(pem));
  };
  return { forCustomer: async (customerId) => load().forCustomer(customerId), operator: async () => load().operator() };
}

/** Adds the bearer header to request headers. */
export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}
