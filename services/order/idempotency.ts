/**
 * Idempotency-Key records of the order API: a key is bound to one order id (and the event id and
 * time of its orders.created) by the first attempt, and every attempt after that publishes under
 * the same binding or answers with it — so a key makes an order accepted once or never.
 *
 * A key's record (a Redis hash, `idem:<key>`) lives 24 h from its first claim and is in one of
 * these states:
 * - pending, leased: an attempt holds the lease (`lease_until`, Redis server time) and is publishing;
 *   another attempt with the same body answers "in progress" (409).
 * - pending, lease expired or released: the last attempt crashed, or its publish was not
 *   acknowledged (the record may still have been written). The next attempt takes the lease over —
 *   atomically, so of two racing retries exactly one does — and republishes under the bound ids.
 * - done: orders.created was acknowledged; every later attempt with the same body is answered with
 *   the bound order id.
 * Another body under a used key is refused (409) in every state. The lease outlasts the producer's
 * delivery timeout (config), so a live attempt is not taken over while its produce may still be acked.
 *
 * The fingerprint of a request is an HMAC-SHA256 of its proto JSON, keyed with a secret: the body
 * holds the full card number, and an unkeyed hash of it could be brute-forced from the last four
 * digits. The card stays in the fingerprint (a retry with another card is another request). The
 * secret comes from IDEMPOTENCY_SECRET (set it in production), or else is made once in Redis and
 * shared by every instance; each instance reads it once, so if Redis loses it (and with it every
 * key's record) while instances run, they may disagree until restarted: a retry may then be refused
 * as another body (409), never made a second order.
 */
import { createHmac, randomBytes } from "node:crypto";
import { toJsonString } from "@bufbuild/protobuf";
import { PlaceOrderRequestSchema, type PlaceOrderRequest } from "../../gen/orderflow/v1/order_service_pb.ts";
import type { Keys, Redis } from "../../lib/redis.ts";

/** What a key is bound to: the order and its orders.created record's event id and time. */
export interface Binding {
  readonly orderId: string;
  readonly eventId: string;
  readonly createdAtMs: number;
}

/**
 * The outcome of presenting a key: claimed (first attempt) or taken over (an expired lease) → publish
 * under the binding; done → answer with it; busy → another attempt holds the lease; conflict → the
 * key was used with another body.
 */
export type Claim =
  | { readonly kind: "claimed" | "taken-over" | "done"; readonly binding: Binding }
  | { readonly kind: "busy" | "conflict" };

/** How long a key's record lives after its first claim. */
export const IDEMPOTENCY_LIFETIME_S = 24 * 60 * 60;

// KEYS[1] the key's record. ARGV: fingerprint, order id, event id, created-at ms, lease ms, lifetime s.
const claimScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease_until = now + tonumber(ARGV[5])
local rec = redis.call('HMGET', KEYS[1], 'fp', 'order_id', 'event_id', 'created_at', 'state', 'lease_until')
if not rec[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'order_id', ARGV[2], 'event_id', ARGV[3], 'created_at', ARGV[4], 'state', 'pending', 'lease_until', lease_until)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return {'claimed', ARGV[2], ARGV[3], ARGV[4]}
end
if rec[1] ~= ARGV[1] then return {'conflict'} end
if rec[5] == 'done' then return {'done', rec[2], rec[3], rec[4]} end
if tonumber(rec[6]) > now then return {'busy'} end
redis.call('HSET', KEYS[1], 'lease_until', lease_until)
return {'taken-over', rec[2], rec[3], rec[4]}`;

// KEYS[1] the key's record. ARGV: order id, state. A record that expired is not recreated.
const settleScript = `
if redis.call('HGET', KEYS[1], 'order_id') ~= ARGV[1] then return 0 end
if ARGV[2] == 'done' then redis.call('HSET', KEYS[1], 'state', 'done')
elseif redis.call('HGET', KEYS[1], 'state') == 'pending' then redis.call('HSET', KEYS[1], 'lease_until', 0) end
return 1`;

type IdempotencyRedis = Redis & {
  idempotencyClaim(record: string, ...args: string[]): Promise<string[]>;
  idempotencySettle(record: string, orderId: string, state: "done" | "released"): Promise<number>;
};

export interface IdempotencySettings {
  /** How long an attempt holds a key before a retry may take it over; longer than the delivery timeout. */
  readonly leaseMs: number;
  /** The fingerprint secret; unset → one made once in Redis. */
  readonly secret?: string;
}

export class IdempotencyKeys {
  readonly #redis: IdempotencyRedis;
  #secret: Promise<string> | undefined;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly settings: IdempotencySettings,
  ) {
    redis.defineCommand("idempotencyClaim", { numberOfKeys: 1, lua: claimScript });
    redis.defineCommand("idempotencySettle", { numberOfKeys: 1, lua: settleScript });
    this.#redis = redis as IdempotencyRedis;
  }

  #record(key: string): string {
    return this.keys("idem", key);
  }

  /** The configured secret, or the one every instance shares in Redis (made by whoever came first). */
  #fingerprintSecret(): Promise<string> {
    if (this.settings.secret !== undefined) return Promise.resolve(this.settings.secret);
    this.#secret ??= (async () => {
      const made = randomBytes(32).toString("base64url");
      const earlier = await this.#redis.set(this.keys("idem-secret"), made, "NX", "GET");
      return earlier ?? made;
    })().catch((err: unknown) => {
      this.#secret = undefined;
      throw err;
    });
    return this.#secret;
  }

  /** The keyed fingerprint of a request (hex HMAC-SHA256 of its proto JSON). */
  async fingerprint(request: PlaceOrderRequest): Promise<string> {
    return createHmac("sha256", await this.#fingerprintSecret()).update(toJsonString(PlaceOrderRequestSchema, request)).digest("hex");
  }

  /** Presents `key` with a request's fingerprint; `fresh` is the binding a first claim records. */
  async claim(key: string, fingerprint: string, fresh: Binding): Promise<Claim> {
    const [kind, orderId, eventId, createdAt] = await this.#redis.idempotencyClaim(
      this.#record(key),
      fingerprint,
      fresh.orderId,
      fresh.eventId,
      String(fresh.createdAtMs),
      String(this.settings.leaseMs),
      String(IDEMPOTENCY_LIFETIME_S),
    );
    if (kind === "busy" || kind === "conflict") return { kind };
    if ((kind === "claimed" || kind === "taken-over" || kind === "done") && orderId !== undefined && eventId !== undefined) {
      return { kind, binding: { orderId, eventId, createdAtMs: Number(createdAt) } };
    }
    throw new Error(`unexpected idempotency claim answer ${JSON.stringify(kind)}`);
  }

  /** orders.created of the key's order was acknowledged: later attempts are answered with it. */
  async complete(key: string, orderId: string): Promise<void> {
    await this.#redis.idempotencySettle(this.#record(key), orderId, "done");
  }

  /** The attempt's publish failed: its lease ends now, so a retry takes over at once (the binding stays). */
  async release(key: string, orderId: string): Promise<void> {
    await this.#redis.idempotencySettle(this.#record(key), orderId, "released");
  }
}
