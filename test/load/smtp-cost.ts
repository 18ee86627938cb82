/**
 * What one email costs in CPU, for the sender and for the mail sink: sends N emails through the
 * notifier (claim and rate limit in Redis, the pooled SMTP transport) to a real mail sink running
 * as its own process, and prints CPU milliseconds per email for each. The notifier's answer
 * (notifications.sent) goes to a sink that drops it, so Kafka is left out of the figure.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 node --import tsx test/load/smtp-cost.ts [N] [in flight]
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { create } from "@bufbuild/protobuf";
import { EmailRequestedSchema, EmailTemplate } from "../../gen/orderflow/v1/events_pb.ts";
import type { Sink } from "../../lib/kafka/publisher.ts";
import { createLogger } from "../../lib/log.ts";
import { createRedis, keyspace } from "../../lib/redis.ts";
import { createNotifier } from "../../services/notification/handlers.ts";
import { createMailer } from "../../services/notification/smtp.ts";

const total = Number(process.argv[2] ?? 2000);
const inFlight = Number(process.argv[3] ?? 32);
const log = createLogger("smtp-cost", "warn");

/** User + system CPU seconds of another process so far, from /proc. */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const dropped: Sink = { publish: () => Promise.resolve(), send: () => Promise.resolve() };

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "smtp-cost-"));
  const sink = spawn(process.execPath, [...process.execArgv, "services/mailsink/main.ts"], {
    env: { ...process.env, MAILSINK_DIR: dir, MAILSINK_SMTP_PORT: "0", MAILSINK_HTTP_PORT: "0", LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const smtpPort = await new Promise<number>((resolve, reject) => {
    sink.once("exit", (code) => reject(new Error(`the mail sink exited (${code})`)));
    createInterface({ input: sink.stdout }).on("line", (line) => {
      const entry = JSON.parse(line) as { msg?: string; smtpPort?: number };
      if (entry.msg === "ready" && entry.smtpPort !== undefined) resolve(entry.smtpPort);
    });
  });
  const redis = createRedis({ redisUrl: process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379" }, log);
  const prefix = `smtp-cost-${randomUUID().slice(0, 8)}`;
  const mailer = createMailer(`smtp://127.0.0.1:${smtpPort}`);
  const notify = createNotifier({ redis, keys: keyspace(prefix), mailer, log, from: "orders@orderflow.test", ratePerMinute: 20 });
  const command = (i: number) => {
    const orderId = randomUUID();
    return create(EmailRequestedSchema, {
      notificationId: `${orderId}:ORDER_CONFIRMED`,
      orderId,
      customerId: `c-${i}`,
      email: "ada@example.com",
      template: EmailTemplate.ORDER_CONFIRMED,
      params: { total: "USD 1049.99" },
    });
  };
  const run = async (count: number) => {
    let next = 0;
    const worker = async () => {
      while (next < count) await notify(command(next++), dropped);
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
  };
  try {
    await run(Math.min(200, total)); // warm-up: connections, JIT, scripts loaded
    const sinkBefore = cpuSecondsOf(sink.pid!);
    const before = process.cpuUsage();
    const started = performance.now();
    await run(total);
    const elapsedMs = performance.now() - started;
    const used = process.cpuUsage(before);
    const sinkMs = (cpuSecondsOf(sink.pid!) - sinkBefore) * 1000;
    const senderMs = (used.user + used.system) / 1000;
    process.stdout.write(
      `${JSON.stringify({
        emails: total,
        inFlight,
        emailsPerSecond: Math.round((total / elapsedMs) * 1000),
        senderCpuMsPerEmail: Number((senderMs / total).toFixed(3)),
        sinkCpuMsPerEmail: Number((sinkMs / total).toFixed(3)),
      })}\n`,
    );
  } finally {
    mailer.close();
    for await (const found of redis.scanStream({ match: `${prefix}:*`, count: 500 })) {
      if ((found as string[]).length > 0) await redis.del(...(found as string[]));
    }
    redis.disconnect();
    sink.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
