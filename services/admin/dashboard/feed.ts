/**
 * The dashboard's live state, kept apart from HTTP: a consumer group ("admin-dashboard") over the
 * order outcome topics feeding the rolling counters and latencies, a timer that every refresh
 * interval reads consumer lag and DLQ sizes from the broker and each service's readiness, and reads
 * of the order read model and saga store for the latest orders and an order's timeline.
 *
 * A refresh that fails keeps the section's last value and marks it stale; nothing thrown in the
 * timer escapes it. Broker requests go one at a time over an admin client of that round alone, and
 * only while a broker accepts connections (broker.ts); lag leaves out transaction markers (markers.ts).
 */
import { messageOf } from "../../../lib/errors.ts";
import type { Runtime } from "../../../lib/service.ts";
import { OrderProjection } from "../../order/projection.ts";
import { SagaStore } from "../../orchestrator/store.ts";
import { BrokerView, brokerReachable, DASHBOARD_GROUP, openRoundAdmin, watchedGroups, type DlqCount, type PartitionLag, type RoundAdmin } from "./broker.ts";
import { MarkerProbe } from "./markers.ts";
import { breakerOf, probe, type BreakerState, type ServiceHealth, type WatchedService } from "./health.ts";
import { buildSnapshot, latestOrderOf, timelineOf, type LatestOrder, type Snapshot, type StaleSection, type Timeline } from "./snapshot.ts";
import { OrderStats, outcomeTopics } from "./stats.ts";

export interface FeedOptions {
  readonly runtime: Runtime;
  readonly services: readonly WatchedService[];
  /** How often lag, DLQ sizes and readiness are read again. */
  readonly refreshMs: number;
  /** How long one readiness probe may take before its service counts as down. */
  readonly healthTimeoutMs: number;
  /** Rows of the latest-orders table. */
  readonly latestCount?: number;
  /** Accepted, unfinished orders remembered for latency; the oldest are forgotten beyond it. */
  readonly pendingLimit?: number;
}

/** Live figures for the dashboard; declare it while the runtime is being built (it adds a consumer). */
export class Feed {
  readonly #runtime: Runtime;
  readonly #options: FeedOptions;
  readonly #stats: OrderStats;
  readonly #projection: OrderProjection;
  readonly #sagas: SagaStore;
  readonly #markers: MarkerProbe;
  readonly #stale = new Set<StaleSection>();
  #lag: PartitionLag[] = [];
  #dlq: DlqCount[] = [];
  #services: ServiceHealth[];
  #breaker: BreakerState = "unknown";
  #latest: LatestOrder[] = [];
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: FeedOptions) {
    const { runtime } = options;
    this.#runtime = runtime;
    this.#options = options;
    this.#stats = new OrderStats(Date.now(), options.pendingLimit);
    this.#projection = new OrderProjection(runtime.redis, runtime.keys);
    this.#sagas = new SagaStore(runtime.redis, runtime.keys, runtime.config.redisLifetimes.dedupMs);
    this.#markers = new MarkerProbe(runtime.config);
    this.#services = options.services.map(({ name }) => ({ name, status: "down", detail: "not probed yet" }));
    const prefix = runtime.config.topicPrefix;
    runtime.consume({
      group: DASHBOARD_GROUP,
      topics: Object.keys(outcomeTopics),
      delivery: "at-least-once",
      handler: (record, context) => {
        this.#stats.observe(context.topic.slice(prefix.length), record, Date.now());
        return Promise.resolve();
      },
    });
  }

  /** Starts refreshing; the first refresh is done when it resolves. */
  async start(): Promise<void> {
    this.#refreshing = this.#refresh();
    await this.#refreshing;
    this.#schedule();
  }

  /** Stops the timer, lets a refresh in progress finish, and disconnects the marker probe. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#refreshing;
    await this.#markers.close();
  }

  /** The figures as of now; reads the latest orders afresh (the last good ones if Redis fails). */
  async snapshot(): Promise<Snapshot> {
    await this.#section("latestOrders", async () => {
      const ids = await this.#projection.ids(undefined, 0, this.#options.latestCount ?? 20);
      const views = await Promise.all(ids.map((id) => this.#projection.view(id)));
      this.#latest = views.filter((view) => view !== undefined).map(latestOrderOf);
    });
    return buildSnapshot({
      nowMs: Date.now(),
      stats: this.#stats,
      groups: watchedGroups,
      lag: this.#lag,
      dlq: this.#dlq,
      services: this.#services,
      breaker: this.#breaker,
      latestOrders: this.#latest,
      stale: this.#stale,
    });
  }

  /** An order's timeline, or undefined when the read model does not know the order. */
  async timeline(orderId: string): Promise<Timeline | undefined> {
    const view = await this.#projection.view(orderId);
    if (view === undefined) return undefined;
    const [history, { saga }] = await Promise.all([this.#projection.history(orderId), this.#sagas.load(orderId)]);
    return timelineOf(view, history, saga?.state);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#refreshing = this.#refresh().finally(() => this.#schedule());
    }, this.#options.refreshMs);
  }

  /** One round: lag, then DLQ sizes (one admin request at a time), then readiness. Never rejects. */
  async #refresh(): Promise<void> {
    await this.#brokerRound();
    await this.#section("services", async () => {
      const probes = await Promise.all(this.#options.services.map((service) => probe(service, this.#options.healthTimeoutMs)));
      this.#services = probes.map((p) => p.health);
      const payment = probes.find((p) => p.health.name === "payment");
      this.#breaker = payment === undefined ? "unknown" : breakerOf(payment.body);
    });
  }

  /**
   * Lag and DLQ sizes over an admin client opened for this round and closed at its end; none is
   * opened while no bootstrap broker accepts a connection (both sections then go stale).
   */
  async #brokerRound(): Promise<void> {
    const { config, kafka, log } = this.#runtime;
    let reachable: Promise<boolean> | undefined;
    let opened: Promise<RoundAdmin> | undefined;
    const open = async () => {
      if (!(await (reachable ??= brokerReachable(config.kafka.brokers, this.#options.healthTimeoutMs)))) throw new Error("no bootstrap broker accepts connections");
      return new BrokerView((await (opened ??= openRoundAdmin(kafka, config))).admin, config.topicPrefix, this.#markers);
    };
    await this.#section("lag", async () => {
      this.#lag = await (await open()).lag();
    });
    await this.#section("dlq", async () => {
      this.#dlq = await (await open()).dlq();
    });
    await opened?.then(
      (round) => round.close().catch((err: unknown) => log.warn({ err: messageOf(err) }, "dashboard admin client did not disconnect cleanly")),
      () => undefined,
    );
  }

  /** Runs one section's refresh; a failure keeps its last value, marks it stale and is logged once. */
  async #section(section: StaleSection, refresh: () => Promise<void>): Promise<void> {
    try {
      await refresh();
      if (this.#stale.delete(section)) this.#runtime.log.info({ section }, "dashboard figures fresh again");
    } catch (err) {
      if (!this.#stale.has(section)) this.#runtime.log.warn({ section, err: messageOf(err) }, "dashboard figures could not be refreshed; showing the last ones");
      this.#stale.add(section);
    }
  }
}
