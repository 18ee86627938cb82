import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, loadRpcLimits, unsafeDedupOff, withoutSecrets } from "./config.ts";

describe("loadConfig", () => {
  it("has working defaults with the guarantee block applied", () => {
    const config = loadConfig("payment", {});
    expect(config.kafka.brokers).toBe("127.0.0.1:9092");
    expect(config.kafka.clientId).toBe("orderflow-payment");
    expect(config.kafka.producer).toMatchObject({ "enable.idempotence": true, acks: "all" });
    expect(config.kafka.consumer).toMatchObject({ "isolation.level": "read_committed" });
    expect(config.encoding).toBe("binary");
    expect(config.topicPrefix).toBe("");
  });

  it("takes environment overrides, including librdkafka properties by prefix", () => {
    const config = loadConfig("order", {
      KAFKA_BROKERS: "a:1,b:2",
      KAFKA_PRODUCER_LINGER_MS: "20",
      KAFKA_CONSUMER_FETCH_WAIT_MAX_MS: "10",
      KAFKA_PRODUCER_COMPRESSION_TYPE: "zstd",
      ORDERFLOW_ENCODING: "json",
      TOPIC_PROFILE: "cluster",
      CONSUMER_MAX_ATTEMPTS: "3",
    });
    expect(config.kafka.brokers).toBe("a:1,b:2");
    expect(config.kafka.producer["linger.ms"]).toBe(20);
    expect(config.kafka.producer["compression.type"]).toBe("zstd");
    expect(config.kafka.consumer["fetch.wait.max.ms"]).toBe(10);
    expect(config.encoding).toBe("json");
    expect(config.topicProfile).toBe("cluster");
    expect(config.consumer.maxAttempts).toBe(3);
  });

  it("refuses to weaken a guarantee", () => {
    expect(() => loadConfig("x", { KAFKA_PRODUCER_ACKS: "1" })).toThrow(ConfigError);
    expect(() => loadConfig("x", { KAFKA_PRODUCER_ENABLE_IDEMPOTENCE: "false" })).toThrow(/enable.idempotence/);
    expect(() => loadConfig("x", { KAFKA_CONSUMER_ISOLATION_LEVEL: "read_uncommitted" })).toThrow(/isolation.level/);
  });

  it("names the variable that is wrong", () => {
    expect(() => loadConfig("x", { CONSUMER_MAX_ATTEMPTS: "zero" })).toThrow(/CONSUMER_MAX_ATTEMPTS/);
    expect(() => loadConfig("x", { CONSUMER_MAX_ATTEMPTS: "0" })).toThrow(/>= 1/);
    expect(() => loadConfig("x", { ORDERFLOW_ENCODING: "avro" })).toThrow(/ORDERFLOW_ENCODING/);
  });

  it("gives the Idempotency-Key lease the delivery timeout + 5 s, and refuses one that does not outlast it", () => {
    expect(loadConfig("order", {}).idempotency).toEqual({ leaseMs: 15000 });
    expect(loadConfig("order", { KAFKA_DELIVERY_TIMEOUT_MS: "2000", IDEMPOTENCY_SECRET: "s" }).idempotency).toEqual({ leaseMs: 7000, secret: "s" });
    expect(loadConfig("order", { KAFKA_DELIVERY_TIMEOUT_MS: "2000", IDEMPOTENCY_LEASE_MS: "2500" }).idempotency.leaseMs).toBe(2500);
    expect(() => loadConfig("order", { IDEMPOTENCY_LEASE_MS: "10000" })).toThrow(/IDEMPOTENCY_LEASE_MS must exceed KAFKA_DELIVERY_TIMEOUT_MS/);
  });

  it("gives KAFKA_COMMON_ properties to producers and consumers, and leaves secrets out of what reports write", () => {
    const config = loadConfig("x", { KAFKA_COMMON_SECURITY_PROTOCOL: "SASL_SSL", KAFKA_COMMON_SASL_USERNAME: "svc", KAFKA_COMMON_SASL_PASSWORD: "hunter2" });
    expect(config.kafka.producer).toMatchObject({ "security.protocol": "SASL_SSL", "sasl.username": "svc", "sasl.password": "hunter2" });
    expect(config.kafka.consumer).toMatchObject({ "security.protocol": "SASL_SSL", "sasl.password": "hunter2" });
    const written = withoutSecrets(config.kafka.producer);
    expect(written["security.protocol"]).toBe("SASL_SSL");
    expect(JSON.stringify(written)).not.toContain("hunter2");
  });

  it("refuses UNSAFE_DISABLE_DEDUP unless a test run says it set it on purpose", () => {
    expect(unsafeDedupOff({})).toBe(false);
    expect(() => unsafeDedupOff({ UNSAFE_DISABLE_DEDUP: "1" })).toThrow(ConfigError);
    expect(unsafeDedupOff({ UNSAFE_DISABLE_DEDUP: "1", ORDERFLOW_TEST_RUN: "1" })).toBe(true);
  });

  it("exports traces only when an OTLP endpoint is given", () => {
    expect(loadConfig("x", {}).tracing.endpoint).toBeUndefined();
    expect(loadConfig("x", { OTEL_EXPORTER_OTLP_ENDPOINT: "" }).tracing.endpoint).toBeUndefined();
    expect(loadConfig("x", { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" }).tracing.endpoint).toBe("http://127.0.0.1:4318");
  });

  it("reads the sampler from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, keeping one trace in ten by default", () => {
    const tracing = (env: Record<string, string>) => {
      const { sampler, sampleRatio } = loadConfig("x", env).tracing;
      return { sampler, sampleRatio };
    };
    expect(tracing({})).toEqual({ sampler: "parentbased_traceidratio", sampleRatio: 0.1 });
    expect(tracing({ OTEL_TRACES_SAMPLER_ARG: "0.5" })).toEqual({ sampler: "parentbased_traceidratio", sampleRatio: 0.5 });
    // Named without a ratio, a ratio sampler keeps every trace (the spec's default argument, 1.0).
    expect(tracing({ OTEL_TRACES_SAMPLER: "traceidratio" })).toEqual({ sampler: "traceidratio", sampleRatio: 1 });
    expect(tracing({ OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" })).toEqual({ sampler: "parentbased_traceidratio", sampleRatio: 0 });
    expect(tracing({ OTEL_TRACES_SAMPLER: "always_on" })).toEqual({ sampler: "always_on", sampleRatio: 1 });
    expect(tracing({ OTEL_TRACES_SAMPLER: "parentbased_always_on", OTEL_TRACES_SAMPLER_ARG: "ignored" })).toEqual({ sampler: "parentbased_always_on", sampleRatio: 1 });
    expect(tracing({ OTEL_TRACES_SAMPLER: "always_off" })).toEqual({ sampler: "always_off", sampleRatio: 0 });
    expect(tracing({ OTEL_TRACES_SAMPLER: "parentbased_always_off" })).toEqual({ sampler: "parentbased_always_off", sampleRatio: 0 });
    // TRACING_SAMPLE_RATIO, the deprecated name of the ratio, still works; the standard one wins.
    expect(tracing({ TRACING_SAMPLE_RATIO: "0.25" })).toEqual({ sampler: "parentbased_traceidratio", sampleRatio: 0.25 });
    expect(tracing({ TRACING_SAMPLE_RATIO: "0.25", OTEL_TRACES_SAMPLER_ARG: "0.75" })).toEqual({ sampler: "parentbased_traceidratio", sampleRatio: 0.75 });
  });

  it("refuses a sampler or ratio it cannot use, naming the variable", () => {
    expect(() => loadConfig("x", { OTEL_TRACES_SAMPLER: "jaeger_remote" })).toThrow(/OTEL_TRACES_SAMPLER must be one of always_on, /);
    expect(() => loadConfig("x", { OTEL_TRACES_SAMPLER_ARG: "1.5" })).toThrow(/OTEL_TRACES_SAMPLER_ARG must be a number between 0 and 1, got "1.5"/);
    expect(() => loadConfig("x", { OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "a tenth" })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(() => loadConfig("x", { OTEL_TRACES_SAMPLER_ARG: "-0.1" })).toThrow(ConfigError);
    expect(() => loadConfig("x", { TRACING_SAMPLE_RATIO: "2" })).toThrow(/TRACING_SAMPLE_RATIO/);
  });
});

describe("loadRpcLimits", () => {
  it("has defaults, takes overrides, and keeps the per-caller stream cap within the process's", () => {
    expect(loadRpcLimits({})).toEqual({ readMaxBytes: 65536, watch: { maxStreams: 1000, maxStreamsPerCaller: 10, maxLifetimeMs: 900_000 } });
    expect(loadRpcLimits({ RPC_READ_MAX_BYTES: "1048576", WATCH_MAX_STREAMS: "4", WATCH_MAX_STREAMS_PER_CALLER: "9", WATCH_MAX_LIFETIME_MS: "1000" })).toEqual({
      readMaxBytes: 1048576,
      watch: { maxStreams: 4, maxStreamsPerCaller: 4, maxLifetimeMs: 1000 },
    });
  });

  it("refuses limits it cannot use, naming the variable", () => {
    expect(() => loadRpcLimits({ RPC_READ_MAX_BYTES: "100" })).toThrow(/RPC_READ_MAX_BYTES must be an integer >= 1024/);
    expect(() => loadRpcLimits({ WATCH_MAX_STREAMS: "0" })).toThrow(/WATCH_MAX_STREAMS/);
    expect(() => loadRpcLimits({ WATCH_MAX_LIFETIME_MS: "soon" })).toThrow(ConfigError);
  });
});
