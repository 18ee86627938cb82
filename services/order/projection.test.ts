import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { sagaTopics } from "../../infra/topics.ts";
import { sampleOf } from "../../test/harness/samples.ts";
import { changeOf, projectionTopics } from "./projection.ts";

describe("projection rules", () => {
  it.each(projectionTopics.map((topic) => [topic]))("describes %s for the history", (topic) => {
    const schema = sagaTopics.find((t) => t.name === topic)!.valueTypes[0];
    const change = changeOf(topic, create(schema, sampleOf(schema)));
    expect(change.summary.length).toBeGreaterThan(5);
  });

  it("moves the status only for order lifecycle events", () => {
    const schemaOf = (topic: string) => sagaTopics.find((t) => t.name === topic)!.valueTypes[0];
    const status = (topic: string) => changeOf(topic, create(schemaOf(topic), sampleOf(schemaOf(topic)))).status;
    expect(status("orders.created")).toBe(OrderStatus.PENDING);
    expect(status("orders.completed")).toBe(OrderStatus.COMPLETED);
    expect(status("orders.cancelled")).toBe(OrderStatus.CANCELLED);
    expect(status("payments.completed")).toBeUndefined();
    const refunded = changeOf("payments.refunded", create(schemaOf("payments.refunded"), sampleOf(schemaOf("payments.refunded"))));
    expect(refunded.fields).toEqual({ refunded: "1" });
    expect(() => changeOf("orders.audit", {})).toThrow(/does not read/);
  });
});
