/**
 * How many client handshakes a gateway process runs at once, paced by its event loop. A TLS
 * handshake is CPU on the one thread that also relays every established device's requests: in a
 * reconnect storm, hundreds of handshakes in progress make each turn of the loop long, and the
 * devices already back wait seconds for their answers. The limit follows the loop's lag the way
 * TCP follows loss (additive increase, multiplicative decrease): over the target lag it shrinks by
 * 30%, under half the target it grows by an eighth, between `min` and `max` (the admission cap).
 * The storm's excess waits paused in the admission gate, where it costs a socket and no CPU. On an
 * idle process the limit stays at `max`, so devices on slow links (whose handshakes hold places
 * for round trips, not CPU) are not held back.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

export interface PaceOptions {
  /** The fewest handshakes in progress however the loop lags. */
  min: number;
  /** The most: the admission cap (maxPendingConnections). */
  max: number;
  /** Event-loop lag (p99 over one interval) above which fewer handshakes run at once. */
  targetLagMs: number;
  /** How often the lag is read (ms). */
  intervalMs: number;
}

/**
 * The limit after one interval whose loop lag was `lagMs`.
 *
 * @example
 * nextLimit(256, 400, { min: 8, max: 256, targetLagMs: 100 }) // 179
 */
export function nextLimit(limit: number, lagMs: number, o: Pick<PaceOptions, "min" | "max" | "targetLagMs">): number {
  if (lagMs > o.targetLagMs) return Math.max(o.min, Math.floor(limit * 0.7));
  if (lagMs < o.targetLagMs / 2) return Math.min(o.max, limit + Math.max(1, Math.ceil(limit / 8)));
  return Math.min(o.max, Math.max(o.min, limit));
}

/**
 * Reads this process's event-loop lag every `intervalMs` and calls `setLimit` when the limit
 * changes. Stop it with the listener.
 *
 * @example
 * const pace = paceHandshakes((n) => admission.setLimit(n), { min: 8, max: 256, targetLagMs: 100, intervalMs: 250 });
 */
export function paceHandshakes(setLimit: (limit: number) => void, o: PaceOptions): { readonly limit: number; stop(): void } {
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  let limit = o.max;
  const timer = setInterval(() => {
    // Nanoseconds; with no sample in the interval (a loop stalled throughout) the interval itself was the lag.
    const p99 = lag.count > 0 ? lag.percentile(99) / 1e6 : o.intervalMs;
    lag.reset();
    const next = nextLimit(limit, p99, o);
    if (next !== limit) {
      limit = next;
      setLimit(limit);
    }
  }, o.intervalMs);
  timer.unref();
  return {
    get limit() {
      return limit;
    },
    stop() {
      clearInterval(timer);
      lag.disable();
    },
  };
}
