/**
 * A repeating task whose interval is read again after every run, so a changed setting applies at
 * the next run without a restart. Runs never overlap: the next one is scheduled when the previous
 * one has finished.
 */

export interface Schedule {
  /** Stops the schedule and waits for a run in progress. */
  stop(): Promise<void>;
}

export interface ScheduleOptions {
  /** Delay before the first run (default: one interval). */
  firstDelayMs?: number;
  /** While the interval reads as null (switched off), how often to look again (default one minute). */
  offRecheckMs?: number;
  /** A failed run or interval read; the schedule goes on. */
  onError(e: unknown): void;
}

/**
 * @example
 * const s = every(() => settings.durationMs("alert-evaluation-interval"), (signal) => evaluate(signal), { onError: log });
 * await s.stop();
 */
export function every(readIntervalMs: () => Promise<number | null>, task: (signal: AbortSignal) => Promise<void>, o: ScheduleOptions): Schedule {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const next = async (): Promise<number> => {
    try {
      return (await readIntervalMs()) ?? -1;
    } catch (e) {
      o.onError(e);
      return o.offRecheckMs ?? 60_000;
    }
  };
  const plan = (delay: number): void => {
    if (abort.signal.aborted) return;
    timer = setTimeout(() => void tick(), Math.max(0, delay));
    // The servers keep the process alive; a schedule alone should not.
    timer.unref();
  };
  const tick = async (): Promise<void> => {
    timer = undefined;
    const interval = await next();
    if (abort.signal.aborted) return;
    if (interval < 0) return plan(o.offRecheckMs ?? 60_000); // off: look again later
    running = task(abort.signal).catch((e: unknown) => o.onError(e));
    await running;
    running = undefined;
    plan(await next());
  };

  void (async () => {
    if (o.firstDelayMs !== undefined) return plan(o.firstDelayMs);
    const interval = await next();
    plan(interval < 0 ? (o.offRecheckMs ?? 60_000) : interval);
  })();

  return {
    async stop() {
      abort.abort();
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
