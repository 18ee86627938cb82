import { describe, expect, it } from "vitest";
import { catalog, type TopicSpec } from "../infra/topics.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { DEDUP_MARGIN_MS, DEFAULT_DEDUP_LIFETIME_MS, DEFAULT_READ_MODEL_LIFETIME_MS, longestRedeliveryMs } from "./lifetimes.ts";

const DAY_MS = 24 * 60 * 60 * 1000;

describe("Redis lifetimes", () => {
  it("a record can come back for its topic's retention, its DLQ's, and its topic's again after a replay", () => {
    // 7-day saga topics, 14-day DLQs.
    expect(longestRedeliveryMs()).toBe(28 * DAY_MS);
  });

  it("follows the catalog: the longest consumed topic counts, a topic nobody consumes does not", () => {
    const withRetention = (name: string, retentionMs: number): TopicSpec[] => catalog.map((spec) => (spec.name === name ? { ...spec, retentionMs } : spec));
    expect(longestRedeliveryMs(withRetention("payments.requested", 10 * DAY_MS))).toBe(34 * DAY_MS);
    expect(longestRedeliveryMs(withRetention("payments.requested.dlq", 20 * DAY_MS))).toBe(34 * DAY_MS);
    // orders.audit keeps 30 days, but no service reads it back.
    expect(longestRedeliveryMs(withRetention("orders.audit", 90 * DAY_MS))).toBe(28 * DAY_MS);
  });

  it("defaults: dedup records outlive the longest redelivery by the margin; the read model 30 days", () => {
    const { redisLifetimes } = loadConfig("payment", {});
    expect(redisLifetimes.dedupMs).toBe(DEFAULT_DEDUP_LIFETIME_MS);
    expect(DEFAULT_DEDUP_LIFETIME_MS).toBe(longestRedeliveryMs() + DEDUP_MARGIN_MS);
    expect(redisLifetimes.readModelMs).toBe(DEFAULT_READ_MODEL_LIFETIME_MS);
    expect(DEFAULT_READ_MODEL_LIFETIME_MS).toBe(30 * DAY_MS);
  });

  it("refuses a dedup lifetime shorter than the longest redelivery, naming the variable", () => {
    expect(() => loadConfig("payment", { REDIS_DEDUP_TTL_MS: String(7 * DAY_MS) })).toThrow(ConfigError);
    expect(() => loadConfig("payment", { REDIS_DEDUP_TTL_MS: String(longestRedeliveryMs() - 1) })).toThrow(/REDIS_DEDUP_TTL_MS/);
    expect(loadConfig("payment", { REDIS_DEDUP_TTL_MS: String(90 * DAY_MS), READ_MODEL_TTL_MS: "60000" }).redisLifetimes).toEqual({ dedupMs: 90 * DAY_MS, readModelMs: 60_000 });
  });

  it("refuses a read model that outlives the dedup records a cancel through it needs", () => {
    expect(() => loadConfig("order", { READ_MODEL_TTL_MS: String(DEFAULT_DEDUP_LIFETIME_MS + 1) })).toThrow(/READ_MODEL_TTL_MS .* must not exceed REDIS_DEDUP_TTL_MS/);
    expect(loadConfig("order", { READ_MODEL_TTL_MS: String(DEFAULT_DEDUP_LIFETIME_MS) }).redisLifetimes.readModelMs).toBe(DEFAULT_DEDUP_LIFETIME_MS);
  });
});
