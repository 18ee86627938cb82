/**
 * Where the orchestrator keeps each saga: one Redis hash per order, `saga:{order}`, holding
 *   v          the version, bumped by every decision written (absent = no saga, version "0");
 *   saga       the saga state, the event ids already applied (a redelivery changes nothing) and
 *              the order's trace context, as JSON;
 *   out:{id}   one outbox entry per effect decided and not yet carried out (outbox.ts);
 *   cancel     a cancel that came before the order (no `saga` yet), with its event id, as JSON:
 *              kept under its own version so that the order's first write, which expects no saga,
 *              conflicts and is handed it back (the saga then starts cancelled); that write drops it.
 * A decision is written by one script call that checks the version it was decided on, stores the
 * state and the new entries and keeps two indexes right (orders by due time; orders with an outbox
 * by the age of its oldest entry, so the timer finds leftovers without visiting every order in
 * flight). On a version mismatch the script hands back what is stored instead, so a writer that
 * decided on an old copy (a cache, another instance, the timer) decides again without a separate
 * read. Carried-out entries leave by field, which commutes with decisions and needs no version;
 * removals requested together go out in one pipeline.
 *
 * Lifetime: the hash is the orchestrator's dedup record (its `seen` ids answer redeliveries), so
 * while the saga is not settled (saga.ts isSettled) it is kept without expiry, and every write of a
 * settled saga sets it to expire `lifetimeMs` later (REDIS_DEDUP_TTL_MS, longer than any
 * redelivery). A cancel kept before its order expires `lifetimeMs` after it was kept, like a
 * settled saga (an order accepted that long ago is long past its orders.created). The indexes
 * hold only sagas with work to do (which never expire); `parked` keeps what an operator has to
 * resolve until it is resolved.
 */
import { RejectedError, TransientError } from "../../lib/errors.ts";
import type { Keys, Redis } from "../../lib/redis.ts";
import { entryCreatedMs, type OutboxEntry } from "./outbox.ts";
import { isSettled, nextDueMs, type Compensation, type EarlyCancel, type SagaState } from "./saga.ts";

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
  /** The trace context of the order (W3C headers), so timer work joins the order's trace. */
  readonly trace?: Readonly<Record<string, string>>;
}

/** A cancel kept before its order arrived, with the event ids applied so far (its own). */
export interface StoredEarlyCancel {
  readonly cancel: EarlyCancel;
  readonly seen: readonly string[];
}

/**
 * A saga as read at one version; version "0" and no saga when the order has none. Without a saga,
 * `earlyCancel` is the cancel kept for the order, if any.
 */
export interface Versioned {
  readonly version: string;
  readonly saga: StoredSaga | undefined;
  readonly earlyCancel?: StoredEarlyCancel;
}

export const absent: Versioned = { version: "0", saga: undefined };

/** What a write did: stored at a new version, or found another version (handed back) and stored nothing. */
export type WriteResult = { readonly written: true; readonly stored: Versioned } | { readonly written: false; readonly current: Versioned };

const SEEN_KEPT = 64;
const CAS_ATTEMPTS = 20;
const OUTBOX_FIELD = "out:";

const writeScript = `
local version = redis.call('HGET', KEYS[1], 'v') or '0'
if version ~= ARGV[1] then return {0, version, redis.call('HGET', KEYS[1], 'saga'), redis.call('HGET', KEYS[1], 'cancel')} end
local next = tostring(tonumber(version) + 1)
redis.call('HSET', KEYS[1], 'v', next, 'saga', ARGV[2])
redis.call('HDEL', KEYS[1], 'cancel')
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[3] == '' then redis.call('ZREM', KEYS[2], ARGV[4]) else redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[4]) end
if ARGV[6] == '' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
return {1, next}`;

/** Keeps a cancel for an order with no saga yet, at the next version; hands back what is there on a mismatch. */
const keepCancelScript = `
local version = redis.call('HGET', KEYS[1], 'v') or '0'
if version ~= ARGV[1] then return {0, version, redis.call('HGET', KEYS[1], 'saga'), redis.call('HGET', KEYS[1], 'cancel')} end
local next = tostring(tonumber(version) + 1)
redis.call('HSET', KEYS[1], 'v', next, 'cancel', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, next}`;

/** Deletes outbox fields; re-indexes the order by its oldest remaining entry (UUIDv7 milliseconds). */
const removeScript = `
local removed = {}
for i = 2, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then table.insert(removed, ARGV[i]) end
end
if #removed > 0 then
  local oldest = nil
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(field, 1, 4) == 'out:' then
      local ms = tonumber(string.sub(field, 5, 12) .. string.sub(field, 14, 17), 16)
      if oldest == nil or ms < oldest then oldest = ms end
    end
  end
  if oldest == nil then redis.call('ZREM', KEYS[2], ARGV[1]) else redis.call('ZADD', KEYS[2], oldest, ARGV[1]) end
end
return removed`;

type SagaRedis = Redis & {
  sagaWrite(sagaKey: string, dueKey: string, outboxKey: string, version: string, saga: string, due: string, orderId: string, outboxSince: string, expireAfterMs: string, ...entries: string[]): Promise<[number, string, string | null, string | null]>;
  sagaKeepCancel(sagaKey: string, version: string, cancel: string, expireAfterMs: string): Promise<[number, string, string | null, string | null]>;
  sagaOutboxRemove(sagaKey: string, outboxKey: string, orderId: string, ...fields: string[]): Promise<string[]>;
};

function parse(version: string | null, raw: string | null, cancel: string | null): Versioned {
  if (version === null) return absent;
  if (raw !== null) return { version, saga: JSON.parse(raw) as StoredSaga };
  return { version, saga: undefined, ...(cancel === null ? {} : { earlyCancel: JSON.parse(cancel) as StoredEarlyCancel }) };
}

export class SagaStore {
  readonly #redis: SagaRedis;
  /** Removals requested in this turn of the event loop, sent together at its end. */
  #removals: { orderId: string; ids: readonly string[]; resolve: (removed: ReadonlySet<string>) => void; reject: (err: unknown) => void }[] = [];

  /** `lifetimeMs`: how long a settled saga's record is kept after its last write. */
  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly lifetimeMs: number,
  ) {
    redis.defineCommand("sagaWrite", { numberOfKeys: 3, lua: writeScript });
    redis.defineCommand("sagaOutboxRemove", { numberOfKeys: 2, lua: removeScript });
    redis.defineCommand("sagaKeepCancel", { numberOfKeys: 1, lua: keepCancelScript });
    this.#redis = redis as SagaRedis;
  }

  async load(orderId: string): Promise<Versioned> {
    const [version, raw, cancel] = await this.#redis.hmget(this.keys("saga", orderId), "v", "saga", "cancel");
    return parse(version ?? null, raw ?? null, cancel ?? null);
  }

  /** The saga's outbox, oldest decision first. */
  async outbox(orderId: string): Promise<OutboxEntry[]> {
    const fields = await this.#redis.hgetall(this.keys("saga", orderId));
    return Object.entries(fields)
      .filter(([field]) => field.startsWith(OUTBOX_FIELD))
      .map(([, raw]) => JSON.parse(raw) as OutboxEntry)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Stores `next` and appends `entries` to the outbox if the saga is still at `version`; else
   * stores nothing and returns what is there. One script call.
   */
  async write(orderId: string, version: string, next: StoredSaga, entries: readonly OutboxEntry[]): Promise<WriteResult> {
    const due = nextDueMs(next.state);
    const first = entries[0];
    const [written, stored, raw, cancel] = await this.#redis.sagaWrite(
      this.keys("saga", orderId),
      this.keys("saga-due"),
      this.keys("saga-outbox-since"),
      version,
      JSON.stringify(next),
      due === undefined ? "" : String(due),
      orderId,
      first === undefined ? "" : String(entryCreatedMs(first)),
      isSettled(next.state) ? String(this.lifetimeMs) : "",
      ...entries.flatMap((entry) => [OUTBOX_FIELD + entry.id, JSON.stringify(entry)]),
    );
    return written === 1 ? { written: true, stored: { version: stored, saga: next } } : { written: false, current: parse(stored, raw, cancel) };
  }

  /**
   * Keeps a cancel for an order that has no saga yet, if the record is still at `version`; else
   * keeps nothing and returns what is there (the order may have arrived meanwhile). One script call.
   */
  async keepEarlyCancel(orderId: string, version: string, early: StoredEarlyCancel): Promise<WriteResult> {
    const [written, stored, raw, cancel] = await this.#redis.sagaKeepCancel(this.keys("saga", orderId), version, JSON.stringify(early), String(this.lifetimeMs));
    return written === 1 ? { written: true, stored: { version: stored, saga: undefined, earlyCancel: early } } : { written: false, current: parse(stored, raw, cancel) };
  }

  /**
   * Applies `change` to the stored saga under compare-and-set, retrying on conflict. `change`
   * returns the next state, or undefined to leave it as it is. For writers outside the saga's
   * consumer (an operator's retry of a parked compensation).
   */
  async update(orderId: string, change: (saga: StoredSaga | undefined) => StoredSaga | undefined): Promise<StoredSaga | undefined> {
    let current = await this.load(orderId);
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt += 1) {
      const next = change(current.saga);
      if (next === undefined) return current.saga;
      const result = await this.write(orderId, current.version, next, []);
      if (result.written) return next;
      current = result.current;
    }
    throw new TransientError(`saga ${orderId} kept changing under us`);
  }

  /**
   * Removes carried-out entries from the saga's outbox and resolves to the ids this call removed
   * (an entry another caller removed first is not among them). Removals asked for in the same turn
   * of the event loop — the after-commit steps of one transaction — leave in one pipeline.
   */
  removeFromOutbox(orderId: string, ids: readonly string[]): Promise<ReadonlySet<string>> {
    return new Promise((resolve, reject) => {
      if (this.#removals.length === 0) setImmediate(() => this.#sendRemovals());
      this.#removals.push({ orderId, ids, resolve, reject });
    });
  }

  #sendRemovals(): void {
    const batch = this.#removals;
    this.#removals = [];
    const pipeline = this.#redis.pipeline();
    // A pipeline queues a script command (defined on the connection) and answers in exec().
    const queued = pipeline as unknown as Pick<SagaRedis, "sagaOutboxRemove">;
    for (const { orderId, ids } of batch) {
      void queued.sagaOutboxRemove(this.keys("saga", orderId), this.keys("saga-outbox-since"), orderId, ...ids.map((id) => OUTBOX_FIELD + id));
    }
    void pipeline.exec().then(
      (replies) =>
        batch.forEach(({ resolve, reject }, at) => {
          const [err, removed] = replies?.[at] ?? [new Error("no reply to an outbox removal"), []];
          if (err) reject(err);
          else resolve(new Set((removed as string[]).map((field) => field.slice(OUTBOX_FIELD.length))));
        }),
      (err: unknown) => batch.forEach(({ reject }) => reject(err)),
    );
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

  /** Takes the per-order lock for carrying out a left-over outbox for `ms`; false when another holds it. */
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
