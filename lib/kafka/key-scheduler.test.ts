import { describe, expect, it } from "vitest";
import { KeyedScheduler } from "./key-scheduler.ts";

/** A task that finishes when told to, recording when it started. */
function gated(log: string[], name: string) {
  let release: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (release = resolve));
  return {
    task: () => {
      log.push(`start ${name}`);
      return finished.then(() => void log.push(`end ${name}`));
    },
    release: () => release(),
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("KeyedScheduler", () => {
  it("runs different keys at once and one key's tasks one after another, in order", async () => {
    const log: string[] = [];
    const scheduler = new KeyedScheduler(10);
    const a1 = gated(log, "a1");
    const a2 = gated(log, "a2");
    const b1 = gated(log, "b1");
    scheduler.push("a", a1.task);
    scheduler.push("a", a2.task);
    scheduler.push("b", b1.task);
    expect(log).toEqual(["start a1", "start b1"]);
    expect(scheduler.running).toBe(2);
    expect(scheduler.pending).toBe(3);
    a1.release();
    await turn();
    expect(log).toEqual(["start a1", "start b1", "end a1", "start a2"]);
    a2.release();
    b1.release();
    await scheduler.settled();
    expect(scheduler.pending).toBe(0);
    expect(log.filter((l) => l.startsWith("end"))).toEqual(["end a1", "end a2", "end b1"]);
  });

  it("holds keys beyond its limit until a slot frees, oldest first", async () => {
    const log: string[] = [];
    const scheduler = new KeyedScheduler(2);
    const tasks = ["a", "b", "c", "d"].map((key) => ({ key, ...gated(log, key) }));
    for (const { key, task } of tasks) scheduler.push(key, task);
    expect(log).toEqual(["start a", "start b"]);
    tasks[1]?.release();
    await turn();
    expect(log).toEqual(["start a", "start b", "end b", "start c"]);
    for (const t of tasks) t.release();
    await scheduler.settled();
    expect(log.filter((l) => l.startsWith("start"))).toEqual(["start a", "start b", "start c", "start d"]);
  });

  it("keeps going when a task throws or rejects", async () => {
    const scheduler = new KeyedScheduler(1);
    const ran: string[] = [];
    scheduler.push("k", () => {
      throw new Error("synchronous");
    });
    scheduler.push("k", () => Promise.reject(new Error("rejected")));
    scheduler.push("k", () => Promise.resolve(void ran.push("third")));
    await scheduler.settled();
    expect(ran).toEqual(["third"]);
    expect(scheduler.pending).toBe(0);
  });

  it("says when there is room below a number of pending tasks", async () => {
    const log: string[] = [];
    const scheduler = new KeyedScheduler(5);
    const first = gated(log, "1");
    const second = gated(log, "2");
    scheduler.push("x", first.task);
    scheduler.push("y", second.task);
    let roomy = false;
    const room = scheduler.room(2).then(() => (roomy = true));
    await turn();
    expect(roomy).toBe(false);
    first.release();
    await room;
    expect(roomy).toBe(true);
    second.release();
    await scheduler.settled();
  });

  it("refuses a limit that is not a positive integer", () => {
    expect(() => new KeyedScheduler(0)).toThrow(/positive integer/);
  });
});

describe("KeyedScheduler, parked keys", () => {
  it("settles without a parked key's tasks, which run in order once it goes on", async () => {
    const log: string[] = [];
    const scheduler = new KeyedScheduler(4);
    const slow = gated(log, "slow");
    const after = gated(log, "after");
    const other = gated(log, "other");
    scheduler.push("k", () => {
      scheduler.park("k");
      return slow.task();
    });
    scheduler.push("k", after.task);
    scheduler.push("j", other.task);
    let settled = false;
    const settling = scheduler.settled().then(() => (settled = true));
    await turn();
    expect(settled).toBe(false);
    other.release();
    await settling;
    expect(settled).toBe(true);
    expect(log).toEqual(["start slow", "start other", "end other"]);
    scheduler.unpark("k");
    let again = false;
    const settlingAgain = scheduler.settled().then(() => (again = true));
    slow.release();
    await turn();
    expect(log.slice(-2)).toEqual(["end slow", "start after"]);
    expect(again).toBe(false);
    after.release();
    await settlingAgain;
    expect(scheduler.pending).toBe(0);
  });
});

describe("KeyedScheduler, parked keys and slots", () => {
  it("gives a parked task's slot to another key, so settling never waits on a full house of parked tasks", async () => {
    const log: string[] = [];
    const scheduler = new KeyedScheduler(1);
    const parked = gated(log, "parked");
    const other = gated(log, "other");
    scheduler.push("p", () => {
      scheduler.park("p");
      return parked.task();
    });
    scheduler.push("o", other.task);
    expect(log).toEqual(["start parked", "start other"]);
    const settling = scheduler.settled();
    other.release();
    await settling;
    expect(scheduler.running).toBe(0);
    scheduler.unpark("p");
    expect(scheduler.running).toBe(1);
    parked.release();
    await scheduler.settled();
    expect(scheduler.running).toBe(0);
    expect(scheduler.pending).toBe(0);
  });
});
