/**
 * Reconnection delays: exponential with "equal jitter" (half fixed, half random), so many
 * connection points that lost the same instance do not all dial back in the same millisecond,
 * and a delay is never close to zero in a tight failure loop.
 */

export interface BackoffOptions {
  /** First delay, ms (default 500). */
  minDelayMs?: number;
  /** Largest delay, ms (default 30 s). */
  maxDelayMs?: number;
}

/**
 * Delay before attempt `attempt` (0 = first retry).
 *
 * @example
 * backoffDelay(0) // 250..500 ms;  backoffDelay(10) // 15..30 s
 */
export function backoffDelay(attempt: number, o: BackoffOptions = {}, random: () => number = Math.random): number {
  const min = o.minDelayMs ?? 500;
  const max = o.maxDelayMs ?? 30_000;
  const cap = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
