/**
 * Notification against a real SMTP server (the mail sink), Redis and Kafka: one email per
 * (order, template) under redelivery and concurrency, the rate limit delays instead of dropping,
 * an unreachable SMTP server is a retriable failure, notifications.sent is recorded, and an email
 * costs two Redis round trips (one for a redelivery). The record of a sent email expires, no sooner
 * than any redelivery can come.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createTransport } from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmailRequestedSchema, EmailTemplate } from "../../gen/orderflow/v1/events_pb.ts";
import { encodeRecord } from "../../lib/codec/codec.ts";
import { TransientError } from "../../lib/errors.ts";
import { createPublisher, type Publisher } from "../../lib/kafka/publisher.ts";
import { openTestKafka, type TestKafka } from "../../test/harness/kafka.ts";
import { openTestRedis, type TestRedis } from "../../test/harness/redis.ts";
import { logCommands } from "../../test/harness/redis-commands.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { startService } from "../../lib/service.ts";
import { createCatalogTopics, serviceEnv, watchTopics } from "../../test/harness/system.ts";
import { buildNotification } from "./service.ts";
import { listMail, startMailSink, type MailSink } from "../mailsink/sink.ts";
import { createNotifier, messageIdOf } from "./handlers.ts";
import { DEFAULT_DEDUP_LIFETIME_MS, longestRedeliveryMs } from "../../lib/lifetimes.ts";

let t: TestKafka;
let r: TestRedis;
let publisher: Publisher;
let sink: MailSink;
let dir: string;

beforeAll(async () => {
  t = await openTestKafka("notification-test");
  r = await openTestRedis();
  await createCatalogTopics(t);
  publisher = await createPublisher(t.kafka, t.config);
  dir = mkdtempSync(join(tmpdir(), "mailsink-"));
  sink = await startMailSink({ dir, smtpPort: 0, httpPort: 0 });
});

afterAll(async () => {
  await sink?.close();
  await publisher?.disconnect();
  await r?.close();
  await t?.close();
});

/** The notifier, answering straight to the broker as an at-least-once consumer would. */
const notifier = (ratePerMinute = 20, port = sink.smtpPort, now?: () => number) => {
  const notify = createNotifier({ redis: r.redis, keys: r.keys, log: t.log, from: "orders@orderflow.test", ratePerMinute, mailer: createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true }), ...(now === undefined ? {} : { now }) });
  return (cmd: ReturnType<typeof command>) => notify(cmd, publisher);
};

const command = (orderId: string, customerId = `c-${randomUUID().slice(0, 6)}`, template = EmailTemplate.ORDER_CONFIRMED) =>
  create(EmailRequestedSchema, { ...sampleOf(EmailRequestedSchema, orderId), customerId, template, notificationId: `${orderId}:${EmailTemplate[template]}` });

describe("notification", () => {
  it("sends one email per (order, template) however often and however concurrently it is asked", async () => {
    const orderId = randomUUID();
    const watch = await watchTopics(t, ["notifications.sent"]);
    const send = notifier();
    const cmd = command(orderId);
    const results = await Promise.allSettled([send(cmd), send(cmd), send(cmd)]);
    await send(cmd).catch(() => undefined);
    await send(cmd);
    const mails = listMail(dir).filter((m) => m.subject.includes(orderId.slice(0, 8)));
    expect(mails).toHaveLength(1);
    expect(mails[0]?.to).toEqual(["ada@example.com"]);
    expect(mails[0]?.messageId).toBe(messageIdOf(cmd.notificationId));
    expect(mails[0]?.notificationId).toBe(cmd.notificationId);
    expect(results.filter((x) => x.status === "fulfilled").length).toBeGreaterThanOrEqual(1);
    // The sent record answers redeliveries for longer than any can come, then expires.
    const ttl = await r.redis.pttl(r.keys("email", cmd.notificationId));
    expect(ttl).toBeGreaterThan(longestRedeliveryMs());
    expect(ttl).toBeLessThanOrEqual(DEFAULT_DEDUP_LIFETIME_MS);
    const sent = await watch.next(orderId, "notifications.sent");
    expect(sent.envelope.eventType).toBe("orderflow.v1.NotificationSent");
    await watch.close();
  });

  it("delays past the per-customer rate limit instead of dropping", async () => {
    // One minute window for all three, whenever the test runs (a window boundary would reset the count).
    const minuteStart = Math.floor(Date.now() / 60_000) * 60_000;
    const send = notifier(2, sink.smtpPort, () => minuteStart);
    const customer = `c-${randomUUID().slice(0, 6)}`;
    await send(command(randomUUID(), customer));
    await send(command(randomUUID(), customer));
    const third = command(randomUUID(), customer);
    await expect(send(third)).rejects.toBeInstanceOf(TransientError);
    // Delayed, not dropped: nothing counted or claimed for it, and it goes out in a later minute.
    expect(await r.redis.get(r.keys("email-rate", customer, String(minuteStart / 60_000)))).toBe("2");
    expect(await r.redis.exists(r.keys("email", third.notificationId))).toBe(0);
    await notifier(2, sink.smtpPort, () => minuteStart + 60_000)(third);
    expect(listMail(dir).filter((m) => m.notificationId === third.notificationId)).toHaveLength(1);
  });

  it("costs two Redis round trips an email (claim with rate, sent record) and one for a redelivery", async () => {
    const commands = logCommands(r.redis);
    const send = notifier();
    await send(command(randomUUID())); // loads the script
    commands.take();
    const cmd = command(randomUUID());
    await send(cmd);
    expect(commands.take()).toEqual(["evalsha", "set"]);
    await send(cmd);
    expect(commands.take()).toEqual(["evalsha"]);
  });

  it("lists stored mail over HTTP and serves each message", async () => {
    const orderId = randomUUID();
    await notifier()(command(orderId));
    const listing = (await (await fetch(`http://127.0.0.1:${sink.httpPort}/messages`)).json()) as { messages: { id: string; subject: string }[] };
    const mine = listing.messages.find((m) => m.subject.includes(orderId.slice(0, 8)));
    expect(mine).toBeDefined();
    const raw = await (await fetch(`http://127.0.0.1:${sink.httpPort}/messages/${mine!.id}`)).text();
    expect(raw).toContain(orderId);
    expect((await fetch(`http://127.0.0.1:${sink.httpPort}/messages/00000000-0000-0000-0000-000000000000`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${sink.httpPort}/other`)).status).toBe(404);
  });

  it("runs as a service: consumes notifications.email, sends, records notifications.sent, checks SMTP", async () => {
    const env = serviceEnv(t, r.prefix, { SMTP_URL: `smtp://127.0.0.1:${sink.smtpPort}` });
    const service = await startService("notification", buildNotification(env), env);
    const watch = await watchTopics(t, ["notifications.sent"]);
    try {
      const orderId = randomUUID();
      await publisher.publish("notifications.email", EmailRequestedSchema, command(orderId, "c-svc", EmailTemplate.OUT_OF_STOCK), { orderId, key: "c-svc" });
      await watch.next(orderId, "notifications.sent");
      expect(listMail(dir).filter((m) => m.subject.includes(orderId.slice(0, 8)) && /out of stock/.test(m.subject))).toHaveLength(1);
      const ready = (await (await fetch(`http://127.0.0.1:${service.ops.port}/health/ready`)).json()) as { checks: Record<string, { status: string }> };
      expect(ready.checks["smtp"]?.status).toBe("ok");
    } finally {
      await watch.close();
      await service.stop();
    }
  });

  it("holds back only the customer over the rate limit: another customer's email in the same partition is sent meanwhile", async () => {
    const env = serviceEnv(t, r.prefix, { SMTP_URL: `smtp://127.0.0.1:${sink.smtpPort}`, EMAIL_RATE_PER_MINUTE: "1" });
    const service = await startService("notification", buildNotification(env), env);
    const watch = await watchTopics(t, ["notifications.sent"]);
    const producer = t.kafka.producer();
    await producer.connect();
    try {
      const [first, held, other] = [randomUUID(), randomUUID(), randomUUID()];
      const inPartitionZero = async (orderId: string, customerId: string) => {
        const record = encodeRecord(EmailRequestedSchema, command(orderId, customerId), { key: customerId, orderId, producer: "orchestrator", encoding: "binary" });
        await producer.send({ topic: t.topic("notifications.email"), messages: [{ partition: 0, key: record.key, value: record.value, headers: record.headers }] });
      };
      await inPartitionZero(first, "c-busy");
      await watch.next(first, "notifications.sent");
      // c-busy is at its limit for this minute: its next email waits; the one after it in the
      // partition, of another customer, must not wait with it.
      await inPartitionZero(held, "c-busy");
      await inPartitionZero(other, "c-calm");
      await watch.next(other, "notifications.sent", 15_000);
      // The held one goes out once a new minute starts.
      await watch.next(held, "notifications.sent", 90_000);
    } finally {
      await producer.disconnect();
      await watch.close();
      await service.stop();
    }
  });

  it("treats an unreachable SMTP server as retriable and can send later; failed attempts use up no rate", async () => {
    const orderId = randomUUID();
    const cmd = command(orderId);
    for (let attempt = 0; attempt < 3; attempt += 1) await expect(notifier(1, 1)(cmd)).rejects.toBeInstanceOf(TransientError);
    expect(await r.redis.exists(r.keys("email", cmd.notificationId))).toBe(0);
    await notifier(1)(cmd);
    expect(listMail(dir).filter((m) => m.subject.includes(orderId.slice(0, 8)))).toHaveLength(1);
  });
});
