/**
 * Limits on registrations without a certificate. Anyone who can reach an intranet management point
 * can ask to register that way, and each request adds a client row that waits for an
 * administrator: without limits one host fills the database and the approval list. Certificate
 * registrations are not limited here (the certificate already proves the device).
 *
 * Token buckets: per source address and for the whole management point, plus a cap on how many
 * registrations may await approval at once. A refusal is a 429 with Retry-After.
 */

export interface RegistrationLimits {
  /** Requests one source address may make in a burst, then `perSourcePerMinute` a minute. */
  perSourceBurst: number;
  perSourcePerMinute: number;
  /** The same for all sources together. */
  totalBurst: number;
  totalPerMinute: number;
  /** Registrations that may await approval at once; more are refused until some are approved or removed. */
  maxPending: number;
}

export const DEFAULT_REGISTRATION_LIMITS: RegistrationLimits = {
  perSourceBurst: 10,
  perSourcePerMinute: 5,
  totalBurst: 100,
  totalPerMinute: 60,
  maxPending: 10_000,
};

/** Buckets kept per source at most; the least recently used go first (a scan of addresses cannot grow memory). */
const MAX_SOURCES = 10_000;

class Bucket {
  constructor(
    private tokens: number,
    private at: number,
  ) {}
  /** Takes a token; otherwise returns how many ms until one is there. */
  take(now: number, burst: number, perMinute: number): number {
    this.tokens = Math.min(burst, this.tokens + ((now - this.at) * perMinute) / 60_000);
    this.at = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 60_000) / perMinute);
  }
}

export type LimitVerdict = { allowed: true } | { allowed: false; scope: "source" | "total"; retryAfterSeconds: number };

export class RegistrationLimiter {
  readonly #limits: RegistrationLimits;
  readonly #now: () => number;
  readonly #sources = new Map<string, Bucket>();
  readonly #total: Bucket;

  constructor(limits: Partial<RegistrationLimits> = {}, now: () => number = Date.now) {
    this.#limits = { ...DEFAULT_REGISTRATION_LIMITS, ...limits };
    this.#now = now;
    this.#total = new Bucket(this.#limits.totalBurst, now());
  }

  get limits(): RegistrationLimits {
    return this.#limits;
  }

  /** Counts one registration request without a certificate from `source`. */
  take(source: string): LimitVerdict {
    const now = this.#now();
    const l = this.#limits;
    let bucket = this.#sources.get(source);
    if (bucket) this.#sources.delete(source); // re-inserted below: Map order is recency
    else {
      bucket = new Bucket(l.perSourceBurst, now);
      if (this.#sources.size >= MAX_SOURCES) this.#sources.delete(this.#sources.keys().next().value!);
    }
    this.#sources.set(source, bucket);
    const perSource = bucket.take(now, l.perSourceBurst, l.perSourcePerMinute);
    if (perSource > 0) return { allowed: false, scope: "source", retryAfterSeconds: Math.ceil(perSource / 1000) };
    const total = this.#total.take(now, l.totalBurst, l.totalPerMinute);
    if (total > 0) return { allowed: false, scope: "total", retryAfterSeconds: Math.ceil(total / 1000) };
    return { allowed: true };
  }
}
