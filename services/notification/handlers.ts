/**
 * Sends the customer emails the saga asks for: exactly one per (order, template) even when the
 * command is delivered again, at most EMAIL_RATE_PER_MINUTE per customer (more are delayed, not
 * dropped), then records notifications.sent. A claim keeps two senders apart, a `sent:` record
 * answers a redelivery, and a stable Message-ID makes the one unavoidable resend — after a crash
 * between the SMTP server's acceptance and our record — the same message again.
 *
 * Two Redis round trips an email: one script reads the record, counts the customer's minute and
 * takes the claim (or answers "sent", "busy" or "limited"); after the send, one SET records it.
 * A failed send gives the claim and the rate slot back in one more script call.
 *
 * Lifetimes: the `sent:` record expires `sentLifetimeMs` (REDIS_DEDUP_TTL_MS) after the send,
 * later than any redelivery of its command; a claim after `claimMs`; a minute's count after two
 * minutes.
 */
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { Transporter } from "nodemailer";
import type { Counter } from "prom-client";
import { EmailTemplate, NotificationSentSchema, type EmailRequested } from "../../gen/orderflow/v1/events_pb.ts";
import { TransientError, messageOf } from "../../lib/errors.ts";
import { maskEmail, type Logger } from "../../lib/log.ts";
import { DEFAULT_DEDUP_LIFETIME_MS } from "../../lib/lifetimes.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import type { Sink } from "../../lib/kafka/publisher.ts";
import { randomUUID } from "node:crypto";
import { v5 as uuidv5 } from "uuid";
import { mailOf } from "./smtp.ts";
import { NOTIFICATION_HEADER, render } from "./templates.ts";

export interface NotificationDeps {
  readonly redis: Redis;
  readonly keys: Keys;
  readonly mailer: Pick<Transporter, "sendMail">;
  readonly log: Logger;
  readonly from: string;
  /** Emails per customer per minute. */
  readonly ratePerMinute: number;
  /** How long the record of a sent email answers redeliveries (REDIS_DEDUP_TTL_MS; its default when unset). */
  readonly sentLifetimeMs?: number;
  /** How long a send in progress holds its claim; a crash mid-send frees it after this. */
  readonly claimMs?: number;
  /** Test-only: false sends on every delivery (the invariant checker's negative control). */
  readonly dedup?: boolean;
  /** Counts send attempts by template and result (observability.ts). */
  readonly emails?: Pick<Counter<"template" | "result">, "inc">;
  /** The clock the rate limit's minute windows are read from. */
  readonly now?: () => number;
}

/**
 * KEYS: the email's record, the customer's count for this minute. ARGV: the claim's value, how
 * long it holds (ms), the rate limit, how long a minute's count is kept (s). A `sent:` record
 * answers with its Message-ID; a claim in place is "busy"; a customer at the limit is "limited"
 * (nothing counted); otherwise the count goes up and the claim is taken.
 */
const claimScript = `
local earlier = redis.call('GET', KEYS[1])
if earlier then
  if string.sub(earlier, 1, 5) == 'sent:' then return {'sent', string.sub(earlier, 6)} end
  return {'busy', ''}
end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[3]) then return {'limited', ''} end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[4]) end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'claimed', ''}`;

/** Gives a failed send's claim (if still ours) and its rate slot back. */
const giveBackScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 1`;

/** A minute's count outlives its minute, so that a late give-back finds it. */
const RATE_WINDOW_TTL_S = 120;

type NotifierRedis = Redis & {
  emailClaim(email: string, rate: string, claim: string, claimMs: number, limit: number, windowTtlS: number): Promise<[status: "sent" | "busy" | "limited" | "claimed", messageId: string]>;
  emailGiveBack(email: string, rate: string, claim: string): Promise<number>;
};

export function createNotifier(deps: NotificationDeps) {
  const { keys, mailer, log } = deps;
  const claimMs = deps.claimMs ?? 20_000;
  const sentLifetimeMs = deps.sentLifetimeMs ?? DEFAULT_DEDUP_LIFETIME_MS;
  const now = deps.now ?? Date.now;
  deps.redis.defineCommand("emailClaim", { numberOfKeys: 2, lua: claimScript });
  deps.redis.defineCommand("emailGiveBack", { numberOfKeys: 2, lua: giveBackScript });
  const redis = deps.redis as NotifierRedis;

  /** Sends one requested email (once); notifications.sent goes to `out` (the consumer's transaction). */
  return async function handle(command: EmailRequested, out: Sink): Promise<void> {
    const key = deps.dedup === false ? keys("email", command.notificationId, randomUUID()) : keys("email", command.notificationId);
    const rateKey = keys("email-rate", command.customerId, String(Math.floor(now() / 60_000)));
    const claim = `sending:${randomUUID()}`;
    const [status, earlierMessageId] = await redis.emailClaim(key, rateKey, claim, claimMs, deps.ratePerMinute, RATE_WINDOW_TTL_S);
    if (status === "sent") {
      await publishSent(out, command, earlierMessageId);
      return;
    }
    if (status === "busy") throw new TransientError(`email ${command.notificationId} is being sent by another instance`);
    if (status === "limited") throw new TransientError(`customer ${command.customerId} reached ${deps.ratePerMinute} emails a minute; delayed`);
    const email = render(command.template, command.orderId, command.params);
    const template = EmailTemplate[command.template] ?? "UNKNOWN";
    // The same Message-ID every time this notification is sent: if we crash after the server took
    // it and before we noted that, the resend is the same message, which mail systems collapse (the
    // idempotency key SMTP has). Without dedup (test switch) every send is a new message.
    const messageId = deps.dedup === false ? messageIdOf(randomUUID()) : messageIdOf(command.notificationId);
    try {
      await mailer.sendMail(mailOf({ from: deps.from, to: command.email, subject: email.subject, text: email.text, messageId, headers: { [NOTIFICATION_HEADER]: command.notificationId } }, new Date(now())));
      deps.emails?.inc({ template, result: "sent" });
    } catch (err) {
      deps.emails?.inc({ template, result: "failed" });
      // Only a send that happens uses up the customer's rate: an attempt that fails gives its slot back.
      await redis.emailGiveBack(key, rateKey, claim);
      throw new TransientError(`SMTP refused or unreachable: ${messageOf(err)}`, { cause: err });
    }
    await redis.set(key, `sent:${messageId}`, "PX", sentLifetimeMs);
    log.info({ orderId: command.orderId, template, to: maskEmail(command.email) }, "email sent");
    await publishSent(out, command, messageId);
  };
}

async function publishSent(out: Sink, command: EmailRequested, messageId: string): Promise<void> {
  await out.publish("notifications.sent", NotificationSentSchema, {
    notificationId: command.notificationId,
    orderId: command.orderId,
    template: command.template,
    messageId,
    sentAt: timestampNow(),
  }, { orderId: command.orderId, eventId: sentEventId(command.notificationId) });
}

const SENT_NAMESPACE = "6f1c2a8e-4b1d-4f0e-9a57-2d7b8c3e5a10";

/** The Message-ID of a notification's email: stable, unique per (order, template). */
export function messageIdOf(notificationId: string): string {
  return `<${uuidv5(notificationId, SENT_NAMESPACE)}@orderflow.notifications>`;
}

/** The same id for every notifications.sent of one notification, so a replay is recognised downstream. */
export function sentEventId(notificationId: string): string {
  return uuidv5(`${notificationId}:sent`, SENT_NAMESPACE);
}
