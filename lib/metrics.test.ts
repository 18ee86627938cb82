import { describe, expect, it } from "vitest";
import { createMetrics } from "./metrics.ts";

describe("metrics", () => {
  it("reports each tracked consumer's lag per partition at scrape time, and forgets partitions it lost", async () => {
    const metrics = createMetrics("svc");
    let partitions = [
      { topic: "orders.created", partition: 0, lag: 3 },
      { topic: "orders.created", partition: 1, lag: 0 },
    ];
    metrics.trackLag("orchestrator", { lagByPartition: () => partitions });
    metrics.trackLag("projection", { lagByPartition: () => [{ topic: "orders.failed", partition: 2, lag: 7 }] });
    const text = await metrics.registry.metrics();
    expect(text).toContain('orderflow_consumer_lag{group="orchestrator",topic="orders.created",partition="0",service="svc"} 3');
    expect(text).toContain('orderflow_consumer_lag{group="orchestrator",topic="orders.created",partition="1",service="svc"} 0');
    expect(text).toContain('orderflow_consumer_lag{group="projection",topic="orders.failed",partition="2",service="svc"} 7');
    expect(text).toMatch(/# HELP orderflow_consumer_lag .*measured by the consumer/);
    partitions = [{ topic: "orders.created", partition: 1, lag: 5 }];
    const later = await metrics.registry.metrics();
    expect(later).not.toContain('partition="0"');
    expect(later).toContain('orderflow_consumer_lag{group="orchestrator",topic="orders.created",partition="1",service="svc"} 5');
  });

  it("counts failed attempts by error class and retries by topic", async () => {
    const metrics = createMetrics("svc");
    metrics.handlerErrors.inc({ topic: "t", error_class: "transient" });
    metrics.handlerErrors.inc({ topic: "t", error_class: "transient" });
    metrics.retries.inc({ topic: "t" });
    const text = await metrics.registry.metrics();
    expect(text).toContain('orderflow_handler_errors_total{topic="t",error_class="transient",service="svc"} 2');
    expect(text).toContain('orderflow_retries_total{topic="t",service="svc"} 1');
  });
});
