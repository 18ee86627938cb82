/**
 * The bare pipeline the benchmark measures the saga against: the same client, broker, producer and
 * consumer settings and the same transactional consumer runner as the services, with no business
 * logic — each stage decodes a record, encodes it again and relays it to the next topic inside a
 * consume → produce transaction. Stages are given as RELAY_STAGES="from>to,from>to" (actual topic
 * names); the benchmark runs two processes with the saga's four hops between them, as the
 * orchestrator (hops 1 and 3) and payment (hop 2) do.
 */
import { OrderCreatedSchema } from "../../gen/orderflow/v1/events_pb.ts";
import { toBinary } from "@bufbuild/protobuf";
import { envelopeHeaders, newEventId } from "../../lib/codec/envelope.ts";
import { ConsumerRunner } from "../../lib/kafka/consumer-runner.ts";
import { processTransaction, runService } from "../../lib/service.ts";

/** The stages of RELAY_STAGES. */
export function parseStages(raw: string): { from: string; to: string }[] {
  return raw.split(",").map((pair) => {
    const [from, to] = pair.split(">").map((s) => s.trim());
    if (from === undefined || to === undefined || from === "" || to === "") throw new Error(`RELAY_STAGES: "${pair}" is not from>to`);
    return { from, to };
  });
}

/** The bench's producers and the relay itself wrote what the relay reads: it is not validated again, as in the services. */
const trustedProducers: ReadonlySet<string> = new Set(["bench", "relay"]);

runService("relay", (runtime) => {
  const { config, log, publisher, metrics } = runtime;
  const transaction = processTransaction(config, log, metrics);
  const runners = parseStages(process.env["RELAY_STAGES"] ?? "").map(
    ({ from, to }) =>
      new ConsumerRunner({
        config,
        log,
        groupId: `relay-${from}`,
        transaction,
        subscriptions: [{ topic: from, valueTypes: [OrderCreatedSchema], trustedProducers }],
        publisher,
        // The record passes on re-encoded with a new envelope; it was validated where it was made,
        // so it is not validated again here (as a service does not validate what it passes on).
        handler: async (record, context) => {
          const { orderId } = record.envelope;
          const headers = envelopeHeaders({ ...record.envelope, eventId: newEventId(), producer: config.service, occurredAt: new Date() });
          await context.out.send(to, { key: orderId, value: Buffer.from(toBinary(record.schema, record.message)), headers });
        },
      }),
  );
  return {
    start: async () => {
      for (const runner of runners) await runner.start();
    },
    stop: async () => {
      for (const runner of runners) await runner.stop();
      await transaction.close();
    },
  };
});
