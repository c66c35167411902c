/**
 * Limits on each client's status messages: one device must not fill the site database. A token
 * bucket per client (a rate per minute with a burst, in this management point's memory) and a
 * count per 24 hours (from the database, so it holds across management points and restarts). The
 * defaults are site settings that a real fleet never meets (a client sends a few dozen messages a
 * day) and a flood always does. A refused upload stores nothing and is answered 429 with
 * Retry-After; the client keeps the messages queued and sends them again then, so a well-behaved
 * client loses none.
 *
 * Refusals are counted per client (`clients.status_refused`, written at most once a second per
 * client, not once per refused upload) and logged once when a client crosses a limit and once
 * when it is back under it, not once per message.
 */
import type { ComponentLog } from "../../logs/cmtrace.ts";

export interface StatusLimits {
  /** Messages a client may upload per minute, sustained. */
  perMinute: number;
  /** Messages above the rate at once (at least one full upload). */
  burst: number;
  /** Messages stored from one client in any 24 hours. */
  perDay: number;
}

export type StatusLimitScope = "rate" | "day";

export type StatusVerdict = { allowed: true } | { allowed: false; scope: StatusLimitScope; retryAfterSeconds: number; limits: StatusLimits };

export interface StatusLimiterDeps {
  /** The limits as the site settings give them now (read again every `limitsTtlMs`). */
  readLimits(): Promise<StatusLimits>;
  /** Messages of `clientId` that arrived at `since` or later. */
  countSince(clientId: string, since: Date): Promise<number>;
  /** Adds `n` refused messages to the client's counter. */
  noteRefused(clientId: string, n: number): Promise<void>;
  /** A refused or accepted upload, by result, for the metrics. */
  onVerdict?(result: "refused_rate" | "refused_day", messages: number): void;
  log: ComponentLog;
  now?: () => number;
  limitsTtlMs?: number;
}

/** Buckets kept at most; the least recently used go first (many clients cannot grow memory without bound). */
const MAX_CLIENTS = 100_000;
const DAY_MS = 24 * 60 * 60_000;
/** A client over its daily count tries again after this (the oldest messages leave the 24 hours one by one). */
const DAY_RETRY_SECONDS = 3600;
const FLUSH_EVERY_MS = 1000;

interface ClientState {
  tokens: number;
  at: number;
  /** Over a limit since the last accepted upload (the crossing was logged). */
  over: StatusLimitScope | undefined;
  /** Refused messages not yet added to the database counter. */
  pendingRefused: number;
  refusedSinceCrossing: number;
  flushedAt: number;
  /** A later write of what is refused within a second of the last one. */
  timer: NodeJS.Timeout | undefined;
}

export class StatusLimiter {
  readonly #d: StatusLimiterDeps;
  readonly #now: () => number;
  readonly #clients = new Map<string, ClientState>();
  #limits: { at: number; value: StatusLimits } | undefined;
  #flushes = new Set<Promise<void>>();

  constructor(deps: StatusLimiterDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
  }

  async limits(): Promise<StatusLimits> {
    const now = this.#now();
    if (!this.#limits || now - this.#limits.at > (this.#d.limitsTtlMs ?? 10_000)) this.#limits = { at: now, value: await this.#d.readLimits() };
    return this.#limits.value;
  }

  /**
   * Counts an upload of `n` messages by `clientId` (`who` names it in log lines). Nothing is taken
   * when the upload is refused, so the messages can come again.
   */
  async take(clientId: string, who: string, n: number): Promise<StatusVerdict> {
    const limits = await this.limits();
    const now = this.#now();
    const state = this.#state(clientId, limits, now);
    state.tokens = Math.min(limits.burst, state.tokens + ((now - state.at) * limits.perMinute) / 60_000);
    state.at = now;
    // The bucket first: it costs nothing, and under a flood it refuses nearly every upload.
    if (state.tokens < n) {
      const retryAfterSeconds = Math.max(1, Math.ceil(((n - state.tokens) * 60) / limits.perMinute));
      return this.#refuse(clientId, who, state, n, { allowed: false, scope: "rate", retryAfterSeconds, limits });
    }
    state.tokens -= n;
    const stored = await this.#d.countSince(clientId, new Date(now - DAY_MS));
    if (stored + n > limits.perDay) {
      state.tokens = Math.min(limits.burst, state.tokens + n);
      return this.#refuse(clientId, who, state, n, { allowed: false, scope: "day", retryAfterSeconds: DAY_RETRY_SECONDS, limits });
    }
    if (state.over) {
      this.#d.log.info(`Client ${who} is back under its status message limits: ${state.refusedSinceCrossing} message(s) were refused meanwhile (the client sends them again).`);
      state.over = undefined;
      state.refusedSinceCrossing = 0;
      this.#flush(clientId, state, now);
    }
    return { allowed: true };
  }

  /** Writes the refused counts still held in memory; resolves when every write is done. */
  async close(): Promise<void> {
    const now = this.#now();
    for (const [id, s] of this.#clients) this.#flush(id, s, now);
    await Promise.allSettled([...this.#flushes]);
  }

  #state(clientId: string, limits: StatusLimits, now: number): ClientState {
    let s = this.#clients.get(clientId);
    if (s) this.#clients.delete(clientId); // re-inserted: Map order is recency
    else {
      s = { tokens: limits.burst, at: now, over: undefined, pendingRefused: 0, refusedSinceCrossing: 0, flushedAt: 0, timer: undefined };
      if (this.#clients.size >= MAX_CLIENTS) {
        const [oldId, old] = this.#clients.entries().next().value!;
        this.#flush(oldId, old, now);
        this.#clients.delete(oldId);
      }
    }
    this.#clients.set(clientId, s);
    return s;
  }

  #refuse(clientId: string, who: string, s: ClientState, n: number, v: Extract<StatusVerdict, { allowed: false }>): StatusVerdict {
    this.#d.onVerdict?.(v.scope === "rate" ? "refused_rate" : "refused_day", n);
    s.pendingRefused += n;
    s.refusedSinceCrossing += n;
    if (s.over !== v.scope) {
      const what = v.scope === "rate" ? `${v.limits.perMinute} status messages a minute (burst ${v.limits.burst}, site settings client-status-rate and client-status-burst)` : `${v.limits.perDay} status messages in 24 hours (site setting client-status-per-day)`;
      this.#d.log.warn(`Client ${who} crossed its limit of ${what}: its uploads are refused with 429 (Retry-After ${v.retryAfterSeconds} s) and counted, not logged one by one, until it is back under it.`);
      s.over = v.scope;
    }
    const now = this.#now();
    if (now - s.flushedAt >= FLUSH_EVERY_MS) this.#flush(clientId, s, now);
    else if (!s.timer) {
      s.timer = setTimeout(() => this.#flush(clientId, s, this.#now()), FLUSH_EVERY_MS);
      s.timer.unref();
    }
    return v;
  }

  #flush(clientId: string, s: ClientState, now: number): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    if (s.pendingRefused === 0) return;
    const n = s.pendingRefused;
    s.pendingRefused = 0;
    s.flushedAt = now;
    const p = this.#d
      .noteRefused(clientId, n)
      .catch((e: unknown) => this.#d.log.warn(`Could not count ${n} refused status message(s) of client ${clientId}: ${(e as Error).message}`))
      .finally(() => this.#flushes.delete(p));
    this.#flushes.add(p);
  }
}
