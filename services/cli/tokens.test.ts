/**
 * Development credentials: the key pair made once with a private key only its owner reads, tokens
 * the order API's verifier accepts, credentials that reuse a token per subject, and the
 * `orderflow token` command (what it prints, and its usage errors).
 */
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { loadOrderApiAuth } from "../../lib/config.ts";
import { createAuthenticator } from "../order/auth.ts";
import { runCli } from "./main.ts";
import { ensureSigningKeyPair, fixedCredentials, keyFileCredentials, signingCredentials } from "./tokens.ts";

const dir = mkdtempSync(join(tmpdir(), "orderflow-tokens-test-"));
const files = ensureSigningKeyPair(join(dir, "auth"));
const authenticator = createAuthenticator(loadOrderApiAuth({ ORDER_AUTH_PUBLIC_KEY_FILE: files.publicKeyFile }));

afterEach(() => {
  vi.restoreAllMocks();
});

describe("ensureSigningKeyPair", () => {
  it("makes the pair once, the private key mode 0600, and keeps it on later calls", () => {
    expect(statSync(files.privateKeyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(files.publicKeyFile, "utf8")).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const before = readFileSync(files.privateKeyFile, "utf8");
    expect(ensureSigningKeyPair(join(dir, "auth"))).toEqual(files);
    expect(readFileSync(files.privateKeyFile, "utf8")).toBe(before);
  });
});

describe("credentials", () => {
  it("sign customer and operator tokens the verifier accepts, reusing each subject's token", async () => {
    const credentials = signingCredentials(readFileSync(files.privateKeyFile, "utf8"));
    const customer = await credentials.forCustomer("c-42");
    expect(await authenticator.authenticate(`Bearer ${customer}`)).toEqual({ subject: "c-42", operator: false });
    expect(await credentials.forCustomer("c-42")).toBe(customer);
    expect(await credentials.forCustomer("c-43")).not.toBe(customer);
    expect(await authenticator.authenticate(`Bearer ${await credentials.operator()}`)).toEqual({ subject: "operator", operator: true });
  });

  it("from a key file: read when first needed, with advice when it is missing", async () => {
    const credentials = keyFileCredentials(files.privateKeyFile);
    expect((await authenticator.authenticate(`Bearer ${await credentials.operator()}`)).operator).toBe(true);
    await expect(keyFileCredentials(join(dir, "none.pem")).forCustomer("c-1")).rejects.toThrow(/ORDER_API_TOKEN.*make up/);
  });

  it("a fixed token is sent for every call", async () => {
    const fixed = fixedCredentials("t0k3n");
    expect([await fixed.forCustomer("a"), await fixed.operator()]).toEqual(["t0k3n", "t0k3n"]);
  });
});

describe("orderflow token", () => {
  const run = async (args: readonly string[], env: Record<string, string> = { ORDER_API_SIGNING_KEY_FILE: files.privateKeyFile }) => {
    const out: string[] = [];
    const err: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => out.push(String(chunk)) > 0);
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => err.push(String(chunk)) > 0);
    const code = await runCli(["node", "orderflow", ...args], { LOG_LEVEL: "silent", ...env });
    vi.restoreAllMocks();
    return { code, out: out.join(""), err: err.join("") };
  };

  it("prints a customer's token alone on a line, for TOKEN=$(npx orderflow token --customer c-1)", async () => {
    const { code, out } = await run(["token", "--customer", "c-1"]);
    expect(code).toBe(0);
    expect(out).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(await authenticator.authenticate(`Bearer ${out.trim()}`)).toEqual({ subject: "c-1", operator: false });
  });

  it("prints an operator's token with its details under --json, signed with --key", async () => {
    const { code, out } = await run(["--json", "token", "--operator", "--ttl", "60", "--key", files.privateKeyFile], {});
    expect(code).toBe(0);
    const printed = JSON.parse(out) as { token: string; subject: string; operator: boolean; expires_at: string };
    expect(printed).toMatchObject({ subject: "operator", operator: true });
    expect(Date.parse(printed.expires_at) - Date.now()).toBeLessThanOrEqual(60_000);
    expect((await authenticator.authenticate(`Bearer ${printed.token}`)).operator).toBe(true);
  });

  it("exits 2 without --customer or --operator, or with both, and 1 without a key", async () => {
    expect((await run(["token"])).code).toBe(2);
    expect((await run(["token", "--customer", "c-1", "--operator"])).code).toBe(2);
    expect((await run(["token", "--customer", ""])).code).toBe(2);
    const missing = await run(["token", "--customer", "c-1"], { ORDER_API_SIGNING_KEY_FILE: join(dir, "none.pem") });
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("run make up");
  });
});
