/**
 * `orderflow check` — reads the order, payment and notification topics up to their current end,
 * the stock and the payment processor's books in Redis, the dead-letter counts and (given its
 * address) the mail sink's deliveries, the reservations' states, and — given the order ids a client
 * was answered 202 with, and those whose cancel was — reports the invariants (invariants.ts).
 * Exits 1 on any violation.
 * Run it after the system is quiet: an order still in flight reads as lost.
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { DLQ_SUFFIX, sagaTopics, topicSpec } from "../../infra/topics.ts";
import { decodeUnlessPoison } from "../../lib/codec/codec.ts";
import { topicName } from "../../lib/kafka/client.ts";
import { readToEnd } from "../../lib/kafka/read-to-end.ts";
import { createRedis, keyspace } from "../../lib/redis.ts";
import { StockStore } from "../inventory/stock.ts";
import { RedisLedger, type LedgerEntry } from "../payment/simulated-gateway.ts";
import { output, type CliContext, type ContextFactory } from "./context.ts";
import { evaluate, type InvariantReport, type Observed } from "./invariants.ts";

const checkedTopics = ["orders.created", "orders.completed", "orders.failed", "orders.cancelled", "payments.completed", "payments.refunded", "notifications.email", "notifications.sent"] as const;

/** Every record of the checked topics up to their end at the start of the read. */
async function observe(ctx: Pick<CliContext, "config" | "kafka">, timeoutMs: number): Promise<Observed[]> {
  const admin = ctx.kafka.admin();
  await admin.connect();
  const observed: Observed[] = [];
  try {
    await readToEnd(ctx.config, admin, checkedTopics.map((base) => topicName(ctx.config, base)), (message) => {
      const base = message.topic.slice(ctx.config.topicPrefix.length);
      const record = decodeUnlessPoison(message, topicSpec(base).valueTypes);
      if (record === undefined) return;
      const fields = record.message as unknown as { paymentId?: string; notificationId?: string; messageId?: string; idempotencyKey?: string };
      observed.push({
        topic: base,
        orderId: record.envelope.orderId,
        eventId: record.envelope.eventId,
        ...(base.startsWith("notifications.") ? { ref: fields.notificationId ?? "", messageId: fields.messageId ?? "" } : fields.paymentId ? { ref: fields.paymentId } : {}),
        ...(base === "orders.created" && fields.idempotencyKey ? { idempotencyKey: fields.idempotencyKey } : {}),
      });
    }, timeoutMs);
  } finally {
    await admin.disconnect();
  }
  return observed;
}

/** Records per dead-letter topic (only those holding any). */
async function countDeadLetters(ctx: Pick<CliContext, "config" | "kafka">): Promise<Record<string, number>> {
  const admin = ctx.kafka.admin();
  await admin.connect();
  const counts: Record<string, number> = {};
  try {
    for (const spec of sagaTopics) {
      const dlq = `${spec.name}${DLQ_SUFFIX}`;
      const marks = await admin.fetchTopicOffsets(topicName(ctx.config, dlq)).catch(() => []);
      const total = marks.reduce((sum, mark) => sum + Number(mark.high) - Number(mark.low), 0);
      if (total > 0) counts[dlq] = total;
    }
  } finally {
    await admin.disconnect();
  }
  return counts;
}

/** Emails the mail sink received, by the notification each carries. */
async function deliveredMail(url: string): Promise<{ notificationId: string; messageId?: string }[]> {
  const response = await fetch(`${url.replace(/\/$/, "")}/messages`);
  if (!response.ok) throw new Error(`the mail sink at ${url} answered ${response.status}`);
  const { messages } = (await response.json()) as { messages: { notificationId?: string; messageId?: string }[] };
  return messages.flatMap((m) => (m.notificationId ? [{ notificationId: m.notificationId, ...(m.messageId === undefined ? {} : { messageId: m.messageId }) }] : []));
}

/** Gathers the evidence (log, Redis, the processor's books, DLQs, the mail sink if given) and applies the rules. */
export async function checkInvariants(
  ctx: Omit<CliContext, "settings">,
  options: { timeoutMs: number; mailsink?: string; accepted?: readonly string[]; cancelsAccepted?: readonly string[] },
): Promise<InvariantReport> {
  const records = await observe(ctx, options.timeoutMs);
  const redis = createRedis(ctx.config, ctx.log);
  const keys = keyspace(ctx.config.redisKeyPrefix);
  let stock: string[];
  let ledger: LedgerEntry[];
  let reservations: Map<string, string>;
  try {
    const stockStore = new StockStore(redis, keys);
    stock = await stockStore.checkConservation();
    reservations = await stockStore.reservationStates();
    ledger = await new RedisLedger(redis, keys).entries();
  } finally {
    redis.disconnect();
  }
  return evaluate({
    records,
    stock,
    ledger,
    reservations,
    deadLetters: await countDeadLetters(ctx),
    ...(options.mailsink === undefined ? {} : { mail: await deliveredMail(options.mailsink) }),
    ...(options.accepted === undefined ? {} : { accepted: options.accepted }),
    ...(options.cancelsAccepted === undefined ? {} : { cancelsAccepted: options.cancelsAccepted }),
  });
}

export function checkCommand(context: ContextFactory): Command {
  return new Command("check")
    .description("check the saga's invariants over the log, Redis, the processor's books and the mail sink (run when the system is quiet)")
    .option("--timeout <ms>", "how long reading the log may take", "120000")
    .option("--mailsink <url>", "count emails where they arrived: the mail sink's HTTP address (else from notifications.sent)")
    .option("--accepted <file>", "the order ids the API answered 202 with, one a line: compared with orders.created both ways")
    .option("--cancelled <file>", "the order ids whose cancel the API answered 202, one a line: each cancel must have taken effect")
    .action(async (options: { timeout: string; mailsink?: string; accepted?: string; cancelled?: string }) => {
      const ctx = context();
      const idsIn = (file: string) => readFileSync(file, "utf8").split("\n").map((line) => line.trim()).filter(Boolean);
      const report = await checkInvariants(ctx, {
        timeoutMs: Number(options.timeout),
        ...(options.mailsink === undefined ? {} : { mailsink: options.mailsink }),
        ...(options.accepted === undefined ? {} : { accepted: idsIn(options.accepted) }),
        ...(options.cancelled === undefined ? {} : { cancelsAccepted: idsIn(options.cancelled) }),
      });
      const { outcomes, violations } = report;
      output(ctx, report, [
        `orders accepted ${report.accepted}: completed ${outcomes.completed}, failed ${outcomes.failed}, cancelled ${outcomes.cancelled}, refunded after completion ${outcomes.refundedAfterCompletion}`,
        `charges ${report.charges}, refunds ${report.refunds}, emails ${report.emails} (resent after a crash ${report.resends}), dead letters ${Object.values(report.deadLetters).reduce((a, b) => a + b, 0)}`,
        ...Object.entries(violations).map(([rule, ids]) => `${ids.length === 0 ? "ok  " : "FAIL"} ${rule}${ids.length === 0 ? "" : `: ${ids.slice(0, 10).join(", ")}${ids.length > 10 ? " …" : ""}`}`),
        report.ok ? "all invariants hold" : "invariants violated",
      ]);
      if (!report.ok) process.exitCode = 1;
    });
}
