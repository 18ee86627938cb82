import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";
import { Headers } from "./codec/envelope.ts";
import { createLogger } from "./log.ts";
import { BatchLinks, activeIds, activeTraceHeaders, startTracing, traceProcess, traceRequest, traceSend, type TracedRecord } from "./tracing.ts";

const exporter = new InMemorySpanExporter();
const record = (headers: Record<string, string> = {}): TracedRecord => ({ key: "k", value: Buffer.from("v"), headers: { [Headers.orderId]: "o-1", ...headers } });
const foreign = "00-11111111111111111111111111111111-2222222222222222-01";

beforeAll(async () => {
  await startTracing(loadConfig("test", {}));
  // Export off gives unsampled spans with real ids; these tests record them instead.
  const unsampled = trace.getTracer("t").startSpan("x").spanContext();
  expect(unsampled.traceFlags).toBe(0);
  expect(unsampled.traceId).not.toMatch(/^0+$/);
  trace.disable();
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});
beforeEach(() => exporter.reset());

describe("tracing through Kafka headers", () => {
  it("a produced record carries its send span's context, and its consumer continues that trace", async () => {
    let sent: TracedRecord | undefined;
    await traceRequest("POST /orders", "server", undefined, {}, () =>
      traceSend("orders.created", record(), (r) => {
        sent = r;
        return Promise.resolve();
      }),
    );
    const traceparent = sent?.headers[Headers.traceparent] ?? "";
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

    let inner: { traceId?: string } = {};
    await traceProcess({ topic: "orders.created", partition: 2, offset: "7", group: "orchestrator", headers: sent?.headers, key: Buffer.from("o-1") }, () => {
      inner = activeIds();
      return Promise.resolve();
    });

    const spans = exporter.getFinishedSpans();
    const byName = new Map(spans.map((s) => [s.name, s]));
    const server = byName.get("POST /orders");
    const send = byName.get("send orders.created");
    const processed = byName.get("process orders.created");
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    expect(send?.kind).toBe(SpanKind.PRODUCER);
    expect(send?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
    expect(traceparent.split("-")[2]).toBe(send?.spanContext().spanId);
    expect(processed?.kind).toBe(SpanKind.CONSUMER);
    expect(processed?.parentSpanContext?.spanId).toBe(send?.spanContext().spanId);
    expect(processed?.attributes).toMatchObject({
      "messaging.system": "kafka",
      "messaging.operation.type": "process",
      "messaging.destination.name": "orders.created",
      "messaging.destination.partition.id": "2",
      "messaging.consumer.group.name": "orchestrator",
      "messaging.kafka.offset": 7,
      "orderflow.order_id": "o-1",
    });
    expect(inner.traceId).toBe(processed?.spanContext().traceId);
  });

  it("a record that already carried another trace (a dead letter, a replay) links to it", async () => {
    await traceSend("orders.created.dlq", record({ [Headers.traceparent]: foreign }), () => Promise.resolve());
    const [span] = exporter.getFinishedSpans();
    expect(span?.links.map((l) => l.context.traceId)).toEqual(["11111111111111111111111111111111"]);
  });

  it("marks a failed step with error status and class, and rethrows", async () => {
    await expect(traceSend("t", record(), () => Promise.reject(new TypeError("boom")))).rejects.toThrow("boom");
    const [span] = exporter.getFinishedSpans();
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
    expect(span?.attributes["error.type"]).toBeDefined();
  });

  it("a commit span links every record of its batch and starts a fresh batch after", async () => {
    const links = new BatchLinks();
    links.add({ [Headers.traceparent]: foreign });
    links.add({ [Headers.traceparent]: "00-33333333333333333333333333333333-4444444444444444-01" });
    links.add(undefined);
    await links.commit("commit transaction", {}, () => Promise.resolve());
    await links.commit("commit transaction", {}, () => Promise.resolve());
    const [first, second] = exporter.getFinishedSpans();
    expect(first?.links).toHaveLength(2);
    expect(first?.attributes["messaging.batch.message_count"]).toBe(3);
    expect(second?.links).toHaveLength(0);
  });

  it("stored trace headers let later work (a saga timer) join the same trace", async () => {
    let stored: Record<string, string> = {};
    await traceRequest("first", "internal", undefined, {}, () => {
      stored = activeTraceHeaders();
      return Promise.resolve();
    });
    await traceRequest("saga timer", "internal", stored, {}, () => Promise.resolve());
    const [first, timer] = exporter.getFinishedSpans();
    expect(timer?.spanContext().traceId).toBe(first?.spanContext().traceId);
    expect(activeTraceHeaders()).toEqual({});
  });

  it("log lines written under a span carry its trace and span id", async () => {
    const lines: string[] = [];
    const log = createLogger("test", "info", { write: (line: string) => lines.push(line) });
    await traceRequest("work", "internal", undefined, {}, () => {
      log.info("inside");
      return Promise.resolve();
    });
    log.info("outside");
    const [inside, outside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const [span] = exporter.getFinishedSpans();
    expect(inside).toMatchObject({ traceId: span?.spanContext().traceId, spanId: span?.spanContext().spanId });
    expect(outside?.["traceId"]).toBeUndefined();
  });
});
