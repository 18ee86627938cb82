/**
 * The error vocabulary of orderflow. The retry decision is made where an error is born: every
 * OrderflowError says whether trying again can help, and the consumer runner acts on that alone
 * (retry, dead-letter, or crash).
 */

/** Base of every error we raise on purpose. `errorClass` is a stable name for headers and metrics. */
export abstract class OrderflowError extends Error {
  abstract readonly retriable: boolean;
  abstract readonly errorClass: string;
}

/** Something that may work if tried again: a timeout, a lost connection, a busy dependency. */
export class TransientError extends OrderflowError {
  override readonly name: string = "TransientError";
  readonly retriable = true;
  readonly errorClass = "transient";
}

/** Why a record could not be read. */
export type PoisonReason =
  | "missing-header"
  | "unknown-type"
  | "unexpected-type"
  | "unsupported-content-type"
  | "malformed"
  | "invalid"
  | "too-large";

/** A record that can never be handled as it is; it goes to its DLQ at once. */
export class PoisonRecordError extends OrderflowError {
  override readonly name = "PoisonRecordError";
  readonly retriable = false;
  readonly errorClass: string;

  constructor(
    readonly reason: PoisonReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.errorClass = `poison.${reason}`;
  }
}

/** A business rule refused the input; retrying the same input gives the same answer. */
export class RejectedError extends OrderflowError {
  override readonly name: string = "RejectedError";
  readonly retriable = false;
  readonly errorClass = "rejected";
}

/** True when trying again may help. Unknown errors count as retriable: a bounded retry then DLQ is safer than dropping. */
export function isRetriable(err: unknown): boolean {
  if (err instanceof OrderflowError) return err.retriable;
  if (typeof err === "object" && err !== null && "retriable" in err) return Boolean(err.retriable);
  return true;
}

const connectionCodes: ReadonlySet<string> = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTCONN"]);

/**
 * True for a passing outage rather than a bad record: our TransientError, or a dependency's
 * connection failing (Redis down, a socket reset, a command whose connection closed). The consumer
 * waits such errors out instead of dead-lettering the record.
 */
export function isOutage(err: unknown): boolean {
  if (err instanceof OrderflowError) return err instanceof TransientError;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && connectionCodes.has(code)) return true;
  return err.name === "MaxRetriesPerRequestError" || /Connection is closed|Stream isn't writeable|connect ECONNREFUSED|Command timed out/.test(err.message);
}

/** A stable class name for an error, for DLQ headers and metric labels. */
export function errorClassOf(err: unknown): string {
  if (err instanceof OrderflowError) return err.errorClass;
  if (err instanceof Error) return err.name === "Error" ? "unknown" : err.name;
  return "unknown";
}

/** The message of anything thrown. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
