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
 *
 * Behind a gated listener (`listenGated`), a source address at its own cap closes its oldest
 * handshake only once that one has held its place for `graceMs` (a real handshake takes
 * milliseconds); until then its new connections wait, accepted but paused and not handed to TLS
 * (no handshake work, no buffers), newest first for the next free place of the address, within
 * `maxWaitingPerAddress` (past it the oldest waiting is closed) and for at most `waitTimeoutMs`.
 * Closing at once made an address that opens connections without end cost the instance an accept,
 * a TLS socket and a close each time, as fast as it could reconnect: its connections now sit and
 * cost a socket, a place changes hands at most once per `graceMs`, a newcomer of the address
 * (a device or connection point behind the same NAT) still gets a stale place at once, and every
 * other address's handshakes go on as before.
 */
import net, { type Socket } from "node:net";

export interface AdmissionLimits {
  /** Unfinished handshakes held at once on the listener. */
  maxPending: number;
  /** Unfinished handshakes held at once from one source address. */
  maxPendingPerAddress: number;
  /**
   * Gated listeners: connections of an address at its cap that wait for one of its places (paused,
   * not handed to TLS yet), from one address and in total; over either, the new one is closed.
   * 0 or absent: none wait, the address's oldest handshake is closed instead.
   */
  maxWaitingPerAddress?: number;
  maxWaiting?: number;
  /** A connection that waited this long without a place is closed (the handshake timeout). */
  waitTimeoutMs?: number;
  /** Gated listeners: an unfinished handshake holds its place at least this long before a newcomer of its address may take it (default 1 s). */
  graceMs?: number;
}

interface Pending {
  socket: Socket;
  address: string;
  /** When it got its place (ms). */
  since: number;
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
  /** Connections waiting for a place, by address, oldest first; and their timers. */
  readonly #waiting = new Map<string, Set<Socket>>();
  readonly #waitTimers = new Map<Socket, NodeJS.Timeout>();
  #evicted = 0;
  /** Set while `accepted` makes room: places freed then are the new connection's, not a waiting one's. */
  #makingRoom = false;
  /** Hands a connection to TLS once it has a place (listenGated sets it; otherwise TLS has it already). */
  start: (socket: Socket) => void = () => {};

  constructor(
    private readonly limits: AdmissionLimits,
    /** Called when connections were closed to make room: with the running total (for a throttled log line). */
    private readonly onEvicted: (total: number, address: string) => void = () => {},
  ) {}

  /** Unfinished handshakes now. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Unfinished handshakes closed to make room so far (waiting connections closed included). */
  get evicted(): number {
    return this.#evicted;
  }

  /** Connections waiting for a place now. */
  get waiting(): number {
    return this.#waitTimers.size;
  }

  /** A TCP connection was accepted (before TLS): counts it, closing the oldest ones over a cap, or lets it wait for a place of its address. */
  accepted(socket: Socket): void {
    const address = socket.remoteAddress ?? "?";
    const atCap = this.limits.maxPendingPerAddress > 0 && (this.#perAddress.get(address) ?? 0) >= this.limits.maxPendingPerAddress;
    if (atCap && (this.limits.maxWaitingPerAddress ?? 0) > 0 && !this.#staleOf(address)) return this.#wait(socket, address);
    this.#makingRoom = true;
    try {
      if (atCap) {
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
    } finally {
      this.#makingRoom = false;
    }
    this.#admit(socket, address);
  }

  /** The handshake finished (the TLS socket of a connection `accepted` saw): it no longer counts. */
  settled(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): void {
    this.#forget(keyOf(socket));
  }

  #admit(socket: Socket, address: string): void {
    const key = keyOf(socket);
    this.#pending.set(key, { socket, address, since: Date.now() });
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1);
    socket.once("close", () => this.#forget(key));
    this.start(socket);
  }

  /** True when the address's oldest unfinished handshake has held its place past the grace. */
  #staleOf(address: string): boolean {
    const limit = Date.now() - (this.limits.graceMs ?? 1000);
    for (const p of this.#pending.values()) if (p.address === address) return p.since <= limit;
    return false;
  }

  #wait(socket: Socket, address: string): void {
    const l = this.limits;
    const q = this.#waiting.get(address) ?? new Set<Socket>();
    // Full: the oldest waiting is closed (newest first get the places: a newcomer of the address is
    // not stuck behind connections that only sit there).
    const full = (): boolean => q.size >= (l.maxWaitingPerAddress ?? 0) || (l.maxWaiting !== undefined && l.maxWaiting > 0 && this.#waitTimers.size >= l.maxWaiting);
    if (full()) {
      const oldest = q.size > 0 ? (q.values().next().value as Socket) : socket;
      if (oldest !== socket) this.#unwait(oldest, address);
      oldest.destroy();
      this.#evicted++;
      this.onEvicted(this.#evicted, address);
      if (oldest === socket || full()) {
        if (oldest !== socket) socket.destroy();
        return;
      }
    }
    this.#waiting.set(address, q);
    q.add(socket);
    const timer = setTimeout(() => socket.destroy(), l.waitTimeoutMs ?? 10_000);
    timer.unref();
    this.#waitTimers.set(socket, timer);
    socket.once("close", () => this.#unwait(socket, address));
  }

  #unwait(socket: Socket, address: string): void {
    const timer = this.#waitTimers.get(socket);
    if (!timer) return;
    clearTimeout(timer);
    this.#waitTimers.delete(socket);
    const q = this.#waiting.get(address);
    q?.delete(socket);
    if (q?.size === 0) this.#waiting.delete(address);
  }

  /** A place of `address` may be free: the newest waiting connection takes it. */
  #next(address: string): void {
    const l = this.limits;
    const q = this.#waiting.get(address);
    while (q && q.size > 0 && (this.#perAddress.get(address) ?? 0) < l.maxPendingPerAddress && (l.maxPending <= 0 || this.#pending.size < l.maxPending)) {
      const socket = [...q].pop()!;
      this.#unwait(socket, address);
      if (!socket.destroyed) this.#admit(socket, address);
    }
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
    if (!this.#makingRoom) this.#next(p.address);
  }
}

/**
 * Listens on `host:port` with a plain TCP server in front of `server` (a TLS or HTTP/2 secure
 * server that does not listen itself): each connection is accepted paused and handed to `server`
 * only once `admission` gives it a handshake place. Returns the listening front; closing it stops
 * new connections and calls back once every connection it accepted is closed.
 *
 * @example
 * const front = await listenGated(server, admission, "0.0.0.0", 443);
 */
export async function listenGated(server: net.Server, admission: Admission, host: string, port: number, maxConnections?: number, bind?: "reusePort" | "exclusive"): Promise<net.Server> {
  admission.start = (socket) => void server.emit("connection", socket);
  const front = net.createServer({ pauseOnConnect: true }, (raw) => admission.accepted(raw));
  if (maxConnections !== undefined && maxConnections > 0) front.maxConnections = maxConnections;
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    // reusePort (Node 22.12+): each worker process binds the port itself and the kernel spreads
    // connections; `exclusive` keeps a cluster worker from handing the bind to the primary.
    const opts = bind ? { port, host, exclusive: true, ...(bind === "reusePort" ? { reusePort: true } : {}) } : { port, host };
    front.listen(opts, () => {
      front.off("error", reject);
      resolve();
    });
  });
  // What the server does when it starts listening itself: an HTTP/1.1-capable server starts
  // checking its connections' header and request timeouts then (slowloris).
  server.emit("listening");
  return front;
}

function keyOf(s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string {
  return `${s.remoteAddress ?? "?"}|${s.remotePort ?? 0}`;
}

/** True for the 1st, 10th, 100th, 1000th... event: log lines for floods without flooding the log. */
export function worthLogging(n: number): boolean {
  return n === 1 || (n >= 10 && /^10*$/.test(String(n)));
}
