/**
 * The librdkafka clients the hot path runs on, without the KafkaJS-style layer: a consumer that
 * hands over fetched records in batches, and a producer whose `produce` is a synchronous call into
 * the client's queue (no promise per record). Built from the same typed config as every client, with
 * the guarantee blocks applied (lib/config.ts). Promisified only where the call is not per record.
 */
import type { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import type * as Confluent from "@confluentinc/kafka-javascript";
import type { LibrdKafkaError, Message, MessageHeader, TopicPartitionOffset } from "@confluentinc/kafka-javascript";
import type { Config } from "../config.ts";
import type { RawHeaders } from "../codec/envelope.ts";
import type { Logger } from "../log.ts";

// The package's main module is CommonJS; its constructors are taken from it as it is.
const rdkafka = createRequire(import.meta.url)("@confluentinc/kafka-javascript") as typeof Confluent;

/** The consumer, with the calls the package has but its type declarations lack. */
export type NativeConsumer = InstanceType<typeof rdkafka.KafkaConsumer> & {
  incrementalAssign(partitions: Assigned[]): void;
  incrementalUnassign(partitions: Assigned[]): void;
  setDefaultIsTimeoutOnlyForFirstMessage(onlyForFirst: boolean): void;
};
export type NativeProducer = InstanceType<typeof rdkafka.Producer>;
export type { Message, TopicPartitionOffset };

/** A partition assigned to or revoked from a consumer. */
export interface Assigned {
  readonly topic: string;
  readonly partition: number;
}

/** librdkafka's codes for the two halves of a rebalance. */
export const ASSIGN = -175;
export const REVOKE = -174;

/** What a callback-style client call resolves with, as a promise. */
function promised(call: (done: (err: LibrdKafkaError | null | undefined) => void) => void): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the client's errors inherit Error and carry its flags (isFatal, isRetriable, …)
  return new Promise((resolve, reject) => call((err) => (err ? reject(err) : resolve())));
}

/** Client log lines at warning and above go to our logger (librdkafka levels: 4 warning, 3 error). */
function forwardLogs(client: NativeConsumer | NativeProducer, log: Logger): void {
  // Both clients are event emitters with these two events; their declarations type each apart.
  const emitter = client as unknown as EventEmitter;
  emitter.on("event.log", (line: { severity: number; fac: string; message: string }) => {
    if (line.severity <= 3) log.error({ facility: line.fac }, line.message);
    else if (line.severity === 4) log.warn({ facility: line.fac }, line.message);
  });
  emitter.on("event.error", (err: LibrdKafkaError) => log.warn({ err }, "kafka client error"));
}

/**
 * A connected consumer of `groupId`. `onRebalance` is called for every assignment change and must
 * eventually call `incrementalAssign`/`incrementalUnassign` itself (cooperative rebalancing).
 */
export async function connectConsumer(
  config: Config,
  log: Logger,
  groupId: string,
  options: { readonly extra?: Record<string, string | number | boolean>; readonly onRebalance: (code: number, partitions: Assigned[]) => void },
): Promise<NativeConsumer> {
  // auto.offset.reset is a topic property: this client applies it only from the topic config.
  const { "auto.offset.reset": offsetReset = "earliest", ...global } = { ...config.kafka.consumer, ...options.extra };
  const consumer = new rdkafka.KafkaConsumer(
    {
      ...global,
      "bootstrap.servers": config.kafka.brokers,
      "client.id": config.kafka.clientId,
      "group.id": groupId,
      event_cb: true,
      rebalance_cb: (err: LibrdKafkaError, assignment: Assigned[]) => options.onRebalance(err.code, assignment.map(({ topic, partition }) => ({ topic, partition }))),
    },
    { "auto.offset.reset": String(offsetReset) as "earliest" | "latest" },
  ) as NativeConsumer;
  forwardLogs(consumer, log);
  await promised((done) => consumer.connect({ timeout: 30_000 }, (err) => done(err)));
  return consumer;
}

/**
 * A connected idempotent producer (acks=all). `extra` adds properties such as `transactional.id`;
 * with `dr_cb: true` the caller listens to "delivery-report" itself.
 */
export async function connectProducer(config: Config, log: Logger, extra: Record<string, string | number | boolean> = {}): Promise<NativeProducer> {
  const producer = new rdkafka.Producer({
    ...config.kafka.producer,
    "message.timeout.ms": config.kafka.deliveryTimeoutMs,
    ...extra,
    "bootstrap.servers": config.kafka.brokers,
    "client.id": config.kafka.clientId,
    event_cb: true,
  });
  forwardLogs(producer, log);
  await promised((done) => producer.connect({ timeout: 30_000 }, (err) => done(err)));
  return producer;
}

/** How long a disconnect may take before the caller goes on without it. */
const DISCONNECT_TIMEOUT_MS = 15_000;

/**
 * Disconnects a client, ignoring one that is already gone. Resolves after DISCONNECT_TIMEOUT_MS
 * at the latest (`timedOut` says so): a producer dropped after a fatal error must never hold up
 * what comes after it (a commit cycle waiting on it would stop every consumer of the process).
 */
export function disconnect(client: NativeConsumer | NativeProducer, timedOut?: () => void): Promise<void> {
  if (!client.isConnected()) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      timedOut?.();
      resolve();
    }, DISCONNECT_TIMEOUT_MS);
    timer.unref();
    client.disconnect(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Up to `max` records: those already fetched, or the first to arrive within the consumer's timeout. */
export function consumeBatch(consumer: NativeConsumer, max: number): Promise<Message[]> {
  // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- as above
  return new Promise((resolve, reject) => consumer.consume(max, (err, messages) => (err ? reject(err) : resolve(messages))));
}

/** The producer's transactional calls, as promises. */
export const transactions = {
  /** Sends what the client holds and waits for the broker's answers (before an abort: see transactions.ts). */
  flush: (producer: NativeProducer, timeoutMs: number) => promised((done) => producer.flush(timeoutMs, done)),
  init: (producer: NativeProducer, timeoutMs: number) => promised((done) => producer.initTransactions(timeoutMs, done)),
  begin: (producer: NativeProducer) => promised((done) => producer.beginTransaction(done)),
  sendOffsets: (producer: NativeProducer, offsets: TopicPartitionOffset[], consumer: NativeConsumer, timeoutMs: number) =>
    promised((done) => producer.sendOffsetsToTransaction(offsets, consumer, timeoutMs, done)),
  commit: (producer: NativeProducer, timeoutMs: number) => promised((done) => producer.commitTransaction(timeoutMs, done)),
  abort: (producer: NativeProducer, timeoutMs: number) => promised((done) => producer.abortTransaction(timeoutMs, done)),
};

/** Headers as the envelope reads them: name → value (the last one when repeated). */
export function headersOf(headers: readonly MessageHeader[] | undefined): RawHeaders {
  const flat: Record<string, Buffer | string> = {};
  for (const header of headers ?? []) {
    for (const name of Object.keys(header)) {
      const value = header[name];
      if (value !== undefined) flat[name] = value;
    }
  }
  return flat;
}

/** Headers as the client takes them. */
export function nativeHeaders(headers: Readonly<Record<string, string>>): MessageHeader[] {
  return Object.entries(headers).map(([name, value]) => ({ [name]: value }));
}
