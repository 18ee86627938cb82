/**
 * The bounds on WatchOrder streams in one process: at most `maxStreams` open at once and
 * `maxStreamsPerCaller` for one token subject (ResourceExhausted beyond either), and each ended
 * cleanly after `maxLifetimeMs`, after which the client may watch again. A stream is a poll loop
 * over Redis for as long as it lasts, so without them one client could hold any number open.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { RpcLimits } from "../../lib/config.ts";

/** One open stream: `signal` aborts when the client leaves or the lifetime ends; `close` frees the slot. */
export interface WatchSlot {
  readonly signal: AbortSignal;
  close(): void;
}

export function createWatchSlots(limits: RpcLimits["watch"]) {
  let open = 0;
  const byCaller = new Map<string, number>();

  return {
    /** Streams open now, in all and for `subject`. */
    count(subject?: string): number {
      return subject === undefined ? open : (byCaller.get(subject) ?? 0);
    },

    /** Takes a slot for `subject` (ResourceExhausted when none is free), ending with `clientSignal`. */
    take(subject: string, clientSignal?: AbortSignal): WatchSlot {
      const mine = byCaller.get(subject) ?? 0;
      if (mine >= limits.maxStreamsPerCaller) {
        throw new ConnectError(`at most ${limits.maxStreamsPerCaller} WatchOrder streams may be open per caller; close one first`, Code.ResourceExhausted);
      }
      if (open >= limits.maxStreams) throw new ConnectError("too many WatchOrder streams are open on this server; retry later", Code.ResourceExhausted);
      open += 1;
      byCaller.set(subject, mine + 1);
      const ended = new AbortController();
      const end = () => ended.abort();
      const lifetime = setTimeout(end, limits.maxLifetimeMs);
      clientSignal?.addEventListener("abort", end, { once: true });
      let closed = false;
      return {
        signal: ended.signal,
        close() {
          if (closed) return;
          closed = true;
          clearTimeout(lifetime);
          clientSignal?.removeEventListener("abort", end);
          open -= 1;
          const left = (byCaller.get(subject) ?? 1) - 1;
          if (left === 0) byCaller.delete(subject);
          else byCaller.set(subject, left);
        },
      };
    },
  };
}

export type WatchSlots = ReturnType<typeof createWatchSlots>;
