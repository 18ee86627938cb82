/**
 * The shape every service process has: tracing and config first, then Kafka, Redis and metrics,
 * the service's own consumers, the ops server, and a graceful stop on SIGTERM. A service's main.ts
 * only says what it consumes and how it handles it.
 */
import { topicSpec } from "../infra/topics.ts";
import { loadConfig, type Config } from "./config.ts";
import { pauseCheck, watchPauses } from "./control.ts";
import { errorClassOf, messageOf } from "./errors.ts";
import { createLogger, type Logger } from "./log.ts";
import { createMetrics, type Metrics } from "./metrics.ts";
import { startOpsServer, type HealthCheck, type OpsServer } from "./ops-server.ts";
import { createRedis, keyspace, type Keys, type Redis } from "./redis.ts";
import { stopOnSignals } from "./shutdown.ts";
import { startTracing, stopTracing } from "./tracing.ts";
import { createKafka, topicName, type Kafka } from "./kafka/client.ts";
import { ConsumerRunner, type RecordContext, type RecordHandler } from "./kafka/consumer-runner.ts";
import { createPublisher, type Publisher } from "./kafka/publisher.ts";
import { ProcessTransaction } from "./kafka/transactions.ts";

/**
 * The producers (the envelope's producer header) whose records our consumers trust: every
 * orderflow process validates what it encodes, so its records are not validated again on the next
 * hop. A record written by anything else is validated in full.
 */
export const ownProducers: ReadonlySet<string> = new Set(["order", "orchestrator", "payment", "inventory", "notification", "admin"]);

/** The one transactional producer of a process and its commit cycle, counted in `metrics`. */
export function processTransaction(config: Config, log: Logger, metrics: Metrics): ProcessTransaction {
  return new ProcessTransaction({
    config,
    log,
    transactionalId: `${topicName(config, config.service)}.${config.instanceId}`,
    settings: config.transactions,
    observer: {
      committed(seconds, recordsByGroup) {
        metrics.transactionsCommitted.inc();
        metrics.commitSeconds.observe(seconds);
        for (const [group, records] of recordsByGroup) metrics.transactionRecords.observe({ group }, records);
      },
      aborted: () => metrics.transactionsAborted.inc(),
    },
  });
}

/** What a service gets to build itself. */
export interface Runtime {
  readonly config: Config;
  readonly log: Logger;
  readonly kafka: Kafka;
  readonly publisher: Publisher;
  readonly redis: Redis;
  readonly keys: Keys;
  readonly metrics: Metrics;
  /**
   * Declares a consumer group over catalog topics; started after the build, stopped first. A
   * handler that produces gets a transactional runner (its outputs and offsets commit together);
   * `delivery: "at-least-once"` is for handlers that only write state (projections).
   */
  consume(options: {
    readonly group: string;
    readonly topics: readonly string[];
    readonly handler: RecordHandler;
    readonly delivery?: "transactional" | "at-least-once";
  }): ConsumerRunner;
}

/** What a service adds to the common parts. */
export interface ServiceParts {
  readonly checks?: readonly HealthCheck[];
  /** Starts what is not a consumer (HTTP servers, timers); runs after the consumers started. */
  readonly start?: () => Promise<void>;
  /** Stops it; runs after the consumers drained. */
  readonly stop?: () => Promise<void>;
  /** An operator paused or resumed the service: its timers stop changing state too, not only its consumers. */
  readonly setPaused?: (paused: boolean) => void;
}

/** A running service, for tests that run one in-process. */
export interface RunningService {
  readonly runtime: Runtime;
  readonly ops: OpsServer;
  stop(): Promise<void>;
}

/** Publisher that counts what the broker acknowledged. */
function counted(publisher: Publisher, metrics: Metrics): Publisher {
  return {
    async publish(base, schema, init, options) {
      const delivery = await publisher.publish(base, schema, init, options);
      metrics.produced.inc({ topic: base });
      return delivery;
    },
    async send(topic, record) {
      const delivery = await publisher.send(topic, record);
      metrics.produced.inc({ topic });
      return delivery;
    },
    disconnect: () => publisher.disconnect(),
  };
}

/**
 * The record's context with outputs that count as produced once its transaction commits: a record
 * whose transaction aborts and is redone counts its outputs once, when the redo commits.
 */
function countedOnCommit(context: RecordContext, metrics: Metrics): RecordContext {
  const counted = async <T>(topic: string, sent: Promise<T>): Promise<T> => {
    const result = await sent;
    context.afterCommit(() => Promise.resolve(void metrics.produced.inc({ topic })));
    return result;
  };
  return {
    topic: context.topic,
    partition: context.partition,
    offset: context.offset,
    attempt: context.attempt,
    // Not copied: made when first used (see the consumer runner).
    get log() {
      return context.log;
    },
    afterCommit: (effect) => context.afterCommit(effect),
    out: {
      publish: (base, schema, init, options) => counted(base, context.out.publish(base, schema, init, options)),
      send: (topic, record) => counted(topic, context.out.send(topic, record)),
    },
  };
}

/** Builds and starts a service; resolves once it is consuming and its ops port answers. */
export async function startService(
  name: string,
  build: (runtime: Runtime) => Promise<ServiceParts> | ServiceParts,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<RunningService> {
  const config = loadConfig(name, env);
  await startTracing(config);
  const log = createLogger(name, config.logLevel);
  const kafka = createKafka(config, log);
  const metrics = createMetrics(name);
  const publisher = counted(await createPublisher(kafka, config), metrics);
  const redis = createRedis(config, log);
  const runners: ConsumerRunner[] = [];
  let transaction: ProcessTransaction | undefined;

  const runtime: Runtime = {
    config,
    log,
    kafka,
    publisher,
    redis,
    keys: keyspace(config.redisKeyPrefix),
    metrics,
    consume({ group, topics, handler, delivery = "transactional" }) {
      const groupId = topicName(config, group);
      if (delivery === "transactional") transaction ??= processTransaction(config, log, metrics);
      const runner = new ConsumerRunner({
        config,
        log,
        groupId,
        ...(delivery === "transactional" && transaction !== undefined ? { transaction } : {}),
        subscriptions: topics.map((base) => ({ topic: topicName(config, base), valueTypes: topicSpec(base).valueTypes, trustedProducers: ownProducers })),
        publisher,
        handler: async (record, context) => {
          const end = metrics.handlerSeconds.startTimer({ topic: context.topic });
          if (context.attempt > 1) metrics.retries.inc({ topic: context.topic });
          try {
            await handler(record, delivery === "transactional" ? countedOnCommit(context, metrics) : context);
          } catch (error) {
            metrics.handlerErrors.inc({ topic: context.topic, error_class: errorClassOf(error) });
            throw error;
          } finally {
            end();
          }
        },
        onOutcome: (outcome, record, error) => {
          metrics.consumed.inc({ topic: record.topic, outcome });
          if (outcome === "dead-lettered") metrics.deadLettered.inc({ topic: record.topic, error_class: errorClassOf(error) });
        },
      });
      metrics.trackLag(groupId, runner);
      runners.push(runner);
      return runner;
    },
  };

  const parts = await build(runtime);
  // An operator's pause (lib/control.ts) holds across restarts: it is known before consuming begins.
  const pauses = runners.length === 0 ? undefined : await watchPauses({ config, redis, log }, name, (paused) => {
    log.warn({ paused }, paused ? "consumption paused by an operator" : "consumption resumed by an operator");
    for (const runner of runners) runner.setPaused(paused);
    parts.setPaused?.(paused);
  });
  for (const runner of runners) await runner.start();
  await parts.start?.();

  const checks: HealthCheck[] = [
    {
      name: "kafka",
      check: () => {
        const states = runners.map((r) => r.health());
        if (states.some((s) => !s.running)) return { status: "error", detail: "a consumer is not running" };
        const stalled = states.filter((s) => s.stall.stalled);
        return stalled.length > 0 ? { status: "degraded", detail: { stalled } } : { status: "ok", detail: { consumers: states.length } };
      },
    },
    {
      name: "redis",
      check: async () => ((await redis.ping()) === "PONG" ? { status: "ok" } : { status: "error", detail: "no PONG" }),
    },
    ...(pauses === undefined ? [] : [pauseCheck(pauses)]),
    ...(parts.checks ?? []),
  ];
  const ops = await startOpsServer({ port: config.opsPort, checks, registry: metrics.registry });
  log.info({ opsPort: ops.port }, "ready");

  return {
    runtime,
    ops,
    async stop() {
      await pauses?.close();
      for (const runner of runners) await runner.stop();
      await transaction?.close();
      await parts.stop?.();
      await publisher.disconnect();
      redis.disconnect();
      await ops.close();
      await stopTracing();
    },
  };
}

/** The entry of a service process: start, stop on SIGTERM/SIGINT, exit 1 if it cannot start. */
export function runService(name: string, build: (runtime: Runtime) => Promise<ServiceParts> | ServiceParts): void {
  startService(name, build).then(
    (service) => {
      stopOnSignals(() => service.stop(), service.runtime.log);
    },
    (err: unknown) => {
      createLogger(name).fatal({ err: messageOf(err) }, "could not start");
      process.exit(1);
    },
  );
}
