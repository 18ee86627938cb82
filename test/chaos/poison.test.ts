/**
 * The generated poison records are poison to the project's own codec: for every consumed topic,
 * decodeRecord (as the consumer runner calls it, with the services' trusted producers) refuses
 * each one, the refusals span every class of poison, ids are unique and readable back from a DLQ
 * copy, and the same seed gives the same records.
 */
import { describe, expect, it } from "vitest";
import { decodeRecord } from "../../lib/codec/codec.ts";
import { PoisonRecordError, errorClassOf } from "../../lib/errors.ts";
import { ownProducers } from "../../lib/service.ts";
import { topicSpec } from "../../infra/topics.ts";
import { POISON_ID_HEADER, consumedTopics, generatePoison, oversizedCount, poisonIdOf } from "./poison.ts";

const PER_TOPIC = 400;

describe("generated poison records", () => {
  const byTopic = new Map(consumedTopics.map((base) => [base, generatePoison(base, PER_TOPIC, 42)]));

  it("are each refused by the codec of the topic's consumers", () => {
    const classes = new Set<string>();
    const kinds = new Set<string>();
    for (const [base, records] of byTopic) {
      expect(records).toHaveLength(PER_TOPIC);
      for (const record of records) {
        let refusal: unknown;
        try {
          decodeRecord(record, topicSpec(base).valueTypes, ownProducers);
        } catch (err) {
          refusal = err;
        }
        expect(refusal, `${record.id} decoded on ${base}`).toBeInstanceOf(PoisonRecordError);
        classes.add(errorClassOf(refusal));
        kinds.add(record.kind);
      }
    }
    expect([...kinds].sort()).toEqual(["bad-json", "corrupted", "garbled-header", "invalid-field", "missing-header", "null-value", "oversized", "random-bytes", "truncated", "wrong-type"]);
    expect([...classes].sort()).toEqual(
      ["poison.invalid", "poison.malformed", "poison.missing-header", "poison.too-large", "poison.unexpected-type", "poison.unknown-type", "poison.unsupported-content-type"].sort(),
    );
  });

  it("break the rules of many different fields when they are of the right type", () => {
    const records = byTopic.get("orders.created") ?? [];
    const invalidFields = new Set<string>();
    for (const record of records.filter((r) => r.kind === "invalid-field")) {
      try {
        decodeRecord(record, topicSpec("orders.created").valueTypes);
      } catch (err) {
        if (errorClassOf(err) === "poison.invalid") for (const match of String((err as Error).message).matchAll(/(?:^|; |: )([a-z_.[\]0-9]+): /g)) invalidFields.add(match[1] ?? "");
      }
    }
    // OrderCreated's ids, email, lines (product, quantity, price), total, payment and timestamps.
    expect(invalidFields.size).toBeGreaterThanOrEqual(8);
  });

  it("carry unique ids that a dead-lettered copy gives back, by key or by header when keyless", () => {
    const all = [...byTopic.values()].flat();
    expect(new Set(all.map((r) => r.id)).size).toBe(all.length);
    const keyless = all.filter((r) => r.key === null);
    expect(keyless.length).toBeGreaterThan(0);
    for (const record of all) {
      // The DLQ keeps the original headers; a keyless record comes back with an empty key.
      const copy = { key: record.key === null ? Buffer.alloc(0) : Buffer.from(record.key), headers: record.headers };
      expect(poisonIdOf(copy)).toBe(record.id);
    }
    expect(poisonIdOf({ key: Buffer.from("0190a5c4-order"), headers: {} })).toBeUndefined();
    expect(poisonIdOf({ key: null, headers: { [POISON_ID_HEADER]: "not-ours" } })).toBeUndefined();
  });

  it("are the same for the same seed, different for another, and about one in 500 oversized", () => {
    const again = generatePoison("payments.requested", 50, 42).map((r) => [r.id, r.value?.toString("base64")]);
    expect(generatePoison("payments.requested", 50, 42).map((r) => [r.id, r.value?.toString("base64")])).toEqual(again);
    expect(generatePoison("payments.requested", 50, 43).map((r) => [r.id, r.value?.toString("base64")])).not.toEqual(again);
    expect(oversizedCount(1000)).toBe(2);
    expect(oversizedCount(25)).toBe(1);
    expect((byTopic.get("orders.validated") ?? []).filter((r) => r.kind === "oversized")).toHaveLength(oversizedCount(PER_TOPIC));
  });
});
