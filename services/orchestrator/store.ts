/**
 * Where the orchestrator keeps each saga: one Redis value per order holding the saga state, the
 * event ids already applied (a redelivery changes nothing) and an outbox of effects decided but not
 * yet published. State, outbox and two indexes (orders by due time; orders with an outbox by the
 * age of its oldest entry, so the timer finds leftovers without visiting every order in flight)
 * change together in one compare-and-set script, so a decision and its effects can never come
 * apart, and two writers (the consumer and the timer) cannot overwrite each other.
 */
import { fromBinary, toBinary, create, type DescMessage } from "@bufbuild/protobuf";
import { createRegistry } from "@bufbuild/protobuf";
import { file_orderflow_v1_events } from "../../gen/orderflow/v1/events_pb.ts";
import { newEventId } from "../../lib/codec/envelope.ts";
import { RejectedError, TransientError } from "../../lib/errors.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { nextDueMs, type Compensation, type Effect, type SagaState } from "./saga.ts";

/** A decided effect waiting to be carried out. Publishes keep their event id across retries. */
export type OutboxEntry =
  | { readonly id: string; readonly kind: "publish"; readonly topic: string; readonly key: string; readonly typeName: string; readonly value: string }
  | { readonly id: string; readonly kind: "park"; readonly compensation: Compensation; readonly attempts: number };

/** A compensation parked for an operator, as stored (hash `parked`, field = id). */
export interface ParkedRecord {
  readonly id: string;
  readonly orderId: string;
  /** The compensation in upper case: "REFUND" or "RELEASE". */
  readonly action: string;
  readonly attempts: number;
  readonly parkedAtMs: number;
}

export interface StoredSaga {
  readonly state: SagaState;
  readonly seen: readonly string[];
  readonly outbox: readonly OutboxEntry[];
  /** The trace context of the order (W3C headers), so timer work joins the order's trace. */
  readonly trace?: Readonly<Record<string, string>>;
}

const SEEN_KEPT = 64;

/** When an outbox entry was decided: its id is a UUIDv7, whose first 48 bits are Unix milliseconds. */
export function entryCreatedMs(entry: OutboxEntry): number {
  return parseInt(entry.id.replaceAll("-", "").slice(0, 12), 16);
}
const CAS_ATTEMPTS = 20;

const registry = createRegistry(file_orderflow_v1_events);

const casScript = `
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] ~= '') or (current ~= false and current ~= ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '' then redis.call('ZREM', KEYS[2], ARGV[4]) else redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
if ARGV[5] == '' then redis.call('ZREM', KEYS[3], ARGV[4]) else redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4]) end
return 1`;

type CasRedis = Redis & {
  sagaCas(sagaKey: string, dueKey: string, outboxKey: string, old: string, next: string, due: string, orderId: string, outboxSince: string): Promise<number>;
};

/** Turns decided effects into outbox entries (messages encoded now, so the outbox is plain JSON). */
export function toOutbox(effects: readonly Effect[]): OutboxEntry[] {
  return effects.map((effect) =>
    effect.kind === "park"
      ? { id: newEventId(), kind: "park", compensation: effect.compensation, attempts: effect.attempts }
      : {
          id: newEventId(),
          kind: "publish",
          topic: effect.topic,
          key: effect.key,
          typeName: effect.schema.typeName,
          value: Buffer.from(toBinary(effect.schema, create(effect.schema, effect.message))).toString("base64"),
        },
  );
}

/** The message of an outbox publish, decoded again. */
export function outboxMessage(entry: Extract<OutboxEntry, { kind: "publish" }>): { schema: DescMessage; message: ReturnType<typeof fromBinary> } {
  const schema = registry.getMessage(entry.typeName);
  if (schema === undefined) throw new Error(`unknown type ${entry.typeName} in the outbox`);
  return { schema, message: fromBinary(schema, Buffer.from(entry.value, "base64")) };
}

export class SagaStore {
  readonly #redis: CasRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    redis.defineCommand("sagaCas", { numberOfKeys: 3, lua: casScript });
    this.#redis = redis as CasRedis;
  }

  async load(orderId: string): Promise<{ raw: string; saga: StoredSaga | undefined }> {
    const raw = await this.#redis.get(this.keys("saga", orderId));
    return { raw: raw ?? "", saga: raw === null ? undefined : (JSON.parse(raw) as StoredSaga) };
  }

  /** Replaces `raw` with `next` if nobody changed it meanwhile; keeps the due and outbox indexes right. */
  async compareAndSet(orderId: string, raw: string, next: StoredSaga): Promise<boolean> {
    const due = nextDueMs(next.state);
    const oldest = next.outbox[0];
    const done = await this.#redis.sagaCas(
      this.keys("saga", orderId),
      this.keys("saga-due"),
      this.keys("saga-outbox-since"),
      raw,
      JSON.stringify(next),
      due === undefined ? "" : String(due),
      orderId,
      oldest === undefined ? "" : String(entryCreatedMs(oldest)),
    );
    return done === 1;
  }

  /**
   * Applies `change` to the stored saga under compare-and-set, retrying on conflict. `change`
   * returns the next value, or undefined to leave it as it is.
   */
  async update(orderId: string, change: (saga: StoredSaga | undefined) => StoredSaga | undefined): Promise<StoredSaga | undefined> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt += 1) {
      const { raw, saga } = await this.load(orderId);
      const next = change(saga);
      if (next === undefined) return saga;
      if (await this.compareAndSet(orderId, raw, next)) return next;
    }
    throw new TransientError(`saga ${orderId} kept changing under us`);
  }

  /** Records that `eventId` was applied, keeping only the most recent ids. */
  static seenWith(seen: readonly string[], eventId: string | undefined): string[] {
    return eventId === undefined ? [...seen] : [...seen, eventId].slice(-SEEN_KEPT);
  }

  /** Orders whose deadline or compensation retry is due at `nowMs`. */
  dueOrders(nowMs: number, limit: number): Promise<string[]> {
    return this.#redis.zrangebyscore(this.keys("saga-due"), "-inf", nowMs, "LIMIT", 0, limit);
  }

  /** Orders with effects still to carry out that were decided at `decidedBeforeMs` or earlier. */
  ordersWithOutbox(decidedBeforeMs: number, limit: number): Promise<string[]> {
    return this.#redis.zrangebyscore(this.keys("saga-outbox-since"), "-inf", decidedBeforeMs, "LIMIT", 0, limit);
  }

  /** Takes the per-order flush lock for `ms`; false when another flusher holds it. */
  async lockFlush(orderId: string, ms: number): Promise<boolean> {
    return (await this.#redis.set(this.keys("saga", orderId, "flushing"), "1", "PX", ms, "NX")) === "OK";
  }

  async unlockFlush(orderId: string): Promise<void> {
    await this.#redis.del(this.keys("saga", orderId, "flushing"));
  }

  /** Records a parked compensation for operators. */
  async park(orderId: string, entry: Extract<OutboxEntry, { kind: "park" }>, nowMs: number): Promise<void> {
    const parked: ParkedRecord = { id: entry.id, orderId, action: entry.compensation.toUpperCase(), attempts: entry.attempts, parkedAtMs: nowMs };
    await this.#redis.hset(this.keys("parked"), entry.id, JSON.stringify(parked));
  }

  /** The compensations parked and not yet resolved, oldest first. */
  async listParked(): Promise<ParkedRecord[]> {
    const all = Object.values(await this.#redis.hgetall(this.keys("parked"))).map((raw) => JSON.parse(raw) as ParkedRecord);
    return all.sort((a, b) => a.parkedAtMs - b.parkedAtMs || a.id.localeCompare(b.id));
  }

  /**
   * Resolves a parked compensation; undefined when no such one is parked (unknown, or resolved
   * already — the first resolver takes it off the list). With `retry`, the compensation goes back
   * into the saga as pending with no attempts and due at `nowMs`, so the timer sends it again at
   * once with its full number of attempts (and parks it again if it keeps failing). Without, it is
   * only taken off the list: an operator handled it by hand.
   */
  async resolveParked(id: string, retry: boolean, nowMs: number): Promise<ParkedRecord | undefined> {
    const raw = await this.#redis.hget(this.keys("parked"), id);
    if (raw === null || (await this.#redis.hdel(this.keys("parked"), id)) === 0) return undefined;
    const parked = JSON.parse(raw) as ParkedRecord;
    if (!retry) return parked;
    const compensation = parked.action.toLowerCase() as Compensation;
    try {
      const saga = await this.update(parked.orderId, (current) => {
        if (current === undefined) return undefined;
        const { state } = current;
        const at = state.parked.indexOf(compensation);
        return {
          ...current,
          state: {
            ...state,
            parked: at < 0 ? state.parked : [...state.parked.slice(0, at), ...state.parked.slice(at + 1)],
            pending: { ...state.pending, [compensation]: { attempts: 0, dueMs: nowMs } },
          },
        };
      });
      if (saga === undefined) throw new RejectedError(`no saga for order ${parked.orderId}: nothing to retry`);
    } catch (err) {
      // Not retried: it stays parked.
      await this.#redis.hset(this.keys("parked"), id, raw);
      throw err;
    }
    return parked;
  }
}
