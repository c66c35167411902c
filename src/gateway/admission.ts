/**
 * Connections a stranger holds before proving anything: TCP accepted, TLS handshake not finished.
 * Each listener counts them apart from its established connections, in total and per source
 * address, so idle or slow handshakes cannot take the places of devices or connection points.
 *
 * Ungated (a plain TLS server's own listener): when a cap is reached, the *oldest* unfinished
 * handshake is closed to make room (of the same address first, when the per-address cap is the
 * one reached), not the new connection.
 *
 * Gated (`listenGated`): a connection is accepted paused and handed to TLS only once it has a
 * place. At a cap (its address's or the listener's), a newcomer takes the oldest place of that
 * scope only when its peer has sent nothing (not a byte of a ClientHello) for the grace; otherwise
 * it waits, accepted but paused (no handshake work, no buffers). The next free place goes to the
 * newest waiting connection whose address is under its cap, within `maxWaitingPerAddress` and
 * `maxWaiting` (past either the oldest waiting is closed) and for at most `waitTimeoutMs`.
 *
 * Why: in a reconnect storm thousands of devices arrive at once, and every handshake takes longer
 * than usual, because the CPU is busy or the devices are. Closing a place that has only been held
 * "too long" then closes handshakes that were nearly done, and each retry adds to the load: with
 * 1,024 places and a 1 s grace, 0 of 12,000 devices were back after 187 s. A place whose peer has
 * sent bytes is in its handshake (the handshake timeout ends it if it stalls); a place whose peer
 * sent nothing is the idle connection an attacker holds, and a newcomer takes it after the grace.
 * Newest first, because under overload the oldest waiting are the closest to giving up (their
 * handshake timeout), so serving them first would spend handshakes on peers that are gone. An
 * address that opens connections without end costs an accept and a socket each, and every other
 * address's handshakes go on.
 *
 * The grace follows the handshakes themselves: at least `graceMs`, and at least four times the
 * recent handshake time (a moving average), at most half the handshake timeout: on a lagging
 * process a peer's first bytes are read late.
 */
import net, { type Socket } from "node:net";

export interface AdmissionLimits {
  /** Unfinished handshakes held at once on the listener. */
  maxPending: number;
  /** Unfinished handshakes held at once from one source address. */
  maxPendingPerAddress: number;
  /**
   * Gated listeners: connections waiting for a place (paused, not handed to TLS yet), from one
   * address and in total; over either, the oldest waiting (of the address, or of all) is closed.
   * 0 or absent: none wait, the oldest handshake is closed at once instead.
   */
  maxWaitingPerAddress?: number;
  maxWaiting?: number;
  /** A connection that waited this long without a place is closed (the handshake timeout). */
  waitTimeoutMs?: number;
  /** Gated listeners: an unfinished handshake holds its place at least this long before a newcomer may take it (default 1 s). */
  graceMs?: number;
}

/** Why the gate closed a connection (Admission#onClosed). */
export const GATE_CLOSURES = ["room", "queue_full", "wait_timeout"] as const;
export type GateClosure = (typeof GATE_CLOSURES)[number];

interface Pending {
  socket: Socket;
  address: string;
  /** When it got its place (ms). */
  since: number;
}

interface Waiting {
  address: string;
  timer: NodeJS.Timeout;
}

/**
 * @example
 * const admission = new Admission({ maxPending: 64, maxPendingPerAddress: 16 });
 * admission.onClosed = (why, address) => metrics.inc({ why });
 * server.on("connection", (raw) => admission.accepted(raw));
 * server.on("secureConnection", (tlsSocket) => admission.settled(tlsSocket));
 */
export class Admission {
  /** Insertion order is age: the first entry is the oldest. Keyed by remote address and port. */
  readonly #pending = new Map<string, Pending>();
  readonly #perAddress = new Map<string, number>();
  /** Connections waiting for a place, oldest first: all of them, and by address. */
  readonly #waiting = new Map<Socket, Waiting>();
  readonly #waitingOf = new Map<string, Set<Socket>>();
  /** Waiting connections, newest last; entries no longer in #waiting are skipped (and compacted away). */
  #newest: Socket[] = [];
  #evicted = 0;
  /** Handshakes in progress allowed now: maxPending, or fewer while the process is paced (setLimit). */
  #limit: number;
  /** Moving average of recent handshake times (ms), from accepted to settled. */
  #handshakeMs = 0;
  /** Set while `accepted` makes room: places freed then are the new connection's, not a waiting one's. */
  #makingRoom = false;
  /** Hands a connection to TLS once it has a place (listenGated sets it; otherwise TLS has it already). */
  start: (socket: Socket) => void = () => {};
  /**
   * Called for every connection closed by the gate itself, with why and the peer's address:
   * `room` (its place went to a newcomer: it had sent nothing), `queue_full` (the oldest waiting,
   * past maxWaiting or maxWaitingPerAddress), `wait_timeout` (waited waitTimeoutMs without a
   * place). The listeners count them on /metrics and log the first two (throttled, by `evicted`).
   */
  onClosed: (why: GateClosure, address: string) => void = () => {};

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.#limit = limits.maxPending;
  }

  /**
   * Runs at most `limit` handshakes at once from now on (at most maxPending): past it, newcomers
   * wait. Lowering it closes nothing; raising it hands the free places to waiting connections.
   */
  setLimit(limit: number): void {
    if (this.limits.maxPending <= 0) return;
    const before = this.#limit;
    this.#limit = Math.max(1, Math.min(limit, this.limits.maxPending));
    if (this.#limit > before && this.#waiting.size > 0) this.#next();
  }

  /** Unfinished handshakes now. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Unfinished handshakes closed to make room so far (waiting connections closed included). */
  get evicted(): number {
    return this.#evicted;
  }

  /** Handshakes in progress allowed now (maxPending unless paced: setLimit). */
  get limit(): number {
    return this.#limit;
  }

  /** Connections waiting for a place now. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** A TCP connection was accepted (before TLS): gives it a place, closing a handshake over a cap when it may, or lets it wait for one. */
  accepted(socket: Socket): void {
    const address = socket.remoteAddress ?? "?";
    const gated = (this.limits.maxWaitingPerAddress ?? 0) > 0;
    this.#makingRoom = true;
    try {
      if (this.#addressFull(address)) {
        const victim = gated ? this.#oldest(address, true) : this.#oldest(address);
        if (!victim) return this.#wait(socket, address);
        this.#evict(victim[0], victim[1]);
      }
      if (this.#full()) {
        // Under a lowered limit (setLimit) closing one would not make room: nothing is closed.
        const room = this.#pending.size - 1 < this.#limit;
        const victim = !gated ? this.#oldest() : room ? this.#oldest(undefined, true) : undefined;
        if (victim) this.#evict(victim[0], victim[1]);
        if (gated && this.#full()) return this.#wait(socket, address);
      }
    } finally {
      this.#makingRoom = false;
    }
    this.#admit(socket, address);
  }

  /** The handshake finished (the TLS socket of a connection `accepted` saw): it no longer counts. */
  settled(socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }): void {
    const key = keyOf(socket);
    const p = this.#pending.get(key);
    if (p) this.#handshakeMs += (this.now() - p.since - this.#handshakeMs) / 16;
    this.#forget(key);
  }

  /** How long a place is held before a newcomer may take it now (ms). */
  get graceMs(): number {
    const floor = this.limits.graceMs ?? 1000;
    return Math.max(floor, Math.min(4 * this.#handshakeMs, (this.limits.waitTimeoutMs ?? 10_000) / 2));
  }

  #full(): boolean {
    return this.limits.maxPending > 0 && this.#pending.size >= this.#limit;
  }

  #addressFull(address: string): boolean {
    return this.limits.maxPendingPerAddress > 0 && (this.#perAddress.get(address) ?? 0) >= this.limits.maxPendingPerAddress;
  }

  /** The oldest unfinished handshake, of `address` when given; only a stale one (`#stale`) when asked. */
  #oldest(address?: string, stale = false): [string, Pending] | undefined {
    for (const entry of this.#pending) if ((address === undefined || entry[1].address === address) && (!stale || this.#stale(entry[1]))) return entry;
    return undefined;
  }

  /**
   * A place a newcomer may take: held past the grace by a peer that has sent nothing yet (not even
   * a ClientHello). A peer that has sent bytes is in its handshake, however slowly the machine
   * serves it; the handshake timeout ends it if it stalls.
   */
  #stale(p: Pending): boolean {
    return p.socket.bytesRead === 0 && this.now() - p.since >= this.graceMs;
  }

  #admit(socket: Socket, address: string): void {
    const key = keyOf(socket);
    this.#pending.set(key, { socket, address, since: this.now() });
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1);
    socket.once("close", () => this.#forget(key));
    this.start(socket);
  }

  #wait(socket: Socket, address: string): void {
    const l = this.limits;
    // Full: the oldest waiting goes (of the address, or of all), never the newcomer.
    const before = this.#waitingOf.get(address);
    if (before && before.size >= (l.maxWaitingPerAddress ?? 0)) this.#drop(before.values().next().value);
    else if (l.maxWaiting !== undefined && l.maxWaiting > 0 && this.#waiting.size >= l.maxWaiting) this.#drop(this.#waiting.keys().next().value);
    // Read again: dropping the address's last waiting connection removed its set.
    const mine = this.#waitingOf.get(address) ?? new Set<Socket>();
    this.#waitingOf.set(address, mine);
    const timer = setTimeout(() => {
      this.#unwait(socket);
      socket.destroy();
      this.onClosed("wait_timeout", address);
    }, l.waitTimeoutMs ?? 10_000);
    timer.unref();
    this.#waiting.set(socket, { address, timer });
    mine.add(socket);
    if (this.#newest.length > 2 * this.#waiting.size + 64) this.#newest = this.#newest.filter((s) => this.#waiting.has(s));
    this.#newest.push(socket);
    socket.once("close", () => this.#unwait(socket));
  }

  /** Closes a waiting connection to make room in the queue. */
  #drop(socket: Socket | undefined): void {
    if (!socket) return;
    const address = this.#waiting.get(socket)?.address ?? "?";
    this.#unwait(socket);
    socket.destroy();
    this.#evicted++;
    this.onClosed("queue_full", address);
  }

  #unwait(socket: Socket): void {
    const w = this.#waiting.get(socket);
    if (!w) return;
    clearTimeout(w.timer);
    this.#waiting.delete(socket);
    const mine = this.#waitingOf.get(w.address);
    mine?.delete(socket);
    if (mine?.size === 0) this.#waitingOf.delete(w.address);
  }

  /**
   * A place may be free: the newest waiting connections whose addresses are under their caps take
   * the free places. Skips only connections of addresses at their cap, of which there are at most
   * maxPending / maxPendingPerAddress, each with at most maxWaitingPerAddress waiting.
   */
  #next(): void {
    const stack = this.#newest;
    for (let i = stack.length - 1; i >= 0 && !this.#full() && this.#waiting.size > 0; i--) {
      const socket = stack[i]!;
      const w = this.#waiting.get(socket);
      if (!w || this.#addressFull(w.address)) continue;
      this.#unwait(socket);
      if (!socket.destroyed) this.#admit(socket, w.address);
    }
    while (stack.length > 0 && !this.#waiting.has(stack[stack.length - 1]!)) stack.pop();
  }

  #evict(key: string, p: Pending): void {
    this.#forget(key);
    p.socket.destroy();
    this.#evicted++;
    this.onClosed("room", p.address);
  }

  #forget(key: string): void {
    const p = this.#pending.get(key);
    if (!p) return;
    this.#pending.delete(key);
    const n = (this.#perAddress.get(p.address) ?? 1) - 1;
    if (n <= 0) this.#perAddress.delete(p.address);
    else this.#perAddress.set(p.address, n);
    if (!this.#makingRoom && this.#waiting.size > 0) this.#next();
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
