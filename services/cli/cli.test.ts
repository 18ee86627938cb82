/**
 * The CLI's pure parts without a broker: the sample-order builder, option parsing and usage exit
 * codes, the admin token lookup and error wording, the snapshot check and view, the Redis key pattern.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { adminError, adminToken, findAdminToken } from "./admin-client.ts";
import { cliSettings } from "./context.ts";
import { runCli } from "./main.ts";
import { parseSnapshot, ratesOf, renderSnapshot, type Snapshot } from "./monitor.ts";
import { parseItem } from "./orders.ts";
import { keyPattern } from "./reset.ts";
import { mathRandomInt, sampleOrder, testCards, type SampleMix } from "./samples.ts";

const mix: SampleMix = {
  products: [{ sku: "a", price: "1.00" }, { sku: "b", price: "2.50" }],
  scarce: { product: { sku: "rare", price: "9.99" }, percent: 20 },
  cards: [{ card: testCards.success, weight: 3 }, { card: testCards.declined, weight: 1 }],
  currency: "USD",
  customerPrefix: "p",
  customers: 5,
  email: "x@example.com",
  maxLines: 3,
  maxQuantity: 2,
};

describe("sample orders", () => {
  it("draw only the mix's products, cards, customers and sizes, the scarce SKU only first", () => {
    fc.assert(
      fc.property(fc.infiniteStream(fc.nat()), (stream) => {
        const draws = stream[Symbol.iterator]();
        const random = (min: number, max: number) => min + ((draws.next().value as number) % (max - min + 1));
        const order = sampleOrder(mix, random);
        expect([testCards.success, testCards.declined]).toContain(order.payment.card_number);
        expect(order.customer_id).toMatch(/^p-[1-5]$/);
        expect(order.items.length).toBeGreaterThanOrEqual(1);
        expect(order.items.length).toBeLessThanOrEqual(3);
        order.items.forEach((item, i) => {
          expect(item.quantity).toBeGreaterThanOrEqual(1);
          expect(item.quantity).toBeLessThanOrEqual(2);
          expect(i === 0 ? ["a", "b", "rare"] : ["a", "b"]).toContain(item.product_id);
          expect(item.price).toBe({ a: "1.00", b: "2.50", rare: "9.99" }[item.product_id]);
        });
      }),
    );
  });

  it("pick cards by weight", () => {
    const cards = Array.from({ length: 4000 }, () => sampleOrder(mix, mathRandomInt).payment.card_number);
    const declined = cards.filter((c) => c === testCards.declined).length / cards.length;
    expect(declined).toBeGreaterThan(0.2);
    expect(declined).toBeLessThan(0.3);
    expect(() => sampleOrder({ ...mix, products: [] }, mathRandomInt)).toThrow(/no products/);
  });
});

describe("options", () => {
  it("parses --item sku:quantity[:price] and refuses anything else", () => {
    expect(parseItem("laptop:2")).toEqual([{ sku: "laptop", quantity: 2 }]);
    expect(parseItem("mouse:1:25.00", [{ sku: "laptop", quantity: 2 }])).toEqual([{ sku: "laptop", quantity: 2 }, { sku: "mouse", quantity: 1, price: "25.00" }]);
    for (const bad of ["laptop", "laptop:0", "laptop:x", ":1", "laptop:1:abc"]) expect(() => parseItem(bad)).toThrow(/--item must be/);
  });

  it("reads ORDER_API_URL and ADMIN_URL, refusing what is not a URL", () => {
    expect(cliSettings({})).toMatchObject({ orderApiUrl: "http://127.0.0.1:8080", adminUrl: "http://127.0.0.1:8081" });
    expect(cliSettings({ ORDER_API_URL: "http://api:9000/", ADMIN_TOKEN: "s" })).toMatchObject({ orderApiUrl: "http://api:9000", adminToken: "s" });
    expect(() => cliSettings({ ADMIN_URL: "not a url" })).toThrow(/ADMIN_URL must be a URL/);
  });

  describe("usage errors exit 2", () => {
    let err: string[];
    beforeEach(() => {
      err = [];
      vi.spyOn(process.stdout, "write").mockImplementation(() => true);
      vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
        err.push(String(chunk));
        return true;
      });
    });
    afterEach(() => {
      vi.restoreAllMocks();
      process.exitCode = 0;
    });

    it.each([
      [["orders", "place", "--item", "laptop"], /--item must be/],
      [["generate", "--rate", "0", "--count", "1"], /--rate must be a number > 0/],
      [["generate", "--rate", "5"], /--count N or --duration/],
      [["generate", "--count", "5", "--duration", "3"], /cannot be used with/],
      [["generate", "--count", "5", "--declined-share", "1.5"], /--declined-share must be a fraction/],
      [["dlq", "replay", "orders.created"], /--offset N \(repeatable\) or --all/],
      [["dlq", "replay", "orders.created", "--all", "--offset", "3"], /not both/],
      [["dlq", "replay", "orders.created", "--offset", "-1"], /--offset must be a whole number/],
      [["dlq", "list", "--limit", "0"], /--limit must be a whole number >= 1/],
      [["monitor", "--interval", "5"], /--interval must be a whole number >= 100/],
    ])("%j", async (args, message) => {
      expect(await runCli(["node", "orderflow", ...args], {})).toBe(2);
      expect(err.join("")).toMatch(message);
    });
  });
});

describe("admin client", () => {
  const dir = mkdtempSync(join(tmpdir(), "orderflow-cli-"));
  const settings = (env: Record<string, string>) => cliSettings({ ADMIN_TOKEN_FILE: join(dir, "missing"), ...env });

  it("takes ADMIN_TOKEN, else the token file, else says where it looked", () => {
    const file = join(dir, "admin-token");
    writeFileSync(file, "from-file\n");
    expect(adminToken(settings({ ADMIN_TOKEN: "from-env", ADMIN_TOKEN_FILE: file }))).toBe("from-env");
    expect(adminToken(settings({ ADMIN_TOKEN_FILE: file }))).toBe("from-file");
    expect(findAdminToken(settings({}))).toBeUndefined();
    expect(() => adminToken(settings({}))).toThrow(/ADMIN_TOKEN is not set and .*missing does not exist \(make up writes it\)/);
  });

  it("words each Connect failure for an operator", () => {
    const s = settings({ ADMIN_URL: "http://admin:1" });
    const said = (code: Code) => adminError(s, new ConnectError("detail", code)).message;
    expect(said(Code.Unauthenticated)).toBe("admin token refused — set ADMIN_TOKEN or run make up");
    expect(said(Code.PermissionDenied)).toBe("admin token refused — set ADMIN_TOKEN or run make up");
    expect(said(Code.Unavailable)).toMatch(/admin service at http:\/\/admin:1 is unreachable \(detail\)/);
    expect(said(Code.InvalidArgument)).toBe("the admin service refused the request: detail");
    expect(said(Code.NotFound)).toBe("detail");
    expect(said(Code.Unimplemented)).toMatch(/does not offer this call/);
    expect(said(Code.DeadlineExceeded)).toMatch(/did not answer in time/);
    expect(said(Code.Internal)).toBe("the admin service failed: detail");
  });
});

/** A snapshot of the documented shape. */
const sampleSnapshot: Snapshot = {
  at: "2026-12-02T04:00:00.000Z",
  windowSeconds: 60,
  throughput: [
    { second: 100, created: 4, completed: 2, failed: 2, cancelled: 0 },
    { second: 101, created: 6, completed: 4, failed: 0, cancelled: 2 },
    { second: 102, created: 50, completed: 50, failed: 0, cancelled: 0 },
  ],
  totals: { created: 60, completed: 56, failed: 2, cancelled: 2, failedByReason: { PAYMENT: 2, INVENTORY: 0 } },
  latencyMs: { count: 56, p50: 120, p90: 250, p99: 480, max: 900 },
  lag: [{ group: "payment", topic: "payments.requested", partition: 0, lag: 3 }],
  lagByGroup: { payment: 3, orchestrator: 0 },
  dlq: [{ topic: "orders.created.dlq", records: 2 }, { topic: "payments.requested.dlq", records: 0 }],
  breaker: { state: "closed" },
  services: [{ name: "order", status: "ok" }, { name: "payment", status: "degraded" }],
  latestOrders: [{ orderId: "o-1", status: "FAILED", failureReason: "PAYMENT", total: "25.00", currency: "USD", updatedAt: "2026-12-02T04:00:00.000Z" }],
};

describe("monitor view", () => {
  it("accepts the documented snapshot and names the first field that is wrong", () => {
    expect(parseSnapshot(JSON.parse(JSON.stringify(sampleSnapshot)))).toEqual(sampleSnapshot);
    expect(() => parseSnapshot([])).toThrow(/the body must be an object/);
    expect(() => parseSnapshot({ ...sampleSnapshot, latencyMs: { ...sampleSnapshot.latencyMs, p99: "x" } })).toThrow(/latencyMs\.p99 must be a number/);
    expect(() => parseSnapshot({ ...sampleSnapshot, lagByGroup: { payment: "3" } })).toThrow(/lagByGroup\.payment must be a number/);
    expect(() => parseSnapshot({ ...sampleSnapshot, services: [{ name: "order" }] })).toThrow(/services\[0\]\.status must be a string/);
  });

  it("averages rates over full seconds, leaving out the one still filling", () => {
    expect(ratesOf(sampleSnapshot.throughput)).toEqual({ created: 5, completed: 3, failed: 1, cancelled: 1 });
    expect(ratesOf([])).toEqual({ created: 0, completed: 0, failed: 0, cancelled: 0 });
  });

  it("shows rates, totals with failure reasons, latency, lag, non-empty DLQs, breaker and health", () => {
    const text = renderSnapshot(sampleSnapshot).join("\n");
    expect(text).toMatch(/orders\/s \(10 s\)\s+created 5\.0 {2}completed 3\.0 {2}failed 1\.0 {2}cancelled 1\.0/);
    expect(text).toMatch(/totals \(60 s\)\s+created 60 {2}completed 56 {2}failed 2 \(PAYMENT 2\) {2}cancelled 2/);
    expect(text).toMatch(/p50 120 {2}p90 250 {2}p99 480 {2}max 900 {2}\(n=56\)/);
    expect(text).toMatch(/consumer lag\s+orchestrator 0 {2}payment 3/);
    expect(text).toMatch(/dead letters\s+orders\.created\.dlq 2$/m);
    expect(text).toMatch(/payment breaker\s+closed/);
    expect(text).toMatch(/services\s+order ok {2}payment degraded/);
    expect(text).toMatch(/o-1 {2}FAILED \(PAYMENT\) {2}25\.00 USD/);
    expect(renderSnapshot(sampleSnapshot, true).join("\n")).toContain("\x1b[32mclosed\x1b[0m");
  });
});

describe("reset", () => {
  it("scans exactly the keys under the prefix, glob characters escaped", () => {
    expect(keyPattern("of")).toBe("of:*");
    expect(keyPattern("a*b?[c]")).toBe("a\\*b\\?\\[c\\]:*");
  });
});
