/** How the notification service is put together: SMTP transport, notifier, the notifications.email consumer, email metrics and the smtp readiness check. */
import { integer, unsafeDedupOff } from "../../lib/config.ts";
import type { EmailRequested } from "../../gen/orderflow/v1/events_pb.ts";
import { createNotifier } from "./handlers.ts";
import { createNotificationMetrics, smtpCheck } from "./observability.ts";
import { createMailer, defaultPool } from "./smtp.ts";
import type { Env } from "../../lib/config.ts";
import type { Runtime, ServiceParts } from "../../lib/service.ts";

/** Builds the notification service on a runtime; `env` holds its own settings. */
export function buildNotification(env: Env) {
  return (runtime: Runtime): ServiceParts => {
    const mailer = createMailer(env["SMTP_URL"] ?? "smtp://127.0.0.1:2525", {
      maxConnections: integer(env, "SMTP_POOL_CONNECTIONS", defaultPool.maxConnections, 1),
      maxMessages: integer(env, "SMTP_POOL_MAX_MESSAGES", defaultPool.maxMessages, 1),
    });
    const notify = createNotifier({
      ...runtime,
      mailer,
      from: env["MAIL_FROM"] ?? "orders@orderflow.test",
      ratePerMinute: integer(env, "EMAIL_RATE_PER_MINUTE", 20, 1),
      sentLifetimeMs: runtime.config.redisLifetimes.dedupMs,
      dedup: !unsafeDedupOff(env),
      ...createNotificationMetrics(runtime.metrics.registry),
    });
    runtime.consume({ group: "notification", topics: ["notifications.email"], handler: (record, context) => notify(record.message as unknown as EmailRequested, context.out) });
    return {
      checks: [smtpCheck(mailer)],
      stop: () => Promise.resolve(mailer.close()),
    };
  };
}
