import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "./config.ts";
import { Headers } from "./codec/envelope.ts";
import { createLogger } from "./log.ts";
import { BatchLinks, activeIds, activeTraceHeaders, samplerOf, startTracing, stopTracing, traceProcess, traceRequest, traceSend, type TracedRecord } from "./tracing.ts";

const exporter = new InMemorySpanExporter();
const recording = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const record = (headers: Record<string, string> = {}): TracedRecord => ({ key: "k", value: Buffer.from("v"), headers: { [Headers.orderId]: "o-1", ...headers } });
const foreign = "00-11111111111111111111111111111111-2222222222222222-01";
const consumed = (headers?: Record<string, Buffer>) => ({ topic: "orders.created", partition: 2, offset: "7", group: "orchestrator", headers, key: Buffer.from("o-1") });
const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

/** The trace id, parent span id and flags a produced record's traceparent names. */
function parentOf(sent: TracedRecord | undefined): { traceId: string; spanId: string; flags: string } {
  const [, traceId = "", spanId = "", flags = ""] = traceparentPattern.exec(sent?.headers[Headers.traceparent] ?? "") ?? [];
  return { traceId, spanId, flags };
}

/** Sends `r` through traceSend and returns the record as it would have gone to Kafka. */
async function sendAndCapture(r: TracedRecord = record()): Promise<TracedRecord | undefined> {
  let sent: TracedRecord | undefined;
  await traceSend("orders.validated", r, (traced) => {
    sent = traced;
    return Promise.resolve();
  });
  return sent;
}

beforeEach(() => exporter.reset());

describe("export off: trace context travels, no span is built", () => {
  const getTracer = vi.spyOn(recording, "getTracer");

  beforeAll(async () => {
    await startTracing(loadConfig("test", {}));
    // Were anything to ask the API for a span, it would come from this provider and be exported.
    trace.setGlobalTracerProvider(recording);
  });
  afterAll(async () => {
    expect(getTracer).not.toHaveBeenCalled();
    expect(exporter.getFinishedSpans()).toEqual([]);
    trace.disable();
    await stopTracing();
  });

  it("a consumed record's trace goes on: the handler runs under it and produced records continue it from a new span id", async () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const headers = { [Headers.traceparent]: Buffer.from(`00-${traceId}-b7ad6b7169203331-01`), [Headers.tracestate]: Buffer.from("vendor=opaque") };
    let inside: ReturnType<typeof activeIds> = {};
    let recorded: boolean | undefined;
    const sent = await traceProcess(consumed(headers), async (span) => {
      recorded = span.isRecording();
      inside = activeIds();
      // A dead letter or a replay carries its old trace context; the step's replaces it.
      return sendAndCapture(record({ [Headers.traceparent]: foreign, [Headers.tracestate]: "old=1" }));
    });

    expect(recorded).toBe(false);
    expect(inside.traceId).toBe(traceId);
    expect(parentOf(sent)).toEqual({ traceId, spanId: inside.spanId, flags: "01" });
    expect(inside.spanId).not.toBe("b7ad6b7169203331");
    expect(sent?.headers[Headers.tracestate]).toBe("vendor=opaque");
    expect(sent?.headers[Headers.orderId]).toBe("o-1");
    expect(getTracer).not.toHaveBeenCalled();
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it("a record without trace context, or with an invalid one, starts a new trace of its own", async () => {
    const ids: string[] = [];
    const none: Record<string, Buffer> = {};
    for (const headers of [undefined, none, { [Headers.traceparent]: Buffer.from("00-00000000000000000000000000000000-b7ad6b7169203331-01") }]) {
      const sent = await traceProcess(consumed(headers), () => sendAndCapture());
      const { traceId, spanId, flags } = parentOf(sent);
      expect(traceId).toMatch(/^(?!0+$)[0-9a-f]{32}$/);
      expect(spanId).toMatch(/^(?!0+$)[0-9a-f]{16}$/);
      expect(flags).toBe("00");
      ids.push(traceId);
    }
    expect(new Set(ids).size).toBe(3);
  });

  it("a record produced outside any handled record or request starts a new trace", async () => {
    const [first, second] = [await sendAndCapture(record({ [Headers.traceparent]: foreign })), await sendAndCapture()];
    expect(parentOf(first).traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(parentOf(first).traceId).not.toBe("11111111111111111111111111111111");
    expect(parentOf(second).traceId).not.toBe(parentOf(first).traceId);
  });

  it("records handled concurrently each keep their own trace across awaits", async () => {
    const traceIds = ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "cccccccccccccccccccccccccccccccc"];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const handled = traceIds.map((traceId) =>
      traceProcess(consumed({ [Headers.traceparent]: Buffer.from(`00-${traceId}-b7ad6b7169203331-00`) }), async () => {
        await gate;
        return parentOf(await sendAndCapture()).traceId;
      }),
    );
    release();
    expect(await Promise.all(handled)).toEqual(traceIds);
  });

  it("requests continue their headers' trace; stored headers let later work (a saga timer) join it", async () => {
    let stored: Record<string, string> = {};
    const requestTrace = await traceRequest("POST /orders", "server", { [Headers.traceparent]: foreign, "content-type": "application/json" }, {}, () => {
      stored = activeTraceHeaders();
      return Promise.resolve(activeIds().traceId);
    });
    expect(requestTrace).toBe("11111111111111111111111111111111");
    expect(stored[Headers.traceparent]).toMatch(/^00-11111111111111111111111111111111-[0-9a-f]{16}-01$/);

    const timer = await traceRequest("saga timer", "internal", stored, {}, () => sendAndCapture());
    expect(parentOf(timer).traceId).toBe("11111111111111111111111111111111");
    expect(parentOf(timer).spanId).not.toBe(stored[Headers.traceparent]?.split("-")[2]);

    const nested = await traceRequest("outer", "internal", undefined, {}, async () => {
      const outer = activeIds().traceId;
      return [outer, await traceRequest("inner", "internal", undefined, {}, () => Promise.resolve(activeIds().traceId))];
    });
    expect(nested[1]).toBe(nested[0]);
    expect(activeTraceHeaders()).toEqual({});
    expect(activeIds()).toEqual({});
  });

  it("log lines written while a record is handled carry its trace and span id", async () => {
    const lines: string[] = [];
    const log = createLogger("test", "info", { write: (line: string) => lines.push(line) });
    const ids = await traceProcess(consumed({ [Headers.traceparent]: Buffer.from(foreign) }), async () => {
      await Promise.resolve();
      log.info("inside");
      return activeIds();
    });
    log.info("outside");
    const [inside, outside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(inside).toMatchObject({ traceId: "11111111111111111111111111111111", spanId: ids.spanId });
    expect(outside?.["traceId"]).toBeUndefined();
  });

  it("a failing step's error comes back as a rejection, and a commit just runs", async () => {
    await expect(traceProcess(consumed(), () => Promise.reject(new TypeError("boom")))).rejects.toThrow("boom");
    await expect(
      traceRequest("sync", "internal", undefined, {}, () => {
        throw new TypeError("thrown at once");
      }),
    ).rejects.toThrow("thrown at once");
    const links = new BatchLinks();
    links.add({ [Headers.traceparent]: foreign });
    expect(await links.commit("commit transaction", {}, () => Promise.resolve("committed"))).toBe("committed");
  });
});

describe("export on: spans through Kafka headers", () => {
  beforeAll(async () => {
    // The SDK is started as a service starts it; its spans then go to an in-memory exporter instead of OTLP.
    await startTracing(loadConfig("test", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", OTEL_TRACES_SAMPLER: "always_on" }));
    trace.disable();
    trace.setGlobalTracerProvider(recording);
  });
  afterAll(() => stopTracing());

  it("a produced record carries its send span's context, and its consumer continues that trace", async () => {
    let sent: TracedRecord | undefined;
    await traceRequest("POST /orders", "server", undefined, {}, async () => {
      sent = await sendAndCapture();
    });
    const traceparent = sent?.headers[Headers.traceparent] ?? "";
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);

    let inner: { traceId?: string } = {};
    await traceProcess({ ...consumed(), topic: "orders.validated", headers: sent?.headers }, () => {
      inner = activeIds();
      return Promise.resolve();
    });

    const spans = exporter.getFinishedSpans();
    const byName = new Map(spans.map((s) => [s.name, s]));
    const server = byName.get("POST /orders");
    const send = byName.get("send orders.validated");
    const processed = byName.get("process orders.validated");
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).toBe(1);
    expect(send?.kind).toBe(SpanKind.PRODUCER);
    expect(send?.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
    expect(traceparent.split("-")[2]).toBe(send?.spanContext().spanId);
    expect(processed?.kind).toBe(SpanKind.CONSUMER);
    expect(processed?.parentSpanContext?.spanId).toBe(send?.spanContext().spanId);
    expect(processed?.attributes).toMatchObject({
      "messaging.system": "kafka",
      "messaging.operation.type": "process",
      "messaging.destination.name": "orders.validated",
      "messaging.destination.partition.id": "2",
      "messaging.consumer.group.name": "orchestrator",
      "messaging.kafka.offset": 7,
      "orderflow.order_id": "o-1",
    });
    expect(inner.traceId).toBe(processed?.spanContext().traceId);
  });

  it("a record that already carried another trace (a dead letter, a replay) links to it", async () => {
    await sendAndCapture(record({ [Headers.traceparent]: foreign }));
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

describe("samplers", () => {
  it("builds the sampler OTEL_TRACES_SAMPLER names, with OTEL_TRACES_SAMPLER_ARG as the ratio", async () => {
    const samplerFor = async (env: Record<string, string>) => (await samplerOf(loadConfig("test", env).tracing)).toString();
    expect(await samplerFor({})).toMatch(/^ParentBased\{root=TraceIdRatioBased\{0\.1\}/);
    expect(await samplerFor({ OTEL_TRACES_SAMPLER: "always_on" })).toBe("AlwaysOnSampler");
    expect(await samplerFor({ OTEL_TRACES_SAMPLER: "always_off" })).toBe("AlwaysOffSampler");
    expect(await samplerFor({ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.25" })).toBe("TraceIdRatioBased{0.25}");
    expect(await samplerFor({ OTEL_TRACES_SAMPLER: "parentbased_always_on" })).toMatch(/^ParentBased\{root=AlwaysOnSampler,/);
    expect(await samplerFor({ OTEL_TRACES_SAMPLER: "parentbased_always_off" })).toMatch(/^ParentBased\{root=AlwaysOffSampler,/);
    expect(await samplerFor({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.5" })).toMatch(/^ParentBased\{root=TraceIdRatioBased\{0\.5\},/);
  });
});
