/**
 * Order API credentials for a test run: one key pair per test process in a temporary directory,
 * the environment that makes an order service verify tokens with it (serviceEnv and startSystem
 * add it), and credentials that sign tokens for any customer or an operator.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { OrderApi } from "../../services/cli/context.ts";
import { ensureSigningKeyPair, signingCredentials, type OrderApiCredentials } from "../../services/cli/tokens.ts";

export interface TestAuth {
  /** ORDER_AUTH_PUBLIC_KEY_FILE for the order service. */
  readonly env: Record<string, string>;
  readonly privateKeyFile: string;
  readonly credentials: OrderApiCredentials;
}

let made: TestAuth | undefined;

/** This test process's key pair and its credentials, made on first use. */
export function testAuth(): TestAuth {
  if (made !== undefined) return made;
  const files = ensureSigningKeyPair(mkdtempSync(join(tmpdir(), "orderflow-auth-")));
  made = {
    env: { ORDER_AUTH_PUBLIC_KEY_FILE: files.publicKeyFile },
    privateKeyFile: files.privateKeyFile,
    credentials: signingCredentials(readFileSync(files.privateKeyFile, "utf8")),
  };
  return made;
}

/** The order API at `baseUrl` with this run's credentials. */
export function testOrderApi(baseUrl: string): OrderApi {
  return { baseUrl, credentials: testAuth().credentials };
}

/** An operator's Authorization header for plain fetch calls to the order API. */
export async function operatorHeaders(): Promise<{ authorization: string }> {
  return { authorization: `Bearer ${await testAuth().credentials.operator()}` };
}
