/**
 * TLS session tickets that every worker of every instance of a CMG can open, so a device that
 * reconnects after a restart or a failover resumes its session (an abbreviated handshake, no
 * certificate signature) wherever the load balancer or the kernel sends it: after a reconnect
 * storm the fleet comes back at a fraction of the handshake CPU.
 *
 * The keys are derived (HKDF-SHA256) from a secret every instance of the CMG already holds: the
 * private key of its server authentication certificate, which the site issues per CMG in the
 * start-up bundle and renews through the signed settings. No new secret travels, and a key that
 * opens tickets says nothing about the certificate key (one-way derivation under its own label).
 * A ticket key lives for one period, numbered from the Unix epoch, the same on every host:
 * tickets are issued under the current period's key; those of the previous period are still
 * opened (and a fresh ticket is issued), which is the overlap: a session stays resumable for one
 * to two periods. The next period's key is accepted too, for clocks a little ahead.
 *
 * Node has no public API for more than one ticket key (`setTicketKeys` takes one), so the
 * instance uses the secure context's ticket key callback, which Node itself wires for this
 * (`enableTicketKeyCallback`); where a Node version lacks it, one key is set per period
 * (`setTicketKeys`) and resumption works within a period only.
 */
import { createPrivateKey, hkdfSync, randomBytes } from "node:crypto";
import type { Server as TlsServer } from "node:tls";
import type { Http2SecureServer } from "node:http2";

/** Default ticket key period: 12 h, so a session resumes for 12 to 24 hours. */
export const DEFAULT_TICKET_PERIOD_MS = 12 * 60 * 60 * 1000;

interface TicketKey {
  name: Buffer;
  hmac: Buffer;
  aes: Buffer;
}

/** What Node's secure context gives the ticket key callback and expects back (src/crypto/crypto_context.cc). */
interface NativeContext {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: (name: Buffer, iv: Buffer, encrypt: boolean) => [number, Buffer, Buffer, Buffer?, Buffer?];
}

const ZERO = Buffer.alloc(16);

/**
 * The secret ticket keys are derived from: the server certificate's private key (PKCS#8 DER)
 * under a label of its own, with the CMG name, so two CMGs sharing a key still differ.
 */
export function ticketSecret(keyPem: string, cmg: string): Buffer {
  const der = createPrivateKey(keyPem).export({ type: "pkcs8", format: "der" });
  return Buffer.from(hkdfSync("sha256", der, Buffer.from(`opencmg tls ticket secret ${cmg.toLowerCase()}`), Buffer.alloc(0), 32));
}

/**
 * Ticket keys of one secret, by period.
 *
 * @example
 * const tickets = new TicketKeys(ticketSecret(serverKeyPem, "cmg1"));
 * tickets.install(server); // again after every server.setSecureContext(...)
 */
export class TicketKeys {
  readonly #cache = new Map<number, TicketKey>();

  constructor(
    private readonly secret: Buffer,
    private readonly periodMs: number = DEFAULT_TICKET_PERIOD_MS,
    private readonly now: () => number = Date.now,
  ) {
    if (!Number.isInteger(periodMs) || periodMs < 1000) throw new RangeError("ticket key period must be a whole number of milliseconds, 1000 or more");
  }

  /** The period number of `at`. */
  period(at = this.now()): number {
    return Math.floor(at / this.periodMs);
  }

  /** The 48 bytes (name, HMAC key, AES key) of a period, as `setTicketKeys` takes them. */
  keyOf(period: number): Buffer {
    const k = this.#key(period);
    return Buffer.concat([k.name, k.hmac, k.aes]);
  }

  #key(period: number): TicketKey {
    let k = this.#cache.get(period);
    if (!k) {
      const b = Buffer.from(hkdfSync("sha256", this.secret, Buffer.alloc(0), Buffer.from(`opencmg tls ticket key ${period}`), 48));
      k = { name: b.subarray(0, 16), hmac: b.subarray(16, 32), aes: b.subarray(32, 48) };
      if (this.#cache.size > 8) this.#cache.clear();
      this.#cache.set(period, k);
    }
    return k;
  }

  /**
   * Makes `server`'s current secure context issue and open tickets with these keys. Returns false
   * when this Node has no ticket key callback (one key per period is set instead: call again each period).
   */
  install(server: TlsServer | Http2SecureServer): boolean {
    const ctx = (server as unknown as { _sharedCreds?: { context?: NativeContext } })._sharedCreds?.context;
    if (!ctx || typeof ctx.enableTicketKeyCallback !== "function") {
      server.setTicketKeys(this.keyOf(this.period()));
      return false;
    }
    ctx.enableTicketKeyCallback();
    ctx.onticketkeycallback = (name, _iv, encrypt) => {
      const current = this.period();
      if (encrypt) {
        const k = this.#key(current);
        return [1, k.hmac, k.aes, k.name, randomBytes(16)];
      }
      for (const p of [current, current - 1, current + 1]) {
        const k = this.#key(p);
        // 1: opened; 2: opened, and a new ticket under the current key is issued (the overlap).
        if (k.name.equals(name)) return [p === current - 1 ? 2 : 1, k.hmac, k.aes];
      }
      // 0: not ours (another CMG, a key past its overlap): a full handshake follows.
      return [0, ZERO, ZERO];
    };
    return true;
  }
}
