/**
 * Publishing typed records: validate, encode with the envelope, produce, and resolve only after the
 * broker acknowledged the record (acks=all). A produce that cannot be acknowledged within the
 * delivery timeout rejects with a TransientError.
 */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import type { Config } from "../config.ts";
import { TransientError, messageOf } from "../errors.ts";
import { encodeRecord, type OutgoingRecord } from "../codec/codec.ts";
import { traceSend } from "../tracing.ts";
import { createProducer, topicName, type Kafka, type Producer } from "./client.ts";

/** Where a record landed. */
export interface Delivery {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export interface PublishOptions {
  /** Partition key; defaults to the order id. */
  readonly key?: string;
  readonly orderId: string;
  readonly eventId?: string;
}

/**
 * Where a handler's outputs go: straight to the broker (resolving on its ack), or into the open
 * transaction (resolving once queued; the commit makes them visible).
 */
export interface Sink<Result = unknown> {
  /** Encodes `init` as `schema` onto the catalog topic `base` (prefix applied). */
  publish<Desc extends DescMessage>(
    base: string,
    schema: Desc,
    init: MessageInitShape<Desc>,
    options: PublishOptions,
  ): Promise<Result>;
  /** Sends an already encoded record to an exact topic name (DLQ, replay). */
  send(topic: string, record: OutgoingRecord): Promise<Result>;
}

/** Sends records and waits for the broker's ack. */
export interface Publisher extends Sink<Delivery> {
  disconnect(): Promise<void>;
}

/**
 * A sink over `send`: publish() validates and encodes with the envelope, then sends; every send
 * runs under a producer span whose trace context goes into the record's headers.
 */
export function sinkOf<Result>(config: Config, untraced: (topic: string, record: OutgoingRecord) => Promise<Result>): Sink<Result> {
  const send = (topic: string, record: OutgoingRecord) => traceSend(topic, record, (traced) => untraced(topic, traced));
  return {
    send,
    publish(base, schema, init, options) {
      const record = encodeRecord(schema, init, {
        key: options.key ?? options.orderId,
        orderId: options.orderId,
        producer: config.service,
        encoding: config.encoding,
        ...(options.eventId === undefined ? {} : { eventId: options.eventId }),
      });
      return send(topicName(config, base), record);
    },
  };
}

function wrapDeliveryError(topic: string, err: unknown): TransientError {
  return new TransientError(`produce to ${topic} was not acknowledged: ${messageOf(err)}`, { cause: err });
}

/** Publisher over an existing connected producer. */
export function publisherOf(producer: Producer, config: Config): Publisher {
  const send = async (topic: string, record: OutgoingRecord): Promise<Delivery> => {
    try {
      const [meta] = await producer.send({
        topic,
        messages: [{ key: record.key, value: record.value, headers: record.headers }],
      });
      if (meta === undefined) throw new Error("no delivery report");
      return { topic, partition: meta.partition, offset: meta.baseOffset ?? meta.offset ?? "-1" };
    } catch (err) {
      throw wrapDeliveryError(topic, err);
    }
  };
  return { ...sinkOf(config, send), disconnect: () => producer.disconnect() };
}

/** Connects an idempotent producer and wraps it as a Publisher. */
export async function createPublisher(kafka: Kafka, config: Config): Promise<Publisher> {
  const producer = createProducer(kafka, config);
  await producer.connect();
  return publisherOf(producer, config);
}
