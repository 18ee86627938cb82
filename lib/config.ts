/**
 * Runtime configuration, parsed once at start into a typed object: defaults, then environment
 * overrides, then a block nobody may override (the settings our delivery guarantees rest on).
 * Nothing else in orderflow reads process.env.
 */
import { DLQ_MAX_MESSAGE_BYTES } from "../infra/topics.ts";
import type { Encoding } from "./codec/codec.ts";
import { DEFAULT_DEDUP_LIFETIME_MS, DEFAULT_READ_MODEL_LIFETIME_MS, longestRedeliveryMs } from "./lifetimes.ts";

/** librdkafka properties, by their dotted names. */
export type KafkaProperties = Record<string, string | number | boolean>;

/** Which replication settings the topic catalog applies. */
export type TopicProfile = "local" | "cluster";

export interface Config {
  /** The service or tool this process is, for example "payment"; names logs, client ids and groups. */
  readonly service: string;
  readonly kafka: {
    readonly brokers: string;
    readonly clientId: string;
    /**
     * Properties every Kafka client of the process gets — producers, consumers, the admin client,
     * the tail and read-to-end readers: connection security (security.protocol, sasl.*, ssl.*) and
     * the like, from KAFKA_COMMON_<PROPERTY> (KAFKA_COMMON_SECURITY_PROTOCOL=SASL_SSL → security.protocol).
     */
    readonly common: KafkaProperties;
    /** Extra producer properties; the guarantee block is applied on top. */
    readonly producer: KafkaProperties;
    /** Extra consumer properties; the guarantee block is applied on top. */
    readonly consumer: KafkaProperties;
    /** How long a produce may wait for the broker's ack before it fails. */
    readonly deliveryTimeoutMs: number;
  };
  /** Prepended to every topic name; lets tests and tenants share a cluster. Empty by default. */
  readonly topicPrefix: string;
  readonly redisUrl: string;
  /** A Redis command not answered within this long fails as an outage (a stalled Redis must not hang handlers). */
  readonly redisCommandTimeoutMs: number;
  /** First part of every Redis key we write, so that installations and tests can share a Redis. */
  readonly redisKeyPrefix: string;
  /** How produced values are encoded; consumers read either, by header. */
  readonly encoding: Encoding;
  readonly topicProfile: TopicProfile;
  /** Where downloaded Kafka jars are cached (their tools read topic configs). */
  readonly cacheDir: string;
  readonly logLevel: string;
  /** OpenTelemetry export: spans go over OTLP/HTTP to `endpoint`; none → no spans, no export (propagation stays on). */
  readonly tracing: {
    readonly endpoint?: string;
    /** Which spans are recorded when exporting, by the OpenTelemetry spec's OTEL_TRACES_SAMPLER names. */
    readonly sampler: (typeof traceSamplers)[number];
    /** Share of new traces (roots) kept, 0..1: the traceidratio samplers' ratio; 1 or 0 for the others. */
    readonly sampleRatio: number;
  };
  /** Port of /health and /metrics; 0 picks a free one. */
  readonly opsPort: number;
  /**
   * Which instance of the service this is when several run in one group ("0", "1", …). Names the
   * transactional ids, so it must be stable across restarts and unique among live instances.
   */
  readonly instanceId: string;
  /** The process's one transaction (lib/kafka/transactions.ts). */
  readonly transactions: {
    /** Commit once the transaction has been open this long (as Kafka Streams' commit.interval.ms)... */
    readonly commitIntervalMs: number;
    /** ...or earlier, once it is this old and every consumer is idle (low load, low latency)... */
    readonly idleCommitMs: number;
    /** ...or once it holds this many consumed records. */
    readonly maxRecords: number;
    /** transaction.timeout.ms: the broker aborts a transaction its producer left open longer. */
    readonly timeoutMs: number;
    /** linger.ms of the transactional producer; a commit sends what lingers at once. */
    readonly lingerMs: number;
  };
  readonly consumer: {
    /** In-process attempts for a retriable handler error before the record is dead-lettered. */
    readonly maxAttempts: number;
    readonly retryInitialDelayMs: number;
    readonly retryMaxDelayMs: number;
    /** Records of one consumer handled at the same time, of different keys (one key's stay in order). */
    readonly concurrency: number;
    /** Most records taken from the client in one fetch. */
    readonly fetchMax: number;
    /** How long a fetch waits for a first record before it returns empty. */
    readonly pollMs: number;
    /** No record handled for this long while lag grows → the watchdog reports a stall. */
    readonly stallAfterMs: number;
  };
  /** The order API's Idempotency-Key records (services/order/idempotency.ts). */
  readonly idempotency: {
    /** How long an attempt holds its key before a retry may take it over; longer than kafka.deliveryTimeoutMs. */
    readonly leaseMs: number;
    /** Key of the request fingerprints' HMAC (never logged); unset → a secret made once in Redis. */
    readonly secret?: string;
  };
  /** How long Redis keeps our keys after their last write (lib/lifetimes.ts; ARCHITECTURE.md lists every key). */
  readonly redisLifetimes: {
    /**
     * Records that make a redelivery harmless (saga state once settled, payment outcomes,
     * settled reservations, sent-email markers, the processor's ledger, replayed DLQ positions).
     * Never below the longest redelivery the topic catalog allows.
     */
    readonly dedupMs: number;
    /** The order read model (views, histories, listing indexes): rebuildable, so shorter. */
    readonly readModelMs: number;
  };
}

/** Producer settings the guarantees need: no duplicates from retries, every replica acks. */
export const lockedProducerProperties: KafkaProperties = {
  "enable.idempotence": true,
  acks: "all",
  "max.in.flight.requests.per.connection": 5,
};

/** Consumer settings the guarantees need: only committed transactional data, offsets only by us. */
export const lockedConsumerProperties: KafkaProperties = {
  "isolation.level": "read_committed",
  "enable.auto.commit": true,
  "auto.offset.reset": "earliest",
};

const defaultProducerProperties: KafkaProperties = {
  // Large enough for a dead letter of the largest record a topic takes.
  "message.max.bytes": DLQ_MAX_MESSAGE_BYTES,
  // Short for what waits on its ack (the order API's orders.created); the transactional producer
  // lingers longer (TX_LINGER_MS): its commit sends what lingers at once.
  "linger.ms": 1,
  "batch.num.messages": 10000,
  "compression.type": "lz4",
};

const defaultConsumerProperties: KafkaProperties = {
  "session.timeout.ms": 10000,
  "heartbeat.interval.ms": 2000,
  "max.poll.interval.ms": 300000,
  "fetch.wait.max.ms": 100,
  "auto.commit.interval.ms": 1000,
  "partition.assignment.strategy": "cooperative-sticky",
  // A subscribed topic deleted and created again (orderflow reset of a running system) is seen at
  // the next metadata refresh: every 10 s rather than librdkafka's 5 minutes, a request a client
  // that costs the broker next to nothing.
  "topic.metadata.refresh.interval.ms": 10000,
};

/** Client properties that hold a secret (passwords, private keys, client secrets). */
const secretProperty = /password|secret|key\.pem|private/i;

/** `props` fit to be written into a report or log: properties holding a secret are left out. */
export function withoutSecrets(props: KafkaProperties): KafkaProperties {
  return Object.fromEntries(Object.entries(props).filter(([key]) => !secretProperty.test(key)));
}

/** A configuration value that cannot be used; names the variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** The environment as configuration reads it. */
export type Env = Readonly<Record<string, string | undefined>>;

/** An integer variable >= min, or the fallback when unset; throws ConfigError naming the variable. */
export function integer(env: Env, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name} must be one of ${allowed.join(", ")}, got ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

/**
 * Collects librdkafka overrides from variables named PREFIX + the property in upper snake case:
 * KAFKA_PRODUCER_LINGER_MS=10 → linger.ms=10.
 */
function kafkaOverrides(env: Env, prefix: string): KafkaProperties {
  const props: KafkaProperties = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(prefix) || value === undefined) continue;
    const key = name.slice(prefix.length).toLowerCase().replaceAll("_", ".");
    props[key] = /^-?\d+$/.test(value) ? Number(value) : value;
  }
  return props;
}

function locked(props: KafkaProperties, guarantees: KafkaProperties, kind: string): KafkaProperties {
  for (const [key, value] of Object.entries(guarantees)) {
    if (key in props && props[key] !== value) {
      throw new ConfigError(`${kind} property ${key} is fixed to ${String(value)} and cannot be overridden`);
    }
  }
  return { ...props, ...guarantees };
}

/**
 * Test-only: UNSAFE_DISABLE_DEDUP=1 makes the payment and notification services skip their
 * duplicate checks, so that the invariant checker's negative control can show it catches what
 * follows. It is refused (a ConfigError: the service does not start) unless ORDERFLOW_TEST_RUN=1
 * says that a test suite set it on purpose: a stray setting must not charge customers twice.
 */
export function unsafeDedupOff(env: Env): boolean {
  if (env["UNSAFE_DISABLE_DEDUP"] !== "1") return false;
  if (env["ORDERFLOW_TEST_RUN"] !== "1") {
    throw new ConfigError("UNSAFE_DISABLE_DEDUP=1 is for the test suite's negative control only (it charges and emails twice); refused without ORDERFLOW_TEST_RUN=1");
  }
  return true;
}

/** The values of OTEL_TRACES_SAMPLER we implement (the OpenTelemetry spec's built-in samplers). */
export const traceSamplers = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"] as const;

/**
 * The standard OTEL_EXPORTER_OTLP_ENDPOINT (base URL; /v1/traces is added), OTEL_TRACES_SAMPLER and
 * OTEL_TRACES_SAMPLER_ARG (the ratio of the traceidratio samplers; 1 when unset, as the spec says).
 * With neither sampler variable set, one new trace in ten is kept (parentbased_traceidratio, 0.1):
 * every hop follows the decision its trace's first span took, so kept traces are whole and the cost
 * of spans stays a tenth of the load. TRACING_SAMPLE_RATIO is the deprecated name of the ratio.
 */
function tracingSettings(env: Env): Config["tracing"] {
  const endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"];
  const explicit = env["OTEL_TRACES_SAMPLER"] !== undefined && env["OTEL_TRACES_SAMPLER"] !== "";
  const sampler = oneOf(env, "OTEL_TRACES_SAMPLER", traceSamplers, "parentbased_traceidratio");
  const ratioVariable = env["OTEL_TRACES_SAMPLER_ARG"] === undefined && env["TRACING_SAMPLE_RATIO"] !== undefined ? "TRACING_SAMPLE_RATIO" : "OTEL_TRACES_SAMPLER_ARG";
  const rawRatio = env[ratioVariable] ?? "";
  let sampleRatio = sampler.endsWith("always_on") ? 1 : 0;
  if (sampler.endsWith("traceidratio")) {
    sampleRatio = rawRatio === "" ? (explicit ? 1 : 0.1) : Number(rawRatio);
    if (!(sampleRatio >= 0 && sampleRatio <= 1)) throw new ConfigError(`${ratioVariable} must be a number between 0 and 1, got ${JSON.stringify(rawRatio)}`);
  }
  return endpoint === undefined || endpoint === "" ? { sampler, sampleRatio } : { endpoint, sampler, sampleRatio };
}

/** Reads the configuration of `service` from the environment. Throws ConfigError on a bad value. */
export function loadConfig(service: string, env: Env = process.env): Config {
  return {
    service,
    kafka: {
      brokers: env["KAFKA_BROKERS"] ?? "127.0.0.1:9092",
      clientId: env["KAFKA_CLIENT_ID"] ?? `orderflow-${service}`,
      common: kafkaOverrides(env, "KAFKA_COMMON_"),
      producer: locked(
        { ...defaultProducerProperties, ...kafkaOverrides(env, "KAFKA_COMMON_"), ...kafkaOverrides(env, "KAFKA_PRODUCER_") },
        lockedProducerProperties,
        "producer",
      ),
      consumer: locked(
        { ...defaultConsumerProperties, ...kafkaOverrides(env, "KAFKA_COMMON_"), ...kafkaOverrides(env, "KAFKA_CONSUMER_") },
        lockedConsumerProperties,
        "consumer",
      ),
      deliveryTimeoutMs: integer(env, "KAFKA_DELIVERY_TIMEOUT_MS", 10000, 1),
    },
    topicPrefix: env["TOPIC_PREFIX"] ?? "",
    redisUrl: env["REDIS_URL"] ?? "redis://127.0.0.1:6379",
    redisCommandTimeoutMs: integer(env, "REDIS_COMMAND_TIMEOUT_MS", 2000, 1),
    redisKeyPrefix: env["REDIS_KEY_PREFIX"] ?? "of",
    encoding: oneOf(env, "ORDERFLOW_ENCODING", ["binary", "json"], "binary"),
    topicProfile: oneOf(env, "TOPIC_PROFILE", ["local", "cluster"], "local"),
    cacheDir: env["ORDERFLOW_CACHE"] ?? `${env["HOME"] ?? "."}/.cache/orderflow`,
    opsPort: integer(env, "OPS_PORT", 0, 0),
    instanceId: env["INSTANCE_ID"] ?? "0",
    transactions: {
      commitIntervalMs: integer(env, "TX_COMMIT_INTERVAL_MS", 100, 1),
      idleCommitMs: integer(env, "TX_IDLE_COMMIT_MS", 5, 0),
      maxRecords: integer(env, "TX_MAX_RECORDS", 10000, 1),
      timeoutMs: integer(env, "TX_TIMEOUT_MS", 30000, 1000),
      lingerMs: integer(env, "TX_LINGER_MS", 20, 0),
    },
    tracing: tracingSettings(env),
    logLevel: oneOf(env, "LOG_LEVEL", ["trace", "debug", "info", "warn", "error", "fatal", "silent"], "info"),
    consumer: {
      maxAttempts: integer(env, "CONSUMER_MAX_ATTEMPTS", 5, 1),
      retryInitialDelayMs: integer(env, "CONSUMER_RETRY_INITIAL_MS", 100, 1),
      retryMaxDelayMs: integer(env, "CONSUMER_RETRY_MAX_MS", 5000, 1),
      concurrency: integer(env, "CONSUMER_CONCURRENCY", 256, 1),
      fetchMax: integer(env, "CONSUMER_FETCH_MAX", 1000, 1),
      pollMs: integer(env, "CONSUMER_POLL_MS", 100, 1),
      stallAfterMs: integer(env, "CONSUMER_STALL_AFTER_MS", 60000, 1),
    },
    idempotency: idempotencySettings(env),
    redisLifetimes: redisLifetimes(env),
  };
}

/**
 * IDEMPOTENCY_LEASE_MS (default: the delivery timeout + 5 s; must exceed it, or a retry could take
 * over a key whose produce may still be acknowledged) and IDEMPOTENCY_SECRET.
 */
function idempotencySettings(env: Env): Config["idempotency"] {
  const deliveryTimeoutMs = integer(env, "KAFKA_DELIVERY_TIMEOUT_MS", 10000, 1);
  const leaseMs = integer(env, "IDEMPOTENCY_LEASE_MS", deliveryTimeoutMs + 5000, 1);
  if (leaseMs <= deliveryTimeoutMs) {
    throw new ConfigError(`IDEMPOTENCY_LEASE_MS must exceed KAFKA_DELIVERY_TIMEOUT_MS (${deliveryTimeoutMs}), got ${leaseMs}`);
  }
  const secret = env["IDEMPOTENCY_SECRET"];
  return secret === undefined || secret === "" ? { leaseMs } : { leaseMs, secret };
}

/** Defaults of the order API's token checks; `make up`'s development tokens are issued with these. */
export const orderApiAuthDefaults = {
  issuer: "orderflow-local",
  audience: "orderflow-order-api",
  operatorScope: "orders:operator",
} as const;

/**
 * Who may call the order API: bearer JWTs from `issuer` for `audience`, verified with the keys of a
 * JWKS URL (ORDER_AUTH_JWKS_URL, an identity provider) or a local public key in PEM
 * (ORDER_AUTH_PUBLIC_KEY_FILE, as `make up` makes one) — exactly one of them, never neither — and
 * the per-client limit on placing orders, counted in Redis so that every order instance shares it.
 */
export interface OrderApiAuthConfig {
  readonly issuer: string;
  readonly audience: string;
  readonly keys: { readonly jwksUrl: URL } | { readonly publicKeyFile: string };
  /** A token whose `scope` claim holds this word is an operator's: every order, any customer. */
  readonly operatorScope: string;
  /** Clock difference tolerated on `exp` and `nbf`. */
  readonly clockToleranceS: number;
  /** POST /orders (and PlaceOrder) per token subject in each fixed window. */
  readonly placeLimit: { readonly orders: number; readonly windowMs: number };
}

/** Reads the order API's auth settings; a missing or doubled key source is a ConfigError. */
export function loadOrderApiAuth(env: Env): OrderApiAuthConfig {
  const jwksUrl = env["ORDER_AUTH_JWKS_URL"] ?? "";
  const publicKeyFile = env["ORDER_AUTH_PUBLIC_KEY_FILE"] ?? "";
  if (jwksUrl === "" && publicKeyFile === "") {
    throw new ConfigError("the order API needs a key to verify tokens with: set ORDER_AUTH_JWKS_URL or ORDER_AUTH_PUBLIC_KEY_FILE (make up makes a local one)");
  }
  if (jwksUrl !== "" && publicKeyFile !== "") throw new ConfigError("set only one of ORDER_AUTH_JWKS_URL and ORDER_AUTH_PUBLIC_KEY_FILE");
  let keys: OrderApiAuthConfig["keys"] = { publicKeyFile };
  if (jwksUrl !== "") {
    try {
      keys = { jwksUrl: new URL(jwksUrl) };
    } catch {
      throw new ConfigError(`ORDER_AUTH_JWKS_URL must be a URL, got ${JSON.stringify(jwksUrl)}`);
    }
  }
  return {
    issuer: env["ORDER_AUTH_ISSUER"] || orderApiAuthDefaults.issuer,
    audience: env["ORDER_AUTH_AUDIENCE"] || orderApiAuthDefaults.audience,
    keys,
    operatorScope: env["ORDER_AUTH_OPERATOR_SCOPE"] || orderApiAuthDefaults.operatorScope,
    clockToleranceS: integer(env, "ORDER_AUTH_CLOCK_TOLERANCE_S", 30, 0),
    placeLimit: {
      orders: integer(env, "ORDER_RATE_LIMIT_ORDERS", 300, 1),
      windowMs: integer(env, "ORDER_RATE_LIMIT_WINDOW_S", 60, 1) * 1000,
    },
  };
}

/**
 * REDIS_DEDUP_TTL_MS, never below the longest redelivery the topic catalog allows, and
 * READ_MODEL_TTL_MS, never above it: an order is cancelled (and refunded) through its view, so
 * the saga and payment records a cancel needs must outlive the view.
 */
function redisLifetimes(env: Env): Config["redisLifetimes"] {
  const dedupMs = integer(env, "REDIS_DEDUP_TTL_MS", DEFAULT_DEDUP_LIFETIME_MS, longestRedeliveryMs());
  const readModelMs = integer(env, "READ_MODEL_TTL_MS", DEFAULT_READ_MODEL_LIFETIME_MS, 1);
  if (readModelMs > dedupMs) throw new ConfigError(`READ_MODEL_TTL_MS (${readModelMs}) must not exceed REDIS_DEDUP_TTL_MS (${dedupMs}): a cancel needs the saga and payment records of every order it can find`);
  return { dedupMs, readModelMs };
}

/**
 * Bounds of the RPC servers (the order API and the admin API) against hostile or greedy clients:
 * how large a request message may be, and how many WatchOrder streams may be open, for how long.
 */
export interface RpcLimits {
  /**
   * Largest request message in bytes, on the wire and again after decompression (connect's
   * readMaxBytes: a compressed body is inflated only up to it). A Content-Length above it (plus
   * a gRPC envelope's 5-byte prefix) is refused before the body is read.
   */
  readonly readMaxBytes: number;
  readonly watch: {
    /** WatchOrder streams open at once in one process. */
    readonly maxStreams: number;
    /** WatchOrder streams one caller (token subject) may have open at once in one process. */
    readonly maxStreamsPerCaller: number;
    /** A WatchOrder stream ends cleanly (status OK) after this long; the client may watch again. */
    readonly maxLifetimeMs: number;
  };
}

/** RPC_READ_MAX_BYTES (64 KiB), WATCH_MAX_STREAMS (1000), WATCH_MAX_STREAMS_PER_CALLER (10), WATCH_MAX_LIFETIME_MS (15 min). */
export function loadRpcLimits(env: Env): RpcLimits {
  const maxStreams = integer(env, "WATCH_MAX_STREAMS", 1000, 1);
  return {
    readMaxBytes: integer(env, "RPC_READ_MAX_BYTES", 64 * 1024, 1024),
    watch: {
      maxStreams,
      maxStreamsPerCaller: Math.min(integer(env, "WATCH_MAX_STREAMS_PER_CALLER", 10, 1), maxStreams),
      maxLifetimeMs: integer(env, "WATCH_MAX_LIFETIME_MS", 15 * 60 * 1000, 1),
    },
  };
}
