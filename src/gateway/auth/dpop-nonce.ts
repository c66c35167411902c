/**
 * What makes a proof of possession good for one request at one instance (RFC 9449 section 8):
 * the instance's own nonces, and the proofs it has seen while their nonce is valid.
 *
 * A nonce names a time window and is an HMAC, under a secret this instance drew at start and
 * never shares, over the instance's name and that window. Another instance (another secret) or
 * a restarted one refuses it, so a proof made for instance 0 is worth nothing at instance 1, with
 * 2 instances or 16, and no instance needs to know what the others have seen. A nonce is valid
 * in its window and the next one, so a proof can be accepted for at most two windows: the replay
 * cache keeps the proofs of those two windows only, and drops a window whole when it ends.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** One window of nonces: a nonce is handed out during one window and accepted during two. */
export const NONCE_WINDOW_MS = 5 * 60_000;
/** Proofs remembered per nonce window at an instance, all clients together. */
export const MAX_PROOFS_PER_WINDOW = 100_000;
/** Proofs remembered per nonce window for one client (token identity): far over what an agent sends. */
export const MAX_PROOFS_PER_CLIENT_PER_WINDOW = 5_000;

const NONCE = /^([0-9a-z]{1,12})\.([A-Za-z0-9_-]{22})$/;

export type NonceCheck = { ok: true; window: number; fresh: boolean } | { ok: false; why: string };

/**
 * @example
 * const nonces = new DpopNonces("cmg1-0");
 * res.setHeader("dpop-nonce", nonces.current());
 * const c = nonces.check(proof.nonce); // { ok: true, window, fresh } or { ok: false, why }
 */
export class DpopNonces {
  constructor(
    private readonly instance: string,
    private readonly now: () => number = Date.now,
    /** The instance's secret: drawn here, or given by the primary to every worker process of the instance (workers.ts). */
    private readonly secret: Buffer = randomBytes(32),
  ) {}

  window(at = this.now()): number {
    return Math.floor(at / NONCE_WINDOW_MS);
  }

  /** The nonce to hand out now. */
  current(): string {
    const w = this.window();
    return `${w.toString(36)}.${this.mac(w)}`;
  }

  /** Whether `nonce` is one of this instance's, of this window or the previous one (`fresh`: this window's). */
  check(nonce: unknown): NonceCheck {
    if (nonce === undefined) return { ok: false, why: "the proof carries no nonce" };
    const m = typeof nonce === "string" ? NONCE.exec(nonce) : null;
    if (!m) return { ok: false, why: "the proof's nonce is not one this gateway makes" };
    const w = parseInt(m[1]!, 36);
    const expected = Buffer.from(this.mac(w));
    const given = Buffer.from(m[2]!);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, why: "the proof's nonce was not made by this instance (another instance's, or from before a restart)" };
    const now = this.window();
    if (w > now) return { ok: false, why: "the proof's nonce is from a later window" };
    if (w < now - 1) return { ok: false, why: `the proof's nonce expired (window ${w}, now ${now})` };
    return { ok: true, window: w, fresh: w === now };
  }

  private mac(window: number): string {
    return createHmac("sha256", this.secret).update(`${this.instance}|${window}`).digest("base64url").slice(0, 22);
  }
}

export type ReplayVerdict = { ok: true } | { ok: false; why: "replayed" | "client_full" | "full"; detail: string };

/**
 * The proofs accepted at this instance, by nonce window: each is kept until its nonce can no
 * longer be accepted. Bounded (in total and per client); when a bound is reached the proof is
 * refused (fail closed): a proof that cannot be remembered could be replayed.
 */
export class ProofReplayCache {
  private readonly windows = new Map<number, { ids: Set<string>; perClient: Map<string, number> }>();
  constructor(
    private readonly limits: { perWindow: number; perClientPerWindow: number } = { perWindow: MAX_PROOFS_PER_WINDOW, perClientPerWindow: MAX_PROOFS_PER_CLIENT_PER_WINDOW },
  ) {}

  /**
   * Records proof `id` (key thumbprint and jti) of `client`, made with a nonce of `window`;
   * refuses a proof seen before, or one over a bound. `current` is the window now.
   */
  use(window: number, current: number, client: string, id: string): ReplayVerdict {
    // Windows whose nonces are no longer accepted are forgotten whole.
    for (const w of this.windows.keys()) if (w < current - 1) this.windows.delete(w);
    let slot = this.windows.get(window);
    if (slot?.ids.has(id)) return { ok: false, why: "replayed", detail: "the proof was used before at this instance (same key and jti)" };
    const total = [...this.windows.values()].reduce((n, s) => n + s.ids.size, 0);
    if (total >= this.limits.perWindow * 2) return { ok: false, why: "full", detail: `${total} proofs remembered, the most this instance holds; refused until the nonce window ends` };
    const mine = slot?.perClient.get(client) ?? 0;
    if (mine >= this.limits.perClientPerWindow) return { ok: false, why: "client_full", detail: `${mine} proofs of this client in one nonce window, the most one client may have remembered` };
    if (!slot) this.windows.set(window, (slot = { ids: new Set(), perClient: new Map() }));
    slot.ids.add(id);
    slot.perClient.set(client, mine + 1);
    return { ok: true };
  }

  size(): number {
    return [...this.windows.values()].reduce((n, s) => n + s.ids.size, 0);
  }
}
