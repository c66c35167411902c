/**
 * The tunnels an instance holds to connection points, and the choice of one per request: the
 * ready tunnel with the fewest requests in flight (ties broken in turn), so load spreads across
 * connection points and across the connections of each. A failed attempt passes the connection
 * point it used, and the next pick avoids that connection point while another one is available.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from "node:http2";
import type { ConnectionPointIdentity } from "../../wire/tunnel/signed-settings.ts";

export type TunnelState = "handshake" | "ready" | "draining" | "closed";

/**
 * HTTP/2 client stream ids are odd numbers below 2^31: a session can open about 1.07 billion
 * streams, some days of traffic on a busy tunnel. A tunnel is retired (drained, then closed; the
 * connection point dials a fresh one) well before it runs out.
 */
const RETIRE_AT_STREAM_ID = 2 ** 31 - 2 ** 24;

/** One HTTP/2 session over one TLS connection that a connection point dialled. */
export class Tunnel {
  /** The connection point's name: its certificate's common name (the hello's name is logged beside it). */
  connectionPoint: string;
  state: TunnelState = "handshake";
  /** The connection point said hello on the control stream. */
  greeted = false;
  /**
   * The site admits this connection point (the settings in force or the start-up bundle list its
   * certificate). A tunnel that is not admitted carries no request: it may only bring the site's
   * signed settings that admit it (a connection point added since), else it is closed.
   */
  admitted = false;
  /** Its tunnel certificate: name, serial, public key hash. */
  identity: ConnectionPointIdentity | null = null;
  /** The control stream (set by the tunnel listener). */
  control: ClientHttp2Stream | null = null;
  inFlight = 0;
  /** Requests relayed since the tunnel opened. */
  served = 0;

  constructor(
    readonly id: number,
    readonly session: ClientHttp2Session,
    readonly remote: string,
    connectionPoint: string,
  ) {
    this.connectionPoint = connectionPoint;
  }

  /** Opens a request stream. Throws synchronously when the session can no longer open streams. */
  open(headers: OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    const stream = this.session.request(headers, { endStream });
    this.inFlight++;
    this.served++;
    stream.once("close", () => {
      this.inFlight--;
    });
    if ((this.session.state.nextStreamID ?? 0) >= RETIRE_AT_STREAM_ID && this.state === "ready") this.retire();
    return stream;
  }

  /**
   * Stops new requests here and closes the tunnel once the requests in flight are done: the
   * control stream ends (it would keep the session open forever) and the session closes.
   */
  retire(): void {
    if (this.state === "closed") return;
    this.state = "draining";
    if (this.control && !this.control.destroyed) this.control.close(http2.constants.NGHTTP2_NO_ERROR);
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  get label(): string {
    return `tunnel #${this.id} (${this.connectionPoint} at ${this.remote})`;
  }
}

export class TunnelPool {
  private readonly tunnels = new Set<Tunnel>();
  /** The same tunnels as an array, rebuilt on change: pick() runs for every request. */
  private list: Tunnel[] = [];
  private turn = 0;
  private readonly listeners = new Set<() => void>();

  add(t: Tunnel): void {
    this.tunnels.add(t);
    this.changed();
  }

  remove(t: Tunnel): void {
    if (this.tunnels.delete(t)) this.changed();
  }

  /** Call when a tunnel's state changed (ready, draining). */
  changed(): void {
    this.list = [...this.tunnels];
    for (const l of this.listeners) l();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * The tunnel for the next attempt, or undefined when none is ready. `tried` holds tunnels
   * already used for this request; `avoid` connection points that failed it.
   */
  pick(tried?: ReadonlySet<Tunnel>, avoid?: ReadonlySet<string>): Tunnel | undefined {
    let best: Tunnel | undefined;
    let fallback: Tunnel | undefined;
    const list = this.list;
    const n = list.length;
    if (n === 0) return undefined;
    const start = this.turn++ % n;
    for (let i = 0; i < n; i++) {
      const t = list[(start + i) % n]!;
      if (t.state !== "ready" || tried?.has(t) || t.session.destroyed || t.session.closed) continue;
      if (avoid?.has(t.connectionPoint)) {
        if (!fallback || t.inFlight < fallback.inFlight) fallback = t;
      } else if (!best || t.inFlight < best.inFlight) {
        best = t;
      }
    }
    return best ?? fallback;
  }

  all(): Tunnel[] {
    return [...this.tunnels];
  }

  readyCount(): number {
    let n = 0;
    for (const t of this.tunnels) if (t.state === "ready") n++;
    return n;
  }

  /** Ready tunnels per connection point (for status and metrics). */
  byConnectionPoint(): Map<string, number> {
    const m = new Map<string, number>();
    for (const t of this.tunnels) if (t.state === "ready") m.set(t.connectionPoint, (m.get(t.connectionPoint) ?? 0) + 1);
    return m;
  }
}
