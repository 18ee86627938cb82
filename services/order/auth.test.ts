/**
 * The order API's token verifier: what it accepts (a token of the configured issuer and audience,
 * signed by the configured key, unexpired, with a subject) and the reason it gives for each refusal,
 * with a local public key and with a JWKS URL; and the configuration it refuses to start with.
 */
import { createPrivateKey } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadOrderApiAuth, orderApiAuthDefaults, type OrderApiAuthConfig } from "../../lib/config.ts";
import { ensureSigningKeyPair, signToken } from "../cli/tokens.ts";
import { createAuthenticator } from "./auth.ts";

const dir = mkdtempSync(join(tmpdir(), "orderflow-auth-test-"));
const files = ensureSigningKeyPair(join(dir, "good"));
const privateKey = readFileSync(files.privateKeyFile, "utf8");
const otherPrivateKey = readFileSync(ensureSigningKeyPair(join(dir, "other")).privateKeyFile, "utf8");
const config: OrderApiAuthConfig = loadOrderApiAuth({ ORDER_AUTH_PUBLIC_KEY_FILE: files.publicKeyFile });
const authenticator = createAuthenticator(config);

/** The error an authentication attempt fails with. */
async function refusal(authorization: string | undefined): Promise<ConnectError> {
  const err = await authenticator.authenticate(authorization).then(() => undefined, (e: unknown) => e);
  if (!(err instanceof ConnectError)) throw new Error(`expected a ConnectError, got ${String(err)}`);
  return err;
}

describe("createAuthenticator with a local public key", () => {
  it("accepts a customer's token: the subject is the customer, not an operator", async () => {
    const token = await signToken(privateKey, { subject: "c-1" });
    expect(await authenticator.authenticate(`Bearer ${token}`)).toEqual({ subject: "c-1", operator: false });
  });

  it("remembers a verified token until it expires, and refuses it from then on", async () => {
    let nowMs = Date.now();
    const remembering = createAuthenticator(config, { now: () => nowMs });
    const token = `Bearer ${await signToken(privateKey, { subject: "c-9", ttlSeconds: 120 })}`;
    expect(await remembering.authenticate(token)).toEqual({ subject: "c-9", operator: false });
    expect(await remembering.authenticate(token)).toEqual({ subject: "c-9", operator: false });
    nowMs += 121_000 + config.clockToleranceS * 1000;
    await expect(remembering.authenticate(token)).rejects.toThrow(/expired/);
  });

  it("recognises the operator scope, in a space-separated scope string or a list", async () => {
    expect(await authenticator.authenticate(`Bearer ${await signToken(privateKey, { subject: "op-7", operator: true })}`)).toEqual({ subject: "op-7", operator: true });
    const key = createPrivateKey(privateKey);
    const listed = await new SignJWT({ scp: ["orders:read", orderApiAuthDefaults.operatorScope] })
      .setProtectedHeader({ alg: "ES256" })
      .setSubject("op-8")
      .setIssuer(config.issuer)
      .setAudience(config.audience)
      .setExpirationTime("5m")
      .sign(key);
    expect((await authenticator.authenticate(`bearer ${listed}`)).operator).toBe(true);
  });

  it.each<[string, () => Promise<string | undefined>, string, boolean]>([
    ["no header", () => Promise.resolve(undefined), "a bearer token is required", false],
    ["an empty header", () => Promise.resolve(""), "a bearer token is required", false],
    ["Basic credentials", () => Promise.resolve("Basic dXNlcjpwYXNz"), "must be a bearer token", true],
    ["a malformed token", () => Promise.resolve("Bearer not.a.jwt"), "malformed", true],
    ["another issuer", async () => `Bearer ${await signToken(privateKey, { subject: "c-1", issuer: "someone-else" })}`, "iss claim", true],
    ["another audience", async () => `Bearer ${await signToken(privateKey, { subject: "c-1", audience: "another-api" })}`, "aud claim", true],
    ["an expired token", async () => `Bearer ${await signToken(privateKey, { subject: "c-1", ttlSeconds: -120 })}`, "expired", true],
    ["another key's signature", async () => `Bearer ${await signToken(otherPrivateKey, { subject: "c-1" })}`, "signature does not verify", true],
    ["no subject", async () => `Bearer ${await signToken(privateKey, { subject: "" })}`, "no subject", true],
  ])("refuses %s with Unauthenticated, a reason and the bearer challenge", async (_name, header, reason, presented) => {
    const err = await refusal(await header());
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toContain(reason);
    const challenge = err.metadata.get("www-authenticate") ?? "";
    expect(challenge).toMatch(/^Bearer realm="orderflow-orders"/);
    expect(challenge.includes('error="invalid_token"')).toBe(presented);
  });

  it("refuses an unsigned token (alg none) and a token signed with a shared secret", async () => {
    const claims = { sub: "c-1", iss: config.issuer, aud: config.audience, exp: Math.floor(Date.now() / 1000) + 60 };
    const unsigned = `${Buffer.from(JSON.stringify({ alg: "none" })).toString("base64url")}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.`;
    expect((await refusal(`Bearer ${unsigned}`)).code).toBe(Code.Unauthenticated);
    const hmac = await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode("x".repeat(32)));
    expect((await refusal(`Bearer ${hmac}`)).rawMessage).toContain("algorithm is not accepted");
  });
});

describe("createAuthenticator with a JWKS URL", () => {
  let server: Server;
  let url: URL;
  let signingKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

  beforeAll(async () => {
    const pair = await generateKeyPair("ES256");
    signingKey = pair.privateKey;
    const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" }] };
    server = createServer((req, res) => {
      if (req.url === "/broken") res.writeHead(500).end();
      else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(jwks));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`);
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const token = (kid: string) =>
    new SignJWT({}).setProtectedHeader({ alg: "ES256", kid }).setSubject("c-9").setIssuer("https://idp.example").setAudience("orders").setExpirationTime("5m").sign(signingKey);

  it("accepts a token signed by a key of the set and refuses one whose key it does not know", async () => {
    const remote = createAuthenticator(loadOrderApiAuth({ ORDER_AUTH_JWKS_URL: url.toString(), ORDER_AUTH_ISSUER: "https://idp.example", ORDER_AUTH_AUDIENCE: "orders" }));
    expect(await remote.authenticate(`Bearer ${await token("k1")}`)).toEqual({ subject: "c-9", operator: false });
    const err = await remote.authenticate(`Bearer ${await token("k2")}`).catch((e: unknown) => e as ConnectError);
    expect(err).toMatchObject({ code: Code.Unauthenticated, rawMessage: expect.stringContaining("no known key") as unknown });
  });

  it("answers Unavailable, not Unauthenticated, while the key set cannot be fetched", async () => {
    const remote = createAuthenticator(loadOrderApiAuth({ ORDER_AUTH_JWKS_URL: new URL("/broken", url).toString(), ORDER_AUTH_ISSUER: "https://idp.example", ORDER_AUTH_AUDIENCE: "orders" }));
    const err = await remote.authenticate(`Bearer ${await token("k1")}`).catch((e: unknown) => e as ConnectError);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
  });
});

describe("loadOrderApiAuth and the key it needs", () => {
  it("refuses to start without a key source, with two of them, or with a bad URL", () => {
    expect(() => loadOrderApiAuth({})).toThrow(/ORDER_AUTH_JWKS_URL or ORDER_AUTH_PUBLIC_KEY_FILE/);
    expect(() => loadOrderApiAuth({ ORDER_AUTH_JWKS_URL: "https://idp.example/jwks", ORDER_AUTH_PUBLIC_KEY_FILE: files.publicKeyFile })).toThrow(ConfigError);
    expect(() => loadOrderApiAuth({ ORDER_AUTH_JWKS_URL: "not a url" })).toThrow(/must be a URL/);
  });

  it("has defaults that `make up` and `orderflow token` agree on, and takes overrides", () => {
    expect(loadOrderApiAuth({ ORDER_AUTH_PUBLIC_KEY_FILE: "k.pem" })).toEqual({
      issuer: orderApiAuthDefaults.issuer,
      audience: orderApiAuthDefaults.audience,
      keys: { publicKeyFile: "k.pem" },
      operatorScope: "orders:operator",
      clockToleranceS: 30,
      placeLimit: { orders: 300, windowMs: 60_000 },
    });
    const custom = loadOrderApiAuth({ ORDER_AUTH_JWKS_URL: "https://idp.example/jwks", ORDER_AUTH_OPERATOR_SCOPE: "admin", ORDER_RATE_LIMIT_ORDERS: "5", ORDER_RATE_LIMIT_WINDOW_S: "2" });
    expect(custom).toMatchObject({ keys: { jwksUrl: new URL("https://idp.example/jwks") }, operatorScope: "admin", placeLimit: { orders: 5, windowMs: 2000 } });
    expect(() => loadOrderApiAuth({ ORDER_AUTH_PUBLIC_KEY_FILE: "k.pem", ORDER_RATE_LIMIT_ORDERS: "0" })).toThrow(/ORDER_RATE_LIMIT_ORDERS/);
  });

  it("refuses a key file that is missing or holds no PEM key", () => {
    expect(() => createAuthenticator(loadOrderApiAuth({ ORDER_AUTH_PUBLIC_KEY_FILE: join(dir, "missing.pem") }))).toThrow(/cannot be read/);
    const junk = join(dir, "junk.pem");
    writeFileSync(junk, "hello");
    expect(() => createAuthenticator(loadOrderApiAuth({ ORDER_AUTH_PUBLIC_KEY_FILE: junk }))).toThrow(/no PEM public key/);
  });
});
