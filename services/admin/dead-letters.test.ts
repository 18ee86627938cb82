/** Dead letters as the admin API shows and replays them: header decoding, replay records, selection. */
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { ReadRecord } from "../../lib/kafka/read-to-end.ts";
import { violationsOf } from "../order/orders.ts";
import { baseName, deadLetterOf, positionOf, replayRecord, selectForReplay } from "./dead-letters.ts";

const prefix = "t-1.";

function letter(partition: number, offset: number, errorClass = "poison.malformed", extra: Record<string, string> = {}): ReadRecord {
  return {
    topic: `${prefix}orders.created.dlq`,
    partition,
    offset: String(offset),
    key: Buffer.from("order-1"),
    value: Buffer.from([1, 2, 3]),
    headers: {
      "event-id": "e-1",
      "event-type": "orderflow.v1.OrderCreated",
      "order-id": "order-1",
      "dlq-origin-topic": `${prefix}orders.created`,
      "dlq-origin-partition": "4",
      "dlq-origin-offset": "17",
      "dlq-error-class": errorClass,
      "dlq-error-message": "bad bytes",
      "dlq-attempts": "1",
      "dlq-first-seen": "2026-01-02T03:04:05.000Z",
      "dlq-service": "orchestrator",
      ...extra,
    },
  };
}

describe("deadLetterOf", () => {
  it("decodes the DLQ headers, by catalog names", () => {
    const dl = deadLetterOf(letter(2, 9), prefix);
    expect(dl).toMatchObject({
      dlqTopic: "orders.created.dlq",
      partition: 2,
      offset: 9n,
      originTopic: "orders.created",
      originPartition: 4,
      originOffset: 17n,
      errorClass: "poison.malformed",
      errorMessage: "bad bytes",
      attempts: 1,
      key: "order-1",
      eventType: "orderflow.v1.OrderCreated",
      sizeBytes: 3,
    });
    expect(dl.firstSeen?.seconds).toBe(BigInt(Date.parse("2026-01-02T03:04:05Z") / 1000));
  });

  it("reads missing or malformed headers as empty or zero", () => {
    const dl = deadLetterOf({ ...letter(0, 1), key: null, value: null, headers: { "dlq-origin-offset": "x", "dlq-first-seen": "never" } }, prefix);
    expect(dl).toMatchObject({ originTopic: "", originOffset: 0n, attempts: 0, key: "", sizeBytes: 0, errorClass: "" });
    expect(dl.firstSeen).toBeUndefined();
  });
});

describe("positions and names", () => {
  it("names a position by catalog name", () => {
    expect(positionOf(letter(1, 5), prefix)).toBe("orders.created.dlq/1/5");
    expect(baseName("orders.created", "")).toBe("orders.created");
    expect(baseName("other.orders.created", prefix)).toBe("other.orders.created");
  });
});

describe("replayRecord", () => {
  it("keeps key, value and the original headers, drops dlq-* and says where it came from", () => {
    const record = replayRecord(letter(0, 3), "orders.created.dlq/0/3", "ada");
    expect(record.key).toBe("order-1");
    expect([...record.value]).toEqual([1, 2, 3]);
    expect(record.headers).toEqual({
      "event-id": "e-1",
      "event-type": "orderflow.v1.OrderCreated",
      "order-id": "order-1",
      "replayed-from": "orders.created.dlq/0/3",
      "replayed-by": "ada",
    });
  });
});

describe("selectForReplay", () => {
  const records = [letter(0, 0), letter(0, 1, "transient"), letter(1, 0), letter(1, 2, "transient")];
  const pick = (selection: { offsets?: bigint[]; errorClass?: string; all?: boolean }) =>
    selectForReplay(records, { offsets: [], errorClass: "", all: false, ...selection }, "orders.created.dlq").map((r) => `${r.partition}/${r.offset}`);

  it("takes everything with all, a class with error_class, and both filters together", () => {
    expect(pick({ all: true })).toEqual(["0/0", "0/1", "1/0", "1/2"]);
    expect(pick({ errorClass: "transient" })).toEqual(["0/1", "1/2"]);
    expect(pick({ offsets: [1n, 2n, 2n] })).toEqual(["0/1", "1/2"]);
    expect(pick({ offsets: [1n], errorClass: "poison.malformed" })).toEqual([]);
  });

  it("refuses a request that names nothing, naming the field", () => {
    let err: unknown;
    try {
      pick({});
    } catch (e) {
      err = e;
    }
    expect(violationsOf(err)?.map((v) => v.field)).toEqual(["offsets"]);
  });

  it("refuses an offset found in two partitions, and NotFound for one it does not hold", () => {
    expect(() => pick({ offsets: [0n] })).toThrow(/offset 0 is in partitions 0, 1/);
    expect(() => pick({ offsets: [7n] })).toThrow(ConnectError);
    try {
      pick({ offsets: [7n] });
    } catch (err) {
      expect((err as ConnectError).code).toBe(Code.NotFound);
    }
  });
});
