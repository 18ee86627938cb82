/** The marker probe against the real broker: a transaction's commit marker is told from a record. */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProducer } from "../../../lib/kafka/client.ts";
import { createTopics, openTestKafka, type TestKafka } from "../../../test/harness/kafka.ts";
import { waitFor } from "../../../test/harness/wait.ts";
import { MarkerProbe } from "./markers.ts";

let t: TestKafka;
let probe: MarkerProbe;

beforeAll(async () => {
  t = await openTestKafka("markers");
  await createTopics(t.admin, [t.topic("tx"), t.topic("plain")], 1);
  probe = new MarkerProbe(t.config);
});

afterAll(async () => {
  await probe?.close();
  await t?.close();
});

const high = async (topic: string) => Number((await t.admin.fetchTopicOffsets(topic))[0]?.high ?? -1);

describe("marker probe", () => {
  it("counts the gap after a transaction's last record as markers only, and gaps holding records as lag", async () => {
    const tx = createProducer(t.kafka, t.config, { "transactional.id": `markers-${randomUUID()}` });
    await tx.connect();
    await tx.transaction();
    await tx.send({ topic: t.topic("tx"), messages: [{ value: "a" }, { value: "b" }, { value: "c" }] });
    await tx.commit();
    await tx.disconnect();
    const plain = createProducer(t.kafka, t.config);
    await plain.connect();
    await plain.send({ topic: t.topic("plain"), messages: [{ value: "x" }] });
    await plain.disconnect();
    // Records at 0..2, the commit marker at 3 (written just after the commit returns).
    const txHigh = await waitFor(async () => (await high(t.topic("tx"))) === 4 && 4, { what: "the commit marker" });
    const afterMarker = { topic: t.topic("tx"), partition: 0, from: 3, high: txHigh };
    const lastRecord = { topic: t.topic("tx"), partition: 0, from: 2, high: txHigh };
    const plainRecord = { topic: t.topic("plain"), partition: 0, from: 0, high: await high(t.topic("plain")) };
    const markersOnly = await probe.onlyMarkers([afterMarker, lastRecord, plainRecord]);
    expect([...markersOnly]).toEqual([afterMarker]);
    // Asked again (answered from the cache this time), the answer is the same.
    expect([...(await probe.onlyMarkers([afterMarker, plainRecord]))]).toEqual([afterMarker]);
  });
});
