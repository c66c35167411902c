/**
 * The live event streams one site server holds at once: at most `perIdentity` for one admin
 * identity (a token's name: its bearer requests and the console sessions signed in with it count
 * together) and `total` in all, so one identity, read-only or not, cannot take the streams every
 * other administrator's console needs.
 */
import { OpenCmgError } from "../errors.ts";

export interface StreamLimits {
  /** Streams open at once in all (default 64). */
  total: number;
  /** Streams one identity may hold at once (default 4: a few console tabs). */
  perIdentity: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { total: 64, perIdentity: 4 };

/** A stream refused: 429 when the identity holds its share, 503 when the server holds all it serves. */
export class StreamLimitError extends OpenCmgError {
  readonly #status: number;
  constructor(code: string, message: string, status: 429 | 503) {
    super("busy", code, message);
    this.#status = status;
  }
  override get httpStatus(): number {
    return this.#status;
  }
}

export class StreamSlots {
  readonly limits: StreamLimits;
  readonly #held = new Map<string, number>();
  #total = 0;

  constructor(limits: Partial<StreamLimits> = {}) {
    this.limits = { ...DEFAULT_STREAM_LIMITS, ...limits };
  }

  get total(): number {
    return this.#total;
  }

  /** Takes a slot for `identity`; the returned function gives it back (once). Throws StreamLimitError. */
  take(identity: string): () => void {
    const held = this.#held.get(identity) ?? 0;
    if (held >= this.limits.perIdentity)
      throw new StreamLimitError("EVENT_STREAMS_PER_IDENTITY", `${identity} holds ${held} live event streams, the most one admin identity may hold; close one (another console tab) first`, 429);
    if (this.#total >= this.limits.total) throw new StreamLimitError("EVENT_STREAMS", `at most ${this.limits.total} live event streams at once`, 503);
    this.#held.set(identity, held + 1);
    this.#total++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.#total--;
      const n = (this.#held.get(identity) ?? 1) - 1;
      if (n > 0) this.#held.set(identity, n);
      else this.#held.delete(identity);
    };
  }
}
