/**
 * The console's sign-in sessions, kept in the site server's memory: an administrator signs in once
 * with an admin token and the browser then holds only a random session ID in an HttpOnly cookie.
 * A restart of the site server signs everyone out, which is the safe direction.
 *
 * Bounded: at most `maxSessions` (the oldest is dropped), an idle and an absolute lifetime, and
 * failed sign-ins limited per address so the token cannot be guessed through the form.
 */
import type { AdminIdentity } from "../site/services/admin-tokens.ts";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export const SESSION_COOKIE = "opencmg_session";
export const CSRF_HEADER = "x-opencmg-csrf";

export interface SessionLimits {
  /** A session unused this long ends (default 30 min). */
  idleMs: number;
  /** A session ends this long after sign-in whatever its use (default 8 h). */
  maxAgeMs: number;
  /** Sessions kept at once; signing in past this ends the oldest (default 200). */
  maxSessions: number;
  /** Failed sign-ins allowed per address within `failureWindowMs` (default 10 per 5 min). */
  maxFailures: number;
  failureWindowMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { idleMs: 30 * 60_000, maxAgeMs: 8 * 3600_000, maxSessions: 200, maxFailures: 10, failureWindowMs: 5 * 60_000 };

export interface ConsoleSession {
  /** The admin token signed in with: its name (audit) and whether it may change anything. */
  identity: AdminIdentity;
  /** Sent back by the console in the CSRF header on every change (double submit, but bound to the session). */
  csrf: string;
  createdAt: number;
  lastSeen: number;
  /** When it ends if unused (ms since the epoch). */
  expiresAt: number;
}

const sha = (s: string): string => createHash("sha256").update(s).digest("hex");

export class ConsoleSessions {
  /** Keyed by the SHA-256 of the cookie value: what the process holds cannot be replayed as a cookie. */
  readonly #sessions = new Map<string, ConsoleSession>();
  readonly #failures = new Map<string, number[]>();
  readonly limits: SessionLimits;
  readonly #now: () => number;

  constructor(limits: Partial<SessionLimits> = {}, now: () => number = Date.now) {
    this.limits = { ...DEFAULT_SESSION_LIMITS, ...limits };
    this.#now = now;
  }

  /** A new session: the cookie value (only the browser keeps it) and the session. */
  create(identity: AdminIdentity): { cookie: string; session: ConsoleSession } {
    this.#sweep();
    while (this.#sessions.size >= this.limits.maxSessions) this.#sessions.delete(this.#sessions.keys().next().value!);
    const cookie = randomBytes(32).toString("base64url");
    const now = this.#now();
    const session: ConsoleSession = { identity, csrf: randomBytes(24).toString("base64url"), createdAt: now, lastSeen: now, expiresAt: this.#expiry(now, now) };
    this.#sessions.set(sha(cookie), session);
    return { cookie, session };
  }

  /** The live session of a cookie value (its idle time starts again), or undefined. */
  touch(cookie: string | undefined): ConsoleSession | undefined {
    if (!cookie) return undefined;
    const key = sha(cookie);
    const s = this.#sessions.get(key);
    if (!s) return undefined;
    const now = this.#now();
    if (now >= s.expiresAt) {
      this.#sessions.delete(key);
      return undefined;
    }
    s.lastSeen = now;
    s.expiresAt = this.#expiry(s.createdAt, now);
    return s;
  }

  /** True while the session of `cookie` lives; unlike `touch`, its idle time does not start again. */
  alive(cookie: string): boolean {
    const s = this.#sessions.get(sha(cookie));
    return s !== undefined && this.#now() < s.expiresAt;
  }

  end(cookie: string | undefined): void {
    if (cookie) this.#sessions.delete(sha(cookie));
  }

  /** True when the CSRF header matches the session's token (constant time). */
  static csrfMatches(s: ConsoleSession, header: string | undefined): boolean {
    if (!header) return false;
    const a = Buffer.from(s.csrf);
    const b = Buffer.from(header);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** False when `address` failed to sign in too often lately. */
  mayTry(address: string): boolean {
    return this.#recentFailures(address).length < this.limits.maxFailures;
  }

  failed(address: string): void {
    const list = this.#recentFailures(address);
    list.push(this.#now());
    this.#failures.set(address, list);
    // Bound the table itself: a flood from many addresses forgets the oldest.
    while (this.#failures.size > 10_000) this.#failures.delete(this.#failures.keys().next().value!);
  }

  get size(): number {
    return this.#sessions.size;
  }

  #recentFailures(address: string): number[] {
    const since = this.#now() - this.limits.failureWindowMs;
    return (this.#failures.get(address) ?? []).filter((t) => t > since);
  }

  #expiry(createdAt: number, now: number): number {
    return Math.min(now + this.limits.idleMs, createdAt + this.limits.maxAgeMs);
  }

  #sweep(): void {
    const now = this.#now();
    for (const [k, s] of this.#sessions) if (now >= s.expiresAt) this.#sessions.delete(k);
  }
}

/** The value of one cookie in a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
