/**
 * Connections a stranger holds before proving anything: TCP accepted, TLS handshake not finished.
 * Each listener counts them apart from its established connections, in total and per source
 * address, so idle or slow handshakes cannot take the places of devices or connection points.
 *
 * When a cap is reached, the *oldest* unfinished handshake is closed to make room (of the same
 * address first, when the per-address cap is the one reached), not the new connection: a real
 * handshake takes milliseconds, so a peer that finishes its handshake is never starved by
 * connections that only sit there, and an attacker would have to open connections faster than
 * handshakes complete to keep anyone out. The handshake timeout ends the rest.
 */
import type { Socket } from "node:net";

export interface AdmissionLimits {
  /** Unfinished handshakes held at once on the listener. */
  maxPending: number;
  /** Unfinished handshakes held at once from one source address. */
  maxPendingPerAddress: number;
}

interface Pending {
  socket: Socket;
  address: string;
}

/**
 * @example
 * const admission = new Admission({ maxPending: 64, maxPendingPerAddress: 16 }, (n) => log.warn(`${n} unfinished handshakes closed`));
 * server.on("connection", (raw) => admission.accepted(raw));
 * server.on("secureConnection", (tlsSocket) => admission.settled(tlsSocket));
 */
export class Admission {
  /** Insertion order is age: the first entry is the oldest. Keyed by remote address and port. */
  readonly #pending = new Map<string, Pending>();
  readonly #perAddress = new Map<string, number>();
  #evicted = 0;

  constructor(
    private readonly limits: AdmissionLimits,
    /** Called when connections were closed to make room: with the running total (for a throttled log line). */
    private readonly onEvicted: (total: number, address: string) => void = () => {},
  ) {}

  /** Unfinished handshakes now. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Unfinished handshakes closed to make room so far. */
  get evicted(): number {
    return this.#evicted;
  }

  /** A TCP connection was accepted (before TLS): counts it, closing the oldest ones over a cap. */
  accepted(socket: Socket): void {
    const address = socket.remoteAddress ?? "?";
    const key = keyOf(socket);
    if (this.limits.maxPendingPerAddress > 0 && (this.#perAddress.get(address) ?? 0) >= this.limits.maxPendingPerAddress) {
      for (const [k, p] of this.#pending) {
        if (p.address === address) {
          this.#evict(k, p);
          break;
        }
      }
    }
    if (this.limits.maxPending > 0 && this.#pending.size >= this.limits.maxPending) {
      const oldest = this.#pending.entries().next().value;
      if (oldest) this.#evict(oldest[0], oldest[1]);
    }
    this.#pending.set(key, { socket, address });
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1);
    socket.once("close", () => this.#forget(key));
  }

  /** The handshake finished (the TLS socket of a connection `accepted` saw): it no longer counts. */
  settled(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): void {
    this.#forget(keyOf(socket));
  }

  #evict(key: string, p: Pending): void {
    this.#forget(key);
    p.socket.destroy();
    this.#evicted++;
    this.onEvicted(this.#evicted, p.address);
  }

  #forget(key: string): void {
    const p = this.#pending.get(key);
    if (!p) return;
    this.#pending.delete(key);
    const n = (this.#perAddress.get(p.address) ?? 1) - 1;
    if (n <= 0) this.#perAddress.delete(p.address);
    else this.#perAddress.set(p.address, n);
  }
}

function keyOf(s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${s.remoteAddress ?? "?"}|${s.remotePort ?? 0}`;
}

/** True for the 1st, 10th, 100th, 1000th... event: log lines for floods without flooding the log. */
export function worthLogging(n: number): boolean {
  return n === 1 || (n >= 10 && /^10*$/.test(String(n)));
}
