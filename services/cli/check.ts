/**
 * `orderflow check` — reads the order, payment and notification topics up to their current end,
 * and the stock in Redis, and reports the invariants (invariants.ts). Exits 1 on any violation.
 * Run it after the system is quiet: an order still in flight reads as lost.
 */
import { Command } from "commander";
import { topicSpec } from "../../infra/topics.ts";
import { decodeRecord } from "../../lib/codec/codec.ts";
import { PoisonRecordError } from "../../lib/errors.ts";
import { topicName } from "../../lib/kafka/client.ts";
import { readToEnd } from "../../lib/kafka/read-to-end.ts";
import { createRedis, keyspace } from "../../lib/redis.ts";
import { StockStore } from "../inventory/stock.ts";
import { output, type CliContext, type ContextFactory } from "./context.ts";
import { evaluate, type Observed } from "./invariants.ts";

const checkedTopics = ["orders.created", "orders.completed", "orders.failed", "orders.cancelled", "payments.completed", "payments.refunded", "notifications.sent"] as const;

/** Every record of the checked topics up to their end at the start of the read. */
async function observe(ctx: CliContext, timeoutMs: number): Promise<Observed[]> {
  const admin = ctx.kafka.admin();
  await admin.connect();
  const observed: Observed[] = [];
  try {
    await readToEnd(ctx.config, admin, checkedTopics.map((base) => topicName(ctx.config, base)), (message) => {
      const base = message.topic.slice(ctx.config.topicPrefix.length);
      try {
        const { envelope, message: value } = decodeRecord(message, topicSpec(base).valueTypes);
        const fields = value as unknown as { paymentId?: string; notificationId?: string; messageId?: string };
        observed.push({
          topic: base,
          orderId: envelope.orderId,
          eventId: envelope.eventId,
          ...(base === "notifications.sent" ? { ref: fields.notificationId ?? "", messageId: fields.messageId ?? "" } : fields.paymentId ? { ref: fields.paymentId } : {}),
        });
      } catch (err) {
        if (!(err instanceof PoisonRecordError)) throw err;
      }
    }, timeoutMs);
  } finally {
    await admin.disconnect();
  }
  return observed;
}

export function checkCommand(context: ContextFactory): Command {
  return new Command("check")
    .description("check the saga's invariants over the log and Redis (run when the system is quiet)")
    .option("--timeout <ms>", "how long reading the log may take", "120000")
    .action(async (options: { timeout: string }) => {
      const ctx = context();
      const records = await observe(ctx, Number(options.timeout));
      const redis = createRedis(ctx.config, ctx.log);
      let stock: string[];
      try {
        stock = await new StockStore(redis, keyspace(ctx.config.redisKeyPrefix)).checkConservation();
      } finally {
        redis.disconnect();
      }
      const report = evaluate(records, stock);
      const { outcomes, violations } = report;
      output(ctx, report, [
        `orders accepted ${report.accepted}: completed ${outcomes.completed}, failed ${outcomes.failed}, cancelled ${outcomes.cancelled}, refunded after completion ${outcomes.refundedAfterCompletion}`,
        ...Object.entries(violations).map(([rule, ids]) => `${ids.length === 0 ? "ok  " : "FAIL"} ${rule}${ids.length === 0 ? "" : `: ${ids.slice(0, 10).join(", ")}${ids.length > 10 ? " …" : ""}`}`),
        report.ok ? "all invariants hold" : "invariants violated",
      ]);
      if (!report.ok) process.exitCode = 1;
    });
}
