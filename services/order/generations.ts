/**
 * Generations of the order read model. The model's keys live in a generation: generation 0 under
 * the service prefix itself (order:{id}, orders, …, the names the model always had), generation n
 * under "gen{n}:" (gen3:order:{id}, gen3:orders, …). A pointer key, readmodel:live, names the live
 * generation (absent: 0); every reader resolves it inside the same script that reads, so a read is
 * wholly of one generation.
 *
 * A rebuild works in a generation of its own: it claims readmodel:rebuild (one at a time — a second
 * claim is refused while the first holds it), clears what a crashed rebuild may have left in that
 * generation, opens it to the live projection's writes, replays the log into it, carries over what
 * the log no longer has, and then swaps it in with one script that moves the pointer; the old
 * generation is removed afterwards in bounded batches (readers no longer reach it). The claim is a
 * lease the rebuild renews, carrying an owner token that every one of its writes checks, so a
 * rebuild that stalled past its lease can never write over, or swap in over, one that took over.
 *
 * Lifetimes: the pointer lives READ_MODEL_TTL_MS, renewed by every live write, so it outlives every
 * key of the generation it names; the claim lives for its lease.
 *
 * The scripts build the generation's key names from the pointer's value, so they need a single
 * Redis (not a cluster), as the rest of orderflow does.
 */
import { randomUUID } from "node:crypto";
import { RejectedError } from "../../lib/errors.ts";
import type { Keys, Redis } from "../../lib/redis.ts";

/**
 * Lua prelude of every script that reaches a generation: ARGV[1] is the key base (the service
 * prefix followed by ':'), KEYS[1] the live pointer.
 */
export const generationLua = `
local function generationBase(generation)
  if generation == 0 then return ARGV[1] end
  return ARGV[1] .. 'gen' .. generation .. ':'
end
local function liveGeneration() return tonumber(redis.call('GET', KEYS[1]) or '0') end`;

/** The key base the scripts build generation keys on: the service prefix and its separator. */
export const keyBase = (keys: Keys): string => keys("");

/** The pointer naming the live generation. */
export const livePointerKey = (keys: Keys): string => keys("readmodel", "live");

/** The claim of the rebuild in progress (a hash: owner, generation, writing, started_at). */
export const rebuildClaimKey = (keys: Keys): string => keys("readmodel", "rebuild");

/** Key names of one generation: generation 0's are the service's own. */
export function generationKeys(keys: Keys, generation: number): Keys {
  return generation === 0 ? keys : (...parts) => keys(`gen${generation}`, ...parts);
}

/** The generation readers see now. */
export async function liveGeneration(redis: Redis, keys: Keys): Promise<number> {
  return Number((await redis.get(livePointerKey(keys))) ?? "0");
}

/**
 * Key names of the live generation, for readers that read keys directly (tests, the fault suite's
 * polling): valid until the next swap, after which they name a generation being removed.
 */
export async function liveKeys(redis: Redis, keys: Keys): Promise<Keys> {
  return generationKeys(keys, await liveGeneration(redis, keys));
}

/** A rebuild's hold on its generation. */
export interface RebuildClaim {
  /** The generation the rebuild writes. */
  readonly generation: number;
  /** Checked by every write of the rebuild: a token no other rebuild has. */
  readonly owner: string;
}

/** Refusal of a rebuild while another one holds the claim. */
export class RebuildRunningError extends RejectedError {
  override readonly name: string = "RebuildRunningError";
}

/** Claims the next generation, or answers who holds the claim: {1, generation} or {0, generation, started_at}. */
const claimScript = `${generationLua}
local held = redis.call('HMGET', KEYS[2], 'generation', 'started_at')
if held[1] then return {0, tonumber(held[1]), held[2]} end
local generation = liveGeneration() + 1
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'generation', generation, 'writing', '0', 'started_at', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1, generation}`;

/** Runs a change only while the claim is the caller's: ARGV[2] owner; ARGV[3] the change. */
const whileClaimedScript = `${generationLua}
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[2] then return redis.error_reply('REBUILD_LOST the rebuild no longer holds the read model (its claim lapsed or was taken over)') end
if ARGV[3] == 'renew' then
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
elseif ARGV[3] == 'open' then
  redis.call('HSET', KEYS[2], 'writing', '1')
elseif ARGV[3] == 'release' then
  redis.call('DEL', KEYS[2])
elseif ARGV[3] == 'swap' then
  local old = liveGeneration()
  local generation = redis.call('HGET', KEYS[2], 'generation')
  redis.call('SET', KEYS[1], generation, 'PX', ARGV[4])
  redis.call('DEL', KEYS[2])
  return old
end
return 0`;

type GenerationRedis = Redis & {
  claimReadModelRebuild(livePointer: string, claim: string, base: string, owner: string, startedAt: string, leaseMs: string): Promise<[1, number] | [0, number, string]>;
  whileRebuildClaimed(livePointer: string, claim: string, base: string, owner: string, change: "renew" | "open" | "release" | "swap", ms?: string): Promise<number>;
};

/** Keys removed per command when a generation goes. */
const REMOVAL_BATCH = 500;

/** The generation bookkeeping of one read model (one key prefix). */
export class ReadModelGenerations {
  readonly #redis: GenerationRedis;

  /** `lifetimeMs`: READ_MODEL_TTL_MS, the pointer's lifetime. */
  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly lifetimeMs: number,
    private readonly now: () => number = Date.now,
  ) {
    redis.defineCommand("claimReadModelRebuild", { numberOfKeys: 2, lua: claimScript });
    redis.defineCommand("whileRebuildClaimed", { numberOfKeys: 2, lua: whileClaimedScript });
    this.#redis = redis as GenerationRedis;
  }

  /** The generation readers see now. */
  live(): Promise<number> {
    return liveGeneration(this.#redis, this.keys);
  }

  /** Claims a new generation for a rebuild, held for `leaseMs` unless renewed; refuses while another rebuild holds one. */
  async claim(leaseMs: number): Promise<RebuildClaim> {
    const owner = randomUUID();
    const answer = await this.#redis.claimReadModelRebuild(
      livePointerKey(this.keys), rebuildClaimKey(this.keys), keyBase(this.keys), owner, new Date(this.now()).toISOString(), String(leaseMs),
    );
    if (answer[0] === 0) {
      throw new RebuildRunningError(`a rebuild of the order read model is already running (generation ${answer[1]}, started ${answer[2]}); try again when it has finished`);
    }
    return { generation: answer[1], owner };
  }

  /** Extends the claim by `leaseMs`; rejects when it is no longer held. */
  async renew(claim: RebuildClaim, leaseMs: number): Promise<void> {
    await this.#change(claim, "renew", String(leaseMs));
  }

  /** From now on, the live projection writes every event to the claimed generation too. */
  async openToLiveWrites(claim: RebuildClaim): Promise<void> {
    await this.#change(claim, "open");
  }

  /** Gives the claim up without swapping (a failed rebuild); its generation is left to `clear` by the next one. */
  async release(claim: RebuildClaim): Promise<void> {
    await this.#change(claim, "release");
  }

  /** Makes the claimed generation the live one and ends the claim, in one step; returns the generation it replaced. */
  async swap(claim: RebuildClaim): Promise<number> {
    return this.#change(claim, "swap", String(this.lifetimeMs));
  }

  #change(claim: RebuildClaim, change: "renew" | "open" | "release" | "swap", ms?: string): Promise<number> {
    const args = [livePointerKey(this.keys), rebuildClaimKey(this.keys), keyBase(this.keys), claim.owner, change] as const;
    return ms === undefined ? this.#redis.whileRebuildClaimed(...args) : this.#redis.whileRebuildClaimed(...args, ms);
  }

  /** The order ids that have a view in `generation` (scanned: every order, listed or not). */
  async *orderIds(generation: number): AsyncGenerator<string[]> {
    const prefix = generationKeys(this.keys, generation)("order", "");
    let cursor = "0";
    do {
      const [next, found] = await this.#redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      const ids = found.map((key) => key.slice(prefix.length)).filter((id) => !id.includes(":"));
      if (ids.length > 0) yield ids;
    } while (cursor !== "0");
  }

  /**
   * Deletes every key of `generation` in batches (UNLINK: freed off the main thread), never the
   * live one's. Returns how many keys went.
   */
  async remove(generation: number): Promise<number> {
    if (generation === (await this.live())) throw new Error(`generation ${generation} is live; it cannot be removed`);
    const keys = generationKeys(this.keys, generation);
    let removed = 0;
    for (const pattern of [keys("order", "*"), keys("orders"), keys("orders", "*")]) {
      let cursor = "0";
      do {
        const [next, found] = await this.#redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        for (let i = 0; i < found.length; i += REMOVAL_BATCH) removed += await this.#redis.unlink(...found.slice(i, i + REMOVAL_BATCH));
      } while (cursor !== "0");
    }
    return removed;
  }
}
