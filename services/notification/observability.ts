/**
 * What the notification service adds to its ops port: emails sent and failed by template, and an
 * `smtp` readiness check. The check asks the SMTP server for a greeting (nodemailer's verify():
 * connect, EHLO, and login when configured), bounded in time below the ops server's own bound. An
 * unreachable server is "degraded", not "error": emails wait and are sent once it is back (a failed
 * send is retried, never dropped), and the service keeps consuming — taking it out of rotation
 * would not bring mail back sooner.
 */
import { Counter, type Registry } from "prom-client";
import type { Transporter } from "nodemailer";
import { messageOf } from "../../lib/errors.ts";
import type { HealthCheck } from "../../lib/ops-server.ts";

/** Longest the smtp check waits for the server (the ops server gives every check 2 s). */
const SMTP_CHECK_TIMEOUT_MS = 1500;

export interface NotificationMetrics {
  /** Send attempts by template name and result (sent, failed); a rate-limited delay is neither. */
  readonly emails: Counter<"template" | "result">;
}

export function createNotificationMetrics(registry: Registry): NotificationMetrics {
  return {
    emails: new Counter({
      name: "orderflow_emails_total",
      help: "Emails handed to the SMTP server (result=sent) or refused by it or not reaching it (result=failed; retried later)",
      labelNames: ["template", "result"],
      registers: [registry],
    }),
  };
}

/** Readiness of the SMTP server: ok when it greets within `timeoutMs`, degraded otherwise. */
export function smtpCheck(mailer: Pick<Transporter, "verify">, timeoutMs = SMTP_CHECK_TIMEOUT_MS): HealthCheck {
  return {
    name: "smtp",
    check: async () => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([mailer.verify(), late]);
        return { status: "ok", detail: { reachable: true } };
      } catch (err) {
        return { status: "degraded", detail: { reachable: false, error: messageOf(err) } };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
