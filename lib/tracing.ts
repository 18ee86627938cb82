/**
 * Tracing: one order is one trace, from the API request through every Kafka hop. W3C trace context
 * travels in each record's `traceparent`/`tracestate` headers: a produce injects the current
 * context, a consume continues the context the record carries, a transaction commit links to every
 * record it covers. Span names and attributes follow the OpenTelemetry messaging conventions
 * (`send orders.created`, `process orders.created`).
 *
 * Two paths, chosen once by startTracing:
 * - Export on (an OTLP endpoint is configured): the SDK records PRODUCER, CONSUMER, SERVER and commit
 *   spans, kept or dropped by the configured sampler, and exports them over OTLP/HTTP.
 * - Export off: no span is built. Each handled record or request is a "step" — a trace id (carried
 *   on, or new), a new span id and the carried flags and tracestate — held in an AsyncLocalStorage
 *   of its own; records produced under it get a traceparent naming it, log lines its ids. That costs
 *   a header parse, a random span id and a string per record.
 * Telemetry never throws into the business path: an exporter that cannot reach its collector drops
 * spans in the background.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";
import {
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  context,
  defaultTextMapSetter,
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
import { W3CTraceContextPropagator, parseTraceParent } from "@opentelemetry/core";
import type { NodeSDK } from "@opentelemetry/sdk-node";
import type { Sampler } from "@opentelemetry/sdk-trace-base";
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

const w3c = new W3CTraceContextPropagator();

const headerGetter: TextMapGetter<RawHeaders | undefined> = {
  keys: (carrier) => Object.keys(carrier ?? {}),
  get: (carrier, key) => headerValue(carrier, key),
};

let registered = false;
/** The running SDK while spans are recorded and exported; undefined selects the span-free path. */
let sdk: NodeSDK | undefined;

/**
 * Sets up span recording and OTLP export when `config.tracing.endpoint` is set, sampled as
 * `config.tracing.sampler` says; without an endpoint there is nothing to set up (trace context is
 * propagated without spans). Once per process until stopTracing (tests run several services in
 * one): the first call wins.
 */
export async function startTracing(config: Config): Promise<void> {
  if (registered) return;
  registered = true;
  const { endpoint } = config.tracing;
  if (endpoint === undefined) return;
  // Loaded only when exporting: the SDK and its exporter cost start-up time nobody should pay for nothing.
  const [{ NodeSDK }, { OTLPTraceExporter }, { resourceFromAttributes }, { ATTR_SERVICE_NAME }, sampler] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/semantic-conventions"),
    samplerOf(config.tracing),
  ]);
  sdk = new NodeSDK({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.service, "service.instance.id": config.instanceId }),
    autoDetectResources: false,
    traceExporter: new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, "")}/v1/traces` }),
    sampler,
    instrumentations: [],
    contextManager: new AsyncLocalStorageContextManager(),
    textMapPropagator: w3c,
  });
  sdk.start();
}

/**
 * The sampler OTEL_TRACES_SAMPLER names (parsed into `settings.sampler`), with
 * `settings.sampleRatio` as the ratio of the traceidratio ones.
 */
export async function samplerOf(settings: Config["tracing"]): Promise<Sampler> {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } = await import("@opentelemetry/sdk-trace-base");
  switch (settings.sampler) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(settings.sampleRatio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) });
  }
}

/** Flushes and ends span export (at shutdown); a later startTracing starts afresh. */
export async function stopTracing(): Promise<void> {
  const running = sdk;
  sdk = undefined;
  registered = false;
  if (running === undefined) return;
  await running.shutdown().catch(() => undefined);
  // The SDK registered these globals; freed so that a later start can register its own.
  trace.disable();
  context.disable();
  propagation.disable();
}

/**
 * The trace context of the record or request in hand when no span is recorded: what a span would
 * have carried, without the span. `tracestate` is passed on as it came.
 */
interface Step extends SpanContext {
  readonly tracestate?: string;
}

const steps = new AsyncLocalStorage<Step>();

/** Random hex digits, drawn a few kilobytes at a time: an id is then a slice of a string. */
let randomHex = "";
let randomHexUsed = 0;
const invalidIds = { 16: "0".repeat(16), 32: "0".repeat(32) } as const;

/** A random id of `hexDigits` lowercase hex digits, never all zeros (W3C). */
function randomId(hexDigits: 16 | 32): string {
  if (randomHexUsed + hexDigits > randomHex.length) {
    randomHex = randomBytes(4096).toString("hex");
    randomHexUsed = 0;
  }
  const id = randomHex.slice(randomHexUsed, (randomHexUsed += hexDigits));
  return id === invalidIds[hexDigits] ? randomId(hexDigits) : id;
}

/** The trace context `headers` carry, if they carry a valid one. */
function carriedStep(headers: RawHeaders | undefined): Step | undefined {
  const traceparent = headerValue(headers, Headers.traceparent);
  const carried = traceparent === undefined ? null : parseTraceParent(traceparent);
  if (carried === null) return undefined;
  const tracestate = headerValue(headers, Headers.tracestate);
  return tracestate === undefined || tracestate === "" ? carried : { ...carried, tracestate };
}

/** A new step under `parent` (same trace, flags and tracestate, a new span id), or the first of a new trace. */
function stepUnder(parent: Step | undefined): Step {
  const spanId = randomId(16);
  if (parent === undefined) return { traceId: randomId(32), spanId, traceFlags: TraceFlags.NONE };
  const step = { traceId: parent.traceId, spanId, traceFlags: parent.traceFlags };
  return parent.tracestate === undefined ? step : { ...step, tracestate: parent.tracestate };
}

/** The traceparent header naming `step` as the parent. */
function traceparentOf(step: Step): string {
  return `00-${step.traceId}-${step.spanId}-${step.traceFlags & TraceFlags.SAMPLED ? "01" : "00"}`;
}

/** Runs `work` under `step`, as a promise even if `work` throws at once. */
function underStep<T>(step: Step, work: (span: Span) => Promise<T>): Promise<T> {
  try {
    return steps.run(step, () => work(trace.wrapSpanContext(step)));
  } catch (err) {
    return Promise.resolve().then(() => {
      throw err;
    });
  }
}

/** The context a record's headers carry (the root context when they carry none). */
export function contextOf(headers: RawHeaders | undefined): Context {
  return w3c.extract(context.active(), headers, headerGetter);
}

/** The active trace context as W3C headers (empty when there is none), to store beside state. */
export function activeTraceHeaders(): Record<string, string> {
  if (sdk === undefined) {
    const step = steps.getStore();
    if (step === undefined) return {};
    const traceparent = traceparentOf(step);
    return step.tracestate === undefined ? { [Headers.traceparent]: traceparent } : { [Headers.traceparent]: traceparent, [Headers.tracestate]: step.tracestate };
  }
  const carrier: Record<string, string> = {};
  w3c.inject(context.active(), carrier, defaultTextMapSetter);
  return carrier;
}

/** The trace and span id of the active span, for log lines and audit records; empty when none. */
export function activeIds(): { traceId?: string; spanId?: string } {
  if (sdk === undefined) {
    const step = steps.getStore();
    return step === undefined ? {} : { traceId: step.traceId, spanId: step.spanId };
  }
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
 * carried — a dead letter or a replay — becomes a link). Export off: the record's traceparent names
 * the active step (or a new trace, outside any), and `send` runs as it is.
 */
export function traceSend<T>(topic: string, record: TracedRecord, send: (record: TracedRecord) => Promise<T>): Promise<T> {
  if (sdk === undefined) {
    const step = steps.getStore() ?? stepUnder(undefined);
    // What the record carried (a dead letter's or a replay's trace) gives way to the step's.
    const headers: Record<string, string> = { ...record.headers, [Headers.traceparent]: traceparentOf(step) };
    if (step.tracestate !== undefined) headers[Headers.tracestate] = step.tracestate;
    else if (headers[Headers.tracestate] !== undefined) delete headers[Headers.tracestate];
    return send({ ...record, headers });
  }
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
  w3c.inject(spanContext, headers, defaultTextMapSetter);
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
 * Export off: under a step of that trace instead (a new trace when the record carries none), and
 * `work` gets a non-recording span that carries the step's ids.
 */
export function traceProcess<T>(record: ConsumedRecord, work: (span: Span) => Promise<T>): Promise<T> {
  if (sdk === undefined) return underStep(stepUnder(carriedStep(record.headers)), work);
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
    if (sdk === undefined || this.#links.length >= MAX_LINKS) return;
    const carried: SpanContext | undefined = trace.getSpanContext(contextOf(headers));
    if (carried !== undefined) this.#links.push({ context: carried });
  }

  /** Forgets the noted records (their transaction was aborted). */
  clear(): void {
    this.#links = [];
    this.#count = 0;
  }

  /** Runs `work` (the commit) under a span linked to every noted record, and forgets them. Export off: runs `work`. */
  commit<T>(name: string, attributes: Attributes, work: () => Promise<T>): Promise<T> {
    if (sdk === undefined) {
      this.clear();
      return work();
    }
    const span = tracer().startSpan(name, {
      root: true,
      links: this.#links,
      attributes: { ...attributes, [MessagingAttributes.batchCount]: this.#count },
    });
    this.clear();
    return endingWith(span, work);
  }
}

/**
 * Runs `work` under an INTERNAL or SERVER span that continues the trace `headers` carry (if any;
 * else the active one, or a new trace). Export off: under a step of that trace instead.
 */
export function traceRequest<T>(name: string, kind: "server" | "internal", headers: RawHeaders | undefined, attributes: Attributes, work: (span: Span) => Promise<T>): Promise<T> {
  if (sdk === undefined) return underStep(stepUnder(carriedStep(headers) ?? steps.getStore()), work);
  const parent = headers === undefined ? context.active() : contextOf(headers);
  const span = tracer().startSpan(name, { kind: kind === "server" ? SpanKind.SERVER : SpanKind.INTERNAL, attributes }, parent);
  return endingWith(span, () => context.with(trace.setSpan(parent, span), () => work(span)));
}

function optional(name: string, value: string | undefined): Attributes {
  return value === undefined || value === "" ? {} : { [name]: value };
}
