/**
 * `orderflow token` — prints a bearer token for the order API signed with the development key that
 * `make up` made (.run/auth/), for a customer (`--customer c-1`: that customer's orders only) or an
 * operator (`--operator`: every order). For curl: TOKEN=$(npx orderflow token --customer c-1).
 */
import { readFileSync } from "node:fs";
import { Command, Option } from "commander";
import { orderApiAuthDefaults } from "../../lib/config.ts";
import { output, UsageError, wholeNumberOption, type ContextFactory } from "./context.ts";
import { OPERATOR_SUBJECT, signToken } from "./tokens.ts";

interface TokenOptions {
  customer?: string;
  operator?: boolean;
  ttl: number;
  key?: string;
  issuer: string;
  audience: string;
}

export function tokenCommand(context: ContextFactory): Command {
  return new Command("token")
    .description("print an order API token signed with the development key (make up makes it)")
    .addOption(new Option("--customer <id>", "a customer's token: its `sub` is this customer id"))
    .addOption(new Option("--operator", "an operator's token: lists, reads and cancels every order").conflicts("customer"))
    .addOption(new Option("--ttl <seconds>", "lifetime").argParser(wholeNumberOption("--ttl", 1)).default(3600))
    .option("--key <file>", "the PEM private key (default: ORDER_API_SIGNING_KEY_FILE, else .run/auth/order-api-signing-key.pem)")
    .option("--issuer <iss>", "the iss claim", orderApiAuthDefaults.issuer)
    .option("--audience <aud>", "the aud claim", orderApiAuthDefaults.audience)
    .addHelpText("after", '\nExample:\n  TOKEN=$(npx orderflow token --customer c-1)\n  curl -H "Authorization: Bearer $TOKEN" http://localhost:8080/orders')
    .action(async (options: TokenOptions) => {
      if (options.customer === undefined && options.operator !== true) throw new UsageError("say whose token: --customer <id> or --operator");
      if (options.customer === "") throw new UsageError("--customer needs a customer id");
      const ctx = context();
      const keyFile = options.key ?? ctx.settings.signingKeyFile;
      let pem: string;
      try {
        pem = readFileSync(keyFile, "utf8");
      } catch {
        throw new Error(`no signing key at ${keyFile} — run make up (it makes one), or pass --key`);
      }
      const subject = options.customer ?? OPERATOR_SUBJECT;
      const operator = options.operator === true;
      const token = await signToken(pem, { subject, operator, issuer: options.issuer, audience: options.audience, ttlSeconds: options.ttl });
      output(ctx, { token, subject, operator, expires_at: new Date(Date.now() + options.ttl * 1000).toISOString() }, [token]);
    });
}
