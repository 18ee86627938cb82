/**
 * Tracing: one order is one trace, from the API request through every Kafka hop. W3C trace context
 * travels in each record's `traceparent`/`tracestate` headers: a produce injects the current
 * context (under a PRODUCER span), a consume extracts it and handles the record under a CONSUMER
 * span, a transaction commit links to every record it covers. Span names and attributes follow the
 * OpenTelemetry messaging conventions (`send orders.created`, `process orders.created`).
 *
 * Trace context is always made and propagated (so records carry it and logs carry trace ids);
 * spans are recorded and exported over OTLP/HTTP only when an endpoint is configured — otherwise
 * they are never sampled, which costs little more than their ids. Telemetry never throws into the business path: an exporter that cannot reach its
 * collector drops spans in the background.
 */
import {
  SpanKind,
  SpanStatusCode,
  context,
  isSpanContextValid,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type TextMapGetter,
} from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { NodeSDK } from "@opentelemetry/sdk-node";
import type { Config } from "./config.ts";
import { errorClassOf } from "./errors.ts";
import { Headers, headerValue, type RawHeaders } from "./codec/envelope.ts";

/** Attribute names of the messaging conventions (semantic-conventions keeps them in its incubating set). */
export const MessagingAttributes = {
  system: "messaging.system",
  operationType: "messaging.operation.type",
  operationName: "messaging.operation.name",
  destination: "messaging.destination.name",
  partition: "messaging.destination.partition.id",
  consumerGroup: "messaging.consumer.group.name",
  messageId: "messaging.message.id",
  bodySize: "messaging.message.body.size",
  key: "messaging.kafka.message.key",
  offset: "messaging.kafka.offset",
  batchCount: "messaging.batch.message_count",
  errorType: "error.type",
} as const;

/** orderflow's own attributes. */
export const OrderflowAttributes = {
  orderId: "orderflow.order_id",
  eventType: "orderflow.event_type",
  attempt: "orderflow.attempt",
  outcome: "orderflow.outcome",
  dlqTopic: "orderflow.dlq.topic",
} as const;

/** Links a commit span keeps at most (one per record it covers). */
const MAX_LINKS = 128;

const tracer = () => trace.getTracer("orderflow");

const headerGetter: TextMapGetter<RawHeaders | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get: (carrier, key) => headerValue(carrier, key),
};

let registered = false;
let sdk: NodeSDK | undefined;

/**
 * Sets up context propagation (always) and, when `config.tracing.endpoint` is set, the SDK that
 * exports this process's spans under `config.service`. Once per process (tests run several services
 * in one): the first call wins.
 */
export async function startTracing(config: Config): Promise<void> {
  if (registered) return;
  registered = true;
  const { endpoint, sampleRatio } = config.tracing;
  if (endpoint === undefined) {
    // Spans are never recorded, but still get real ids: records carry trace context and log
    // lines trace and span ids, so one order's lines can be found across services without export.
    const { AlwaysOffSampler, BasicTracerProvider } = await import("@opentelemetry/sdk-trace-base");
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(new BasicTracerProvider({ sampler: new AlwaysOffSampler() }));
    return;
  }
  // Loaded only when exporting: the SDK and its exporter cost start-up time nobody should pay for nothing.
  const [{ NodeSDK }, { OTLPTraceExporter }, { resourceFromAttributes }, sampling, { ATTR_SERVICE_NAME }] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/semantic-conventions"),
  ]);
  sdk = new NodeSDK({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.service, "service.instance.id": config.instanceId }),
    autoDetectResources: false,
    traceExporter: new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, "")}/v1/traces` }),
    sampler: new sampling.ParentBasedSampler({ root: new sampling.TraceIdRatioBasedSampler(sampleRatio) }),
    instrumentations: [],
    contextManager: new AsyncLocalStorageContextManager(),
    textMapPropagator: new W3CTraceContextPropagator(),
  });
  sdk.start();
}

/** Flushes and ends span export (at shutdown). */
export async function stopTracing(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  await running?.shutdown().catch(() => undefined);
}

/** The context a record's headers carry (the root context when they carry none). */
export function contextOf(headers: RawHeaders | undefined): Context {
  return propagation.extract(context.active(), headers, headerGetter);
}

/** The active trace context as W3C headers (empty when there is none), to store beside state. */
export function activeTraceHeaders(): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier;
}

/** The trace and span id of the active span, for log lines and audit records; empty when none. */
export function activeIds(): { traceId?: string; spanId?: string } {
  const span = trace.getActiveSpan()?.spanContext();
  if (span === undefined || !isSpanContextValid(span)) return {};
  return { traceId: span.traceId, spanId: span.spanId };
}

/** Ends `span` with the outcome of `work`: an error sets the status and error.type. */
async function endingWith<T>(span: Span, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR });
    span.setAttribute(MessagingAttributes.errorType, errorClassOf(err));
    throw err;
  } finally {
    span.end();
  }
}

/** A record about to be produced. */
export interface TracedRecord {
  readonly key: string;
  readonly value: Buffer;
  readonly headers: Record<string, string>;
}

/**
 * Produces `record` under a PRODUCER span (`send <topic>`) that is a child of the active context,
 * with that span's context injected into the record's headers (a trace context the record already
 * carried — a dead letter or a replay — becomes a link).
 */
export function traceSend<T>(topic: string, record: TracedRecord, send: (record: TracedRecord) => Promise<T>): Promise<T> {
  const carried = trace.getSpanContext(contextOf(record.headers));
  const active = trace.getSpanContext(context.active());
  const links: Link[] = carried !== undefined && carried.traceId !== active?.traceId ? [{ context: carried }] : [];
  const span = tracer().startSpan(`send ${topic}`, {
    kind: SpanKind.PRODUCER,
    links,
    attributes: {
      [MessagingAttributes.system]: "kafka",
      [MessagingAttributes.operationType]: "send",
      [MessagingAttributes.operationName]: "send",
      [MessagingAttributes.destination]: topic,
      [MessagingAttributes.key]: record.key,
      [MessagingAttributes.bodySize]: record.value.length,
      ...optional(MessagingAttributes.messageId, record.headers[Headers.eventId]),
      ...optional(OrderflowAttributes.orderId, record.headers[Headers.orderId]),
      ...optional(OrderflowAttributes.eventType, record.headers[Headers.eventType]),
    },
  });
  const headers = { ...record.headers };
  delete headers[Headers.traceparent];
  delete headers[Headers.tracestate];
  const spanContext = trace.setSpan(context.active(), span);
  propagation.inject(spanContext, headers);
  return endingWith(span, () => context.with(spanContext, () => send({ ...record, headers })));
}

/** Where a consumed record came from. */
export interface ConsumedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly group: string;
  readonly headers?: RawHeaders;
  readonly key: Buffer | null;
}

/**
 * Handles a consumed record under a CONSUMER span (`process <topic>`) whose parent is the context
 * the record carries, so the handler's logs, Redis work and produced records join the record's trace.
 */
export function traceProcess<T>(record: ConsumedRecord, work: (span: Span) => Promise<T>): Promise<T> {
  const parent = contextOf(record.headers);
  const span = tracer().startSpan(
    `process ${record.topic}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        [MessagingAttributes.system]: "kafka",
        [MessagingAttributes.operationType]: "process",
        [MessagingAttributes.operationName]: "process",
        [MessagingAttributes.destination]: record.topic,
        [MessagingAttributes.partition]: String(record.partition),
        [MessagingAttributes.consumerGroup]: record.group,
        [MessagingAttributes.offset]: Number(record.offset),
        ...optional(MessagingAttributes.key, record.key?.toString("utf8")),
        ...optional(MessagingAttributes.messageId, headerValue(record.headers, Headers.eventId)),
        ...optional(OrderflowAttributes.orderId, headerValue(record.headers, Headers.orderId)),
        ...optional(OrderflowAttributes.eventType, headerValue(record.headers, Headers.eventType)),
      },
    },
    parent,
  );
  return endingWith(span, () => context.with(trace.setSpan(parent, span), () => work(span)));
}

/** The producer contexts of records a transaction covers, as links for its commit span. */
export class BatchLinks {
  #links: Link[] = [];
  #count = 0;

  /** Notes the trace a consumed record carries. */
  add(headers: RawHeaders | undefined): void {
    this.#count += 1;
    if (this.#links.length >= MAX_LINKS) return;
    const carried: SpanContext | undefined = trace.getSpanContext(contextOf(headers));
    if (carried !== undefined) this.#links.push({ context: carried });
  }

  /** Forgets the noted records (their transaction was aborted). */
  clear(): void {
    this.#links = [];
    this.#count = 0;
  }

  /** Runs `work` (the commit) under a span linked to every noted record, and forgets them. */
  commit<T>(name: string, attributes: Attributes, work: () => Promise<T>): Promise<T> {
    const span = tracer().startSpan(name, {
      root: true,
      links: this.#links,
      attributes: { ...attributes, [MessagingAttributes.batchCount]: this.#count },
    });
    this.clear();
    return endingWith(span, work);
  }
}

/** Runs `work` under an INTERNAL or SERVER span that continues the trace `headers` carry (if any). */
export function traceRequest<T>(name: string, kind: "server" | "internal", headers: RawHeaders | undefined, attributes: Attributes, work: (span: Span) => Promise<T>): Promise<T> {
  const parent = headers === undefined ? context.active() : contextOf(headers);
  const span = tracer().startSpan(name, { kind: kind === "server" ? SpanKind.SERVER : SpanKind.INTERNAL, attributes }, parent);
  return endingWith(span, () => context.with(trace.setSpan(parent, span), () => work(span)));
}

function optional(name: string, value: string | undefined): Attributes {
  return value === undefined || value === "" ? {} : { [name]: value };
}
