/**
 * Makes the local development key pair of the order API once (infra/services.sh runs it for
 * `make up`): an ES256 private key (mode 0600) that `orderflow token` signs with, and the public key
 * the order service verifies with. Prints the public key's path.
 *   node --import tsx infra/dev-signing-key.ts <dir>
 */
import { ensureSigningKeyPair } from "../services/cli/tokens.ts";

const dir = process.argv[2];
if (dir === undefined || dir === "") {
  process.stderr.write("usage: dev-signing-key.ts <dir>\n");
  process.exit(2);
}
const files = ensureSigningKeyPair(dir);
process.stdout.write(`${files.publicKeyFile}\n`);
