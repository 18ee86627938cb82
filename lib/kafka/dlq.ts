/**
 * Dead-lettering: a record that cannot be handled goes to `<topic>.dlq` with its original key,
 * value and headers, plus headers that say where it came from and why it is there.
 */
import { errorClassOf, messageOf } from "../errors.ts";
import { flattenHeaders, type RawHeaders } from "../codec/envelope.ts";
import type { Sink } from "./publisher.ts";

/** Headers added to a dead-lettered record. */
export const DlqHeaders = {
  originTopic: "dlq-origin-topic",
  originPartition: "dlq-origin-partition",
  originOffset: "dlq-origin-offset",
  errorClass: "dlq-error-class",
  errorMessage: "dlq-error-message",
  attempts: "dlq-attempts",
  firstSeen: "dlq-first-seen",
  service: "dlq-service",
} as const;

const MAX_ERROR_MESSAGE = 1000;

/** The record as it was consumed. */
export interface FailedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: RawHeaders;
}

export interface Failure {
  readonly error: unknown;
  readonly attempts: number;
  readonly firstSeen: Date;
  readonly service: string;
}

/** The DLQ name of a topic. */
export function dlqTopicOf(topic: string): string {
  return `${topic}.dlq`;
}

/** The DLQ headers of a failure, over the record's own headers. */
export function deadLetterHeaders(record: FailedRecord, failure: Failure): Record<string, string> {
  return {
    ...flattenHeaders(record.headers),
    [DlqHeaders.originTopic]: record.topic,
    [DlqHeaders.originPartition]: String(record.partition),
    [DlqHeaders.originOffset]: record.offset,
    [DlqHeaders.errorClass]: errorClassOf(failure.error),
    [DlqHeaders.errorMessage]: messageOf(failure.error).slice(0, MAX_ERROR_MESSAGE),
    [DlqHeaders.attempts]: String(failure.attempts),
    [DlqHeaders.firstSeen]: failure.firstSeen.toISOString(),
    [DlqHeaders.service]: failure.service,
  };
}

/** Produces the record to its DLQ through `sink`; rejects if the DLQ cannot take it. */
export function deadLetter(sink: Sink, record: FailedRecord, failure: Failure): Promise<unknown> {
  return sink.send(dlqTopicOf(record.topic), {
    key: record.key?.toString("utf8") ?? "",
    value: record.value ?? Buffer.alloc(0),
    headers: deadLetterHeaders(record, failure),
  });
}
