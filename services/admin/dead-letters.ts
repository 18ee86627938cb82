/**
 * Dead letters as operators see them and as they are replayed — pure functions over records read
 * from a `<topic>.dlq`: the DeadLetter message from the DLQ headers (lib/kafka/dlq.ts), which
 * records a replay request names, and the record a replay sends back to the origin topic (original
 * key, value and headers, without the dlq-* headers, plus where it came from and who sent it).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { DeadLetterSchema, type DeadLetter } from "../../gen/orderflow/v1/admin_service_pb.ts";
import type { OutgoingRecord } from "../../lib/codec/codec.ts";
import { Headers, flattenHeaders, headerValue } from "../../lib/codec/envelope.ts";
import { DlqHeaders } from "../../lib/kafka/dlq.ts";
import type { ReadRecord } from "../../lib/kafka/read-to-end.ts";
import { InvalidRequestError } from "../order/orders.ts";

/** Headers a replayed record carries. */
export const ReplayHeaders = {
  /** "<dlq topic>/<partition>/<offset>" of the dead letter it was replayed from. */
  from: "replayed-from",
  /** The operator who replayed it. */
  by: "replayed-by",
} as const;

const DLQ_HEADER_PREFIX = "dlq-";

/** A topic's catalog name: the actual name without the installation's prefix. */
export function baseName(topic: string, topicPrefix: string): string {
  return topicPrefix !== "" && topic.startsWith(topicPrefix) ? topic.slice(topicPrefix.length) : topic;
}

/** Where a dead letter sits, by catalog name: "orders.created.dlq/0/42" (replay log, audit target, header). */
export function positionOf(record: Pick<ReadRecord, "topic" | "partition" | "offset">, topicPrefix: string): string {
  return `${baseName(record.topic, topicPrefix)}/${record.partition}/${record.offset}`;
}

const wholeNumber = (value: string | undefined) => (value !== undefined && /^\d+$/.test(value) ? value : "0");

/** The DeadLetter message of a DLQ record; headers that are missing or malformed read as empty or zero. */
export function deadLetterOf(record: ReadRecord, topicPrefix: string): DeadLetter {
  const header = (name: string) => headerValue(record.headers, name);
  const firstSeen = new Date(header(DlqHeaders.firstSeen) ?? "");
  return create(DeadLetterSchema, {
    dlqTopic: baseName(record.topic, topicPrefix),
    partition: record.partition,
    offset: BigInt(record.offset),
    originTopic: baseName(header(DlqHeaders.originTopic) ?? "", topicPrefix),
    originPartition: Number(wholeNumber(header(DlqHeaders.originPartition))),
    originOffset: BigInt(wholeNumber(header(DlqHeaders.originOffset))),
    errorClass: header(DlqHeaders.errorClass) ?? "",
    errorMessage: header(DlqHeaders.errorMessage) ?? "",
    attempts: Number(wholeNumber(header(DlqHeaders.attempts))),
    ...(Number.isNaN(firstSeen.getTime()) ? {} : { firstSeen: timestampFromDate(firstSeen) }),
    key: record.key?.toString("utf8") ?? "",
    eventType: header(Headers.eventType) ?? "",
    sizeBytes: record.value?.length ?? 0,
  });
}

/** The record to send back to the origin topic: original key, value and headers, marked as replayed. */
export function replayRecord(record: ReadRecord, from: string, actor: string): OutgoingRecord {
  const headers = Object.fromEntries(Object.entries(flattenHeaders(record.headers)).filter(([name]) => !name.startsWith(DLQ_HEADER_PREFIX)));
  return {
    key: record.key?.toString("utf8") ?? "",
    value: record.value ?? Buffer.alloc(0),
    headers: { ...headers, [ReplayHeaders.from]: from, [ReplayHeaders.by]: actor },
  };
}

/** What a replay request names: DLQ offsets, an error class, or everything. */
export interface ReplaySelection {
  readonly offsets: readonly bigint[];
  readonly errorClass: string;
  readonly all: boolean;
}

/**
 * The records of one DLQ that a replay request names. Offsets and an error class narrow each
 * other; `all` alone takes everything. Throws InvalidRequestError when the request names nothing
 * or an offset that is in more than one partition of the DLQ (it cannot say which record is meant),
 * and NotFound for an offset the DLQ does not hold.
 */
export function selectForReplay(records: readonly ReadRecord[], selection: ReplaySelection, dlqTopic: string): ReadRecord[] {
  const { offsets, errorClass, all } = selection;
  if (offsets.length === 0 && errorClass === "" && !all) {
    throw new InvalidRequestError([{ field: "offsets", message: "name the offsets to replay, an error_class, or set all" }]);
  }
  let chosen = [...records];
  if (offsets.length > 0) {
    chosen = [];
    for (const offset of new Set(offsets)) {
      const found = records.filter((record) => BigInt(record.offset) === offset);
      if (found.length === 0) throw new ConnectError(`${dlqTopic} holds no record at offset ${offset}`, Code.NotFound);
      if (found.length > 1) {
        const partitions = found.map((record) => record.partition).join(", ");
        throw new InvalidRequestError([{ field: "offsets", message: `offset ${offset} is in partitions ${partitions} of ${dlqTopic}: replay by error_class or all instead` }]);
      }
      chosen.push(...found);
    }
  }
  if (errorClass !== "") chosen = chosen.filter((record) => headerValue(record.headers, DlqHeaders.errorClass) === errorClass);
  return chosen;
}
