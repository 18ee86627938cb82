import { describe, expect, it } from "vitest";
import { OrderStatus } from "../../gen/orderflow/v1/common_pb.ts";
import { RecentSagas, keyedQueue } from "./recent.ts";
import type { SagaState } from "./saga.ts";
import type { Versioned } from "./store.ts";

const saga = (status: OrderStatus, patch: Partial<SagaState> = {}): Versioned => ({
  version: "1",
  saga: { state: { status, pending: {}, deadlineMs: 5, ...patch } as unknown as SagaState, seen: [] },
});

describe("sagas in memory", () => {
  it("keeps at most its capacity, dropping the least recently used", () => {
    const recent = new RecentSagas(2);
    recent.remember("a", saga(OrderStatus.VALIDATED));
    recent.remember("b", saga(OrderStatus.VALIDATED));
    expect(recent.get("a")).toBeDefined();
    recent.remember("c", saga(OrderStatus.VALIDATED));
    expect(recent.size).toBe(2);
    expect(recent.get("b")).toBeUndefined();
    expect(recent.get("a")).toBeDefined();
  });

  it("lets a saga go once it is over and waits on nothing; keeps one with a compensation pending", () => {
    const recent = new RecentSagas(10);
    recent.remember("done", saga(OrderStatus.VALIDATED));
    recent.remember("done", saga(OrderStatus.COMPLETED, { deadlineMs: undefined }));
    expect(recent.get("done")).toBeUndefined();
    recent.remember("compensating", saga(OrderStatus.FAILED, { deadlineMs: undefined, pending: { refund: { attempts: 1, dueMs: 9 } } }));
    expect(recent.get("compensating")?.version).toBe("1");
    recent.remember("none", { version: "0", saga: undefined });
    expect(recent.get("none")).toBeUndefined();
  });
});

describe("keyed queue", () => {
  it("runs one key's work in order, other keys' alongside, and goes on after a failure", async () => {
    const serially = keyedQueue();
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const first = serially("x", async () => {
      await gate;
      events.push("x1");
      throw new Error("x1 failed");
    });
    const second = serially("x", () => Promise.resolve(events.push("x2")));
    await serially("y", () => Promise.resolve(events.push("y1")));
    expect(events).toEqual(["y1"]);
    release();
    await expect(first).rejects.toThrow("x1 failed");
    await second;
    expect(events).toEqual(["y1", "x1", "x2"]);
  });
});
