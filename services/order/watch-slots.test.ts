/** WatchOrder stream slots: the per-caller and per-process caps, freeing, and the lifetime. */
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createWatchSlots } from "./watch-slots.ts";

const codeOf = (take: () => unknown) => {
  try {
    take();
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
};

describe("createWatchSlots", () => {
  it("refuses past the per-caller and the per-process cap, and frees a slot once closed (once)", () => {
    const slots = createWatchSlots({ maxStreams: 3, maxStreamsPerCaller: 2, maxLifetimeMs: 60_000 });
    const first = slots.take("alice");
    slots.take("alice");
    expect(codeOf(() => slots.take("alice"))).toBe(Code.ResourceExhausted);
    const bob = slots.take("bob");
    expect(codeOf(() => slots.take("carol"))).toBe(Code.ResourceExhausted);
    first.close();
    first.close();
    expect(slots.count()).toBe(2);
    expect(slots.count("alice")).toBe(1);
    expect(codeOf(() => slots.take("carol"))).toBe("ok");
    bob.close();
    expect(slots.count("bob")).toBe(0);
  });

  it("aborts the slot's signal when the client leaves or the lifetime is over", async () => {
    const slots = createWatchSlots({ maxStreams: 10, maxStreamsPerCaller: 10, maxLifetimeMs: 50 });
    const client = new AbortController();
    const left = slots.take("alice", client.signal);
    client.abort();
    expect(left.signal.aborted).toBe(true);
    const timed = slots.take("alice");
    expect(timed.signal.aborted).toBe(false);
    await new Promise<void>((resolve) => timed.signal.addEventListener("abort", () => resolve(), { once: true }));
    expect(timed.signal.aborted).toBe(true);
    left.close();
    timed.close();
    expect(slots.count()).toBe(0);
  });
});
