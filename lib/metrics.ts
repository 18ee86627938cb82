/**
 * Prometheus metrics every service exposes on its ops port: records consumed by outcome, records
 * produced, handler latency, failed handler attempts by error class, retries, dead letters,
 * consumer lag per partition, and the process transaction's commits (count, records per group,
 * commit latency) and aborts. Services add their own to the same registry (in their own folder).
 * Every name starts with `orderflow_`; `service` is a default label. Labels stay bounded: topics,
 * partitions, groups and error classes — never order or customer ids.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** What the lag gauge reads at each scrape: a consumer's own view of its assigned partitions. */
export interface LagSource {
  lagByPartition(): readonly { readonly topic: string; readonly partition: number; readonly lag: number }[];
}

export interface Metrics {
  readonly registry: Registry;
  readonly consumed: Counter<"topic" | "outcome">;
  readonly produced: Counter<"topic">;
  readonly handlerSeconds: Histogram<"topic">;
  /** Every handler attempt that threw, also those retried afterwards. */
  readonly handlerErrors: Counter<"topic" | "error_class">;
  /** Handler attempts after the first one for the same delivery of a record. */
  readonly retries: Counter<"topic">;
  readonly deadLettered: Counter<"topic" | "error_class">;
  /** Transactions committed by this process (one transactional producer per process). */
  readonly transactionsCommitted: Counter;
  /** Transactions aborted (a failed commit, a redo, an outage, fencing). */
  readonly transactionsAborted: Counter;
  /** Consumed records per committed transaction, per consumer group. */
  readonly transactionRecords: Histogram<"group">;
  /** From the start of a commit (members settling included) until the broker confirmed it. */
  readonly commitSeconds: Histogram;
  /** Reports the lag of `source` (a consumer of `group`) on every scrape, until the process ends. */
  trackLag(group: string, source: LagSource): void;
}

export function createMetrics(service: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const lagSources: [string, LagSource][] = [];
  new Gauge({
    name: "orderflow_consumer_lag",
    help:
      "Records not yet handled per assigned partition, measured by the consumer itself (high watermark from its fetches minus the record in hand or its read position; no broker request). Broker-side committed-offset lag is shown by the dashboard process.",
    labelNames: ["group", "topic", "partition"],
    registers: [registry],
    collect() {
      // Partitions revoked since the last scrape disappear instead of keeping their last value.
      this.reset();
      for (const [group, source] of lagSources) {
        for (const { topic, partition, lag } of source.lagByPartition()) this.set({ group, topic, partition: String(partition) }, lag);
      }
    },
  });
  return {
    registry,
    consumed: new Counter({ name: "orderflow_records_consumed_total", help: "Records consumed, by outcome", labelNames: ["topic", "outcome"], registers: [registry] }),
    produced: new Counter({ name: "orderflow_records_produced_total", help: "Records produced and acknowledged by the broker; outputs of a consumer transaction once it committed", labelNames: ["topic"], registers: [registry] }),
    handlerSeconds: new Histogram({
      name: "orderflow_handler_seconds",
      help: "Time to handle one record, retries included",
      labelNames: ["topic"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    handlerErrors: new Counter({
      name: "orderflow_handler_errors_total",
      help: "Handler attempts that failed, by error class; retried attempts count too",
      labelNames: ["topic", "error_class"],
      registers: [registry],
    }),
    retries: new Counter({
      name: "orderflow_retries_total",
      help: "Handler attempts after the first for the same delivery of a record (in-process retries and tries after an outage)",
      labelNames: ["topic"],
      registers: [registry],
    }),
    deadLettered: new Counter({ name: "orderflow_dead_letters_total", help: "Records sent to a DLQ", labelNames: ["topic", "error_class"], registers: [registry] }),
    transactionsCommitted: new Counter({ name: "orderflow_transactions_committed_total", help: "Kafka transactions this process committed", registers: [registry] }),
    transactionsAborted: new Counter({ name: "orderflow_transactions_aborted_total", help: "Kafka transactions this process aborted", registers: [registry] }),
    transactionRecords: new Histogram({
      name: "orderflow_transaction_records",
      help: "Consumed records per committed transaction, per consumer group",
      labelNames: ["group"],
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000],
      registers: [registry],
    }),
    commitSeconds: new Histogram({
      name: "orderflow_transaction_commit_seconds",
      help: "Time to commit a transaction: its consumers settling, offsets and the commit confirmed by the broker",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    trackLag(group, source) {
      lagSources.push([group, source]);
    },
  };
}
