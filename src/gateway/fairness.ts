/**
 * A fair share of the instance for each client identity and each source address, across all
 * their connections: one device (or one address) cannot take the work and the upload bandwidth
 * the others need, however many connections it opens.
 *
 *   requests in progress   counted per identity (certificate thumbprint or token) and per source
 *                          address over all connections, HTTP/1.1 and HTTP/2 alike; over a quota the
 *                          request is answered 429 `client_busy` / `address_busy` with Retry-After,
 *                          and nothing goes on-premises. The per-connection stream cap
 *                          (maxStreamsPerClient) alone lets one identity multiply its share by
 *                          opening more connections.
 *   upload bytes           a token bucket per identity and per source address: a request body is
 *                          read at most at the bucket's rate once its burst is spent; the socket is
 *                          paused meanwhile (TCP backpressure slows the sender, nothing is buffered).
 *                          Each identity has a bucket of its own, so a steady uploader waits on its
 *                          own bucket while every other identity uploads at full speed.
 *
 * Buckets and counts are kept only while an identity or address has work in progress (or its
 * bucket is refilling), so memory follows the clients active now. Refusals and pauses are
 * published on `opencmg:gateway:fairShare` (metrics and throttled log lines subscribe there).
 */
import type { ClientIdentity } from "./auth/client-cert.ts";
import type { GatewayLimits } from "./config.ts";
import { topics, type Source } from "../observe/channels.ts";

export type FairShareLimits = Pick<
  GatewayLimits,
  | "maxRequestsPerClientIdentity"
  | "maxRequestsPerAddress"
  | "uploadBytesPerSecondPerClient"
  | "uploadBurstBytesPerClient"
  | "uploadBytesPerSecondPerAddress"
  | "uploadBurstBytesPerAddress"
>;

/**
 * Bytes per second with a burst: `take` spends tokens (going into debt if need be) and says how
 * long to wait before the debt is paid. A rate of 0 turns it off.
 */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    this.#tokens = burst;
    this.#at = now;
  }

  /** Spends `n` tokens at `now`; the milliseconds to wait before more may be spent (0: none). */
  take(n: number, now: number): number {
    if (this.rate <= 0) return 0;
    this.#refill(now);
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.rate);
  }

  /** Milliseconds until the bucket is full again (0: full). */
  untilFull(now: number): number {
    if (this.rate <= 0) return 0;
    this.#refill(now);
    return Math.max(0, Math.ceil(((this.burst - this.#tokens) * 1000) / this.rate));
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rate) / 1000);
    this.#at = now;
  }
}

interface Share {
  /** Requests in progress. */
  requests: number;
  bucket: TokenBucket | null;
  /** Timer that drops the entry once idle and its bucket full again. */
  sweep: NodeJS.Timeout | null;
}

/** Why a request was not admitted: which quota, and the answer's reason code. */
export interface Refusal {
  scope: "client" | "address";
  reason: "client_busy" | "address_busy";
  limit: number;
}

/** One admitted request: `throttle` for its body's bytes, `release` once it is over (idempotent). */
export interface Admitted {
  /** Spends `n` upload bytes from the identity's and the address's buckets; milliseconds to wait (0: go on). */
  throttle(n: number): number;
  release(): void;
}

/** Identity key: the token when the client proved itself with one, else the certificate thumbprint. */
export function identityKey(id: ClientIdentity): string {
  // Identities are cached verdicts shared by many requests: the key is built once per identity.
  let k = identityKeys.get(id);
  if (k === undefined) identityKeys.set(id, (k = id.token ? `token:${id.token.type}:${id.token.id}` : `${id.method}:${id.thumbprint}`));
  return k;
}

const identityKeys = new WeakMap<ClientIdentity, string>();

/**
 * @example
 * const fair = new FairShare(source, limits);
 * const a = fair.admit(identity, req.socket.remoteAddress);
 * if ("reason" in a) return reply(req, res, 429, a.reason, "...", { "retry-after": "1" });
 * res.once("close", () => a.release());
 */
export class FairShare {
  readonly #clients = new Map<string, Share>();
  readonly #addresses = new Map<string, Share>();

  constructor(
    private readonly source: Source,
    private readonly limits: FairShareLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Identities and addresses with an entry now (work in progress or a bucket refilling). */
  get size(): { clients: number; addresses: number } {
    return { clients: this.#clients.size, addresses: this.#addresses.size };
  }

  /** Requests in progress of an identity now. */
  requestsOf(identity: ClientIdentity): number {
    return this.#clients.get(identityKey(identity))?.requests ?? 0;
  }

  admit(identity: ClientIdentity, address: string | undefined): Admitted | Refusal {
    const l = this.limits;
    const client = this.#entry(this.#clients, identityKey(identity), l.uploadBytesPerSecondPerClient, l.uploadBurstBytesPerClient);
    const addr = this.#entry(this.#addresses, address ?? "?", l.uploadBytesPerSecondPerAddress, l.uploadBurstBytesPerAddress);
    const refusal: Refusal | null =
      l.maxRequestsPerClientIdentity > 0 && client.share.requests >= l.maxRequestsPerClientIdentity
        ? { scope: "client", reason: "client_busy", limit: l.maxRequestsPerClientIdentity }
        : l.maxRequestsPerAddress > 0 && addr.share.requests >= l.maxRequestsPerAddress
          ? { scope: "address", reason: "address_busy", limit: l.maxRequestsPerAddress }
          : null;
    client.share.requests++;
    addr.share.requests++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.#done(client.map, client.key, client.share);
      this.#done(addr.map, addr.key, addr.share);
    };
    const publish = (kind: "busy" | "upload_paused", scope: "client" | "address", waitMs?: number): void => {
      if (!topics.gatewayFairShare.active) return;
      topics.gatewayFairShare.publish({ source: this.source, kind, scope, clientAddress: address, thumbprint: identity.thumbprint, ...(waitMs !== undefined ? { waitMs } : {}) });
    };
    if (refusal) {
      release();
      publish("busy", refusal.scope);
      return refusal;
    }
    return {
      release,
      throttle: (n) => {
        const at = this.now();
        const c = client.share.bucket?.take(n, at) ?? 0;
        const a = addr.share.bucket?.take(n, at) ?? 0;
        if (c > 0 || a > 0) publish("upload_paused", c >= a ? "client" : "address", Math.max(c, a));
        return Math.max(c, a);
      },
    };
  }

  #entry(map: Map<string, Share>, key: string, rate: number, burst: number): { map: Map<string, Share>; key: string; share: Share } {
    let share = map.get(key);
    if (!share) {
      share = { requests: 0, bucket: rate > 0 ? new TokenBucket(rate, Math.max(burst, 1), this.now()) : null, sweep: null };
      map.set(key, share);
    }
    if (share.sweep) {
      clearTimeout(share.sweep);
      share.sweep = null;
    }
    return { map, key, share };
  }

  /** One request fewer; an idle entry goes once its bucket is full again (until then it remembers the debt). */
  #done(map: Map<string, Share>, key: string, share: Share): void {
    share.requests--;
    if (share.requests > 0) return;
    const drop = (): void => {
      share.sweep = null;
      if (share.requests > 0 || map.get(key) !== share) return;
      const wait = share.bucket?.untilFull(this.now()) ?? 0;
      if (wait <= 0) map.delete(key);
      else {
        share.sweep = setTimeout(drop, wait);
        share.sweep.unref();
      }
    };
    drop();
  }
}
