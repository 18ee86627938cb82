/**
 * `orderflow dlq list|replay` — the dead-letter topics through the AdminService: what is parked
 * there and why, and sending records back to their origin topic (audited with the actor's name).
 */
import { userInfo } from "node:os";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Command } from "commander";
import { DLQ_SUFFIX } from "../../infra/topics.ts";
import { ListDeadLettersResponseSchema, ReplayDeadLettersResponseSchema, type DeadLetter } from "../../gen/orderflow/v1/admin_service_pb.ts";
import { callAdmin } from "./admin-client.ts";
import { output, UsageError, wholeNumberOption, type ContextFactory } from "./context.ts";

/** The actor recorded on replays when --actor is not given: the OS user. */
export function defaultActor(): string {
  return userInfo().username;
}

/** An origin topic; a DLQ name given by mistake is read as its origin. */
const originOf = (topic: string) => (topic.endsWith(DLQ_SUFFIX) ? topic.slice(0, -DLQ_SUFFIX.length) : topic);

function deadLetterLines(records: readonly DeadLetter[]): string[] {
  return records.flatMap((d) => [
    `${d.dlqTopic} ${d.partition}@${d.offset}  ${d.errorClass || "?"}  attempts=${d.attempts}  ${d.eventType || "(unknown type)"}  key=${d.key || "-"}  from ${d.originTopic} ${d.originPartition}@${d.originOffset}${d.firstSeen ? `  first seen ${timestampDate(d.firstSeen).toISOString()}` : ""}`,
    `    ${d.errorMessage}`,
  ]);
}

function parseOffset(value: string, previous: readonly bigint[] = []): bigint[] {
  if (!/^\d{1,19}$/.test(value)) throw new UsageError(`--offset must be a whole number >= 0, got ${JSON.stringify(value)}`);
  return [...previous, BigInt(value)];
}

export function dlqCommand(context: ContextFactory): Command {
  const dlq = new Command("dlq").description("dead-letter topics, through the admin service (ADMIN_URL, ADMIN_TOKEN)");

  dlq
    .command("list [topic]")
    .description("dead letters of one origin topic (for example orders.created), or of all")
    .option("--limit <n>", "at most this many records", wholeNumberOption("--limit", 1), 100)
    .action(async (topic: string | undefined, options: { limit: number }) => {
      const ctx = context();
      const response = await callAdmin(ctx.settings, (client) => client.listDeadLetters({ topic: topic === undefined ? "" : originOf(topic), limit: options.limit }));
      const records = response.deadLetters;
      output(ctx, toJson(ListDeadLettersResponseSchema, response, { useProtoFieldName: true, alwaysEmitImplicit: true }), [
        ...deadLetterLines(records),
        records.length === 0 ? "no dead letters" : `${records.length} dead letter(s)${records.length === options.limit ? ` (limit ${options.limit}; --limit shows more)` : ""}`,
      ]);
    });

  dlq
    .command("replay <topic>")
    .description("send dead letters of an origin topic back to it: chosen offsets of its DLQ, or --all (optionally only one --error-class)")
    .option("--offset <n>", "a DLQ offset to replay, repeatable", parseOffset, [])
    .option("--error-class <class>", "only records dead-lettered with this error class")
    .option("--all", "every record of the DLQ (with --error-class: every record of that class)")
    .option("--actor <name>", "who is replaying, recorded on orders.audit (default: the OS user)")
    .addHelpText("after", "\nExamples:\n  orderflow dlq replay orders.created --offset 3 --offset 4\n  orderflow dlq replay payments.requested --all --error-class transient")
    .action(async (topic: string, options: { offset: bigint[]; errorClass?: string; all?: boolean; actor?: string }) => {
      if (options.offset.length === 0 && !options.all) throw new UsageError("say which records to replay: --offset N (repeatable) or --all");
      if (options.offset.length > 0 && options.all) throw new UsageError("give --offset or --all, not both");
      const ctx = context();
      const origin = originOf(topic);
      const response = await callAdmin(ctx.settings, (client) =>
        client.replayDeadLetters({ topic: origin, offsets: options.offset, errorClass: options.errorClass ?? "", all: Boolean(options.all), actor: options.actor ?? defaultActor() }),
      );
      output(ctx, toJson(ReplayDeadLettersResponseSchema, response, { useProtoFieldName: true, alwaysEmitImplicit: true }), [
        `replayed ${response.replayed} record(s) from ${origin}${DLQ_SUFFIX} to ${origin}`,
        ...deadLetterLines(response.records),
      ]);
    });

  return dlq;
}
