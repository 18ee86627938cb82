import { describe, expect, it } from "vitest";
import { file_orderflow_v1_events } from "../gen/orderflow/v1/events_pb.ts";
import { sampleOf } from "../test/harness/samples.ts";
import { DLQ_SUFFIX, catalog, sagaTopics, topicSpec } from "./topics.ts";

describe("topic catalog", () => {
  it("keeps the seed topics", () => {
    const names = catalog.map((t) => t.name);
    for (const seed of ["orders.created", "orders.validated", "payments.requested", "payments.completed", "payments.failed", "inventory.reserved", "inventory.released", "notifications.email", "orders.completed", "orders.failed"]) {
      expect(names).toContain(seed);
    }
  });

  it("gives every saga topic a DLQ and no name twice", () => {
    const names = catalog.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    for (const topic of sagaTopics) expect(names).toContain(`${topic.name}${DLQ_SUFFIX}`);
    expect(topicSpec("orders.created.dlq").kind).toBe("dead-letter");
    expect(() => topicSpec("nope")).toThrow(/not in the catalog/);
  });

  it("places every event and command of the contract on exactly one topic, with a sample", () => {
    const carried = sagaTopics.flatMap((t) => t.valueTypes.map((s) => s.typeName));
    const parts = ["ReservedLine", "Shortage"];
    const defined = file_orderflow_v1_events.messages.filter((m) => !parts.includes(m.name)).map((m) => m.typeName);
    expect(new Set(carried).size).toBe(carried.length);
    expect(carried.sort()).toEqual(defined.sort());
    for (const topic of sagaTopics) for (const schema of topic.valueTypes) expect(() => sampleOf(schema)).not.toThrow();
  });

  it("keys notifications by customer and everything else by order", () => {
    expect(topicSpec("notifications.email").key).toBe("customer_id");
    expect(sagaTopics.filter((t) => t.key !== "order_id").map((t) => t.name)).toEqual(["notifications.email"]);
  });
});
