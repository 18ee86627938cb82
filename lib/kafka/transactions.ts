/**
 * Kafka transactions for consume → process → produce: the produced records and the consumed
 * offsets commit together or not at all. Errors are sorted by the client's own flags: a retriable
 * commit is tried again, an abortable error aborts (the input is then read again), a fatal error
 * means this producer is finished (fenced by a newer instance, or broken) and must be recreated.
 */
import { KafkaJS } from "@confluentinc/kafka-javascript";
import type { Config } from "../config.ts";
import { OrderflowError, TransientError, messageOf } from "../errors.ts";
import { createProducer, type Kafka, type Producer } from "./client.ts";

/** The client's verdict on an error from a transactional call. */
export type TransactionErrorKind = "retriable" | "abortable" | "fatal" | "unknown";

/** Codes that end a producer even when the client leaves its `fatal` flag unset (seen for fencing). */
const fatalCodes: ReadonlySet<number> = new Set([KafkaJS.ErrorCodes.ERR__FENCED, KafkaJS.ErrorCodes.ERR__FATAL]);

/** Reads the retriable/abortable/fatal flags and codes the client sets on transactional errors. */
export function classifyKafkaError(err: unknown): TransactionErrorKind {
  if (!(err instanceof KafkaJS.KafkaJSError)) return "unknown";
  if (err.fatal || fatalCodes.has(err.code)) return "fatal";
  if (err.abortable) return "abortable";
  if (err.retriable) return "retriable";
  return "unknown";
}

/** The transactional producer cannot go on; create a new one (and with it a new epoch). */
export class FatalProducerError extends OrderflowError {
  override readonly name = "FatalProducerError";
  readonly retriable = false;
  readonly errorClass = "kafka.fatal";
}

/** A connected producer that owns `transactionalId`; connecting fences older owners of the id. */
export async function createTransactionalProducer(kafka: Kafka, config: Config, transactionalId: string): Promise<Producer> {
  const producer = createProducer(kafka, config, {
    "transactional.id": transactionalId,
    "transaction.timeout.ms": 60000,
  });
  await producer.connect();
  return producer;
}

export type Transaction = KafkaJS.Transaction;

const COMMIT_ATTEMPTS = 3;

/**
 * Runs `work` inside a transaction and commits it. On failure the transaction is aborted and a
 * TransientError is thrown (the caller reprocesses its input), or a FatalProducerError when the
 * producer must be replaced.
 */
export async function inTransaction<T>(producer: Producer, work: (tx: Transaction) => Promise<T>): Promise<T> {
  const tx = await producer.transaction();
  let result: T;
  try {
    result = await work(tx);
  } catch (err) {
    await abortQuietly(tx, err);
    throw err;
  }
  for (let attempt = 1; ; attempt += 1) {
    try {
      await tx.commit();
      return result;
    } catch (err) {
      const kind = classifyKafkaError(err);
      if (kind === "retriable" && attempt < COMMIT_ATTEMPTS) continue;
      if (kind === "fatal") throw new FatalProducerError(`transaction commit failed fatally: ${messageOf(err)}`, { cause: err });
      await abortQuietly(tx, err);
      throw new TransientError(`transaction commit failed (${kind}): ${messageOf(err)}`, { cause: err });
    }
  }
}

async function abortQuietly(tx: Transaction, cause: unknown): Promise<void> {
  try {
    await tx.abort();
  } catch (abortErr) {
    if (classifyKafkaError(abortErr) === "fatal" || classifyKafkaError(cause) === "fatal") {
      throw new FatalProducerError(`transaction abort failed: ${messageOf(abortErr)}`, { cause: abortErr });
    }
  }
}
