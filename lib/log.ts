/**
 * Structured JSON logging (pino) with the sensitive fields masked before anything is written:
 * card numbers keep their last four digits, emails their first letter and domain, secrets nothing.
 */
import { pino, type Logger } from "pino";
import { activeIds } from "./tracing.ts";

export type { Logger } from "pino";

/** Field names whose values are masked wherever they appear (up to two levels deep). */
export const sensitiveFields = [
  "card_number",
  "cardNumber",
  "customer_email",
  "customerEmail",
  "email",
  "token",
  "authorization",
  "password",
  "secret",
  "admin_token",
  "adminToken",
] as const;

/** Keeps only the last four digits of a card number: "************4242". */
export function maskCardNumber(value: string): string {
  const digits = value.replace(/\D/g, "");
  if (digits.length < 4) return "****";
  return `${"*".repeat(digits.length - 4)}${digits.slice(-4)}`;
}

/** Keeps the first character of the local part and the domain: "a***@example.com". */
export function maskEmail(value: string): string {
  const at = value.lastIndexOf("@");
  if (at < 1) return "***";
  return `${value[0]}***${value.slice(at)}`;
}

/** Masks a value according to the field it sits in. */
export function maskValue(field: string, value: unknown): string {
  if (typeof value !== "string") return "[redacted]";
  const lower = field.toLowerCase();
  if (lower.includes("card")) return maskCardNumber(value);
  if (lower.includes("email")) return maskEmail(value);
  return "[redacted]";
}

const redactPaths = sensitiveFields.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]);

/**
 * The service's root logger; children add order id, topic, partition and offset, and every line
 * written under an active span carries its traceId and spanId.
 */
export function createLogger(service: string, level = "info", destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin: activeIds,
      redact: {
        paths: redactPaths,
        censor: (value, path) => maskValue(path[path.length - 1] ?? "", value),
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
