/**
 * Stream abuse on HTTP/2 client connections: rapid reset (CVE-2023-44487: open a stream, cancel
 * it at once, repeat; the concurrency cap never bites, yet every stream may start a request
 * on-premises) and floods of streams. Counted per connection and per client identity (the
 * certificate thumbprint) across all its connections, over sliding windows; past a threshold
 * (config.ts) the connection, or every connection of the identity, gets GOAWAY
 * ENHANCE_YOUR_CALM and is closed. What happened is published on `opencmg:gateway:abuse`, where
 * CMGHttpHandler.log and the metrics pick it up.
 *
 * A stream counts as cancelled when it closes before the gateway finished its response and the
 * client reset it (the gateway's own aborts use INTERNAL_ERROR after a response began).
 *
 * An identity cut off stays cut off for one window (abuseWindowMs): each connection it opens
 * meanwhile gets GOAWAY ENHANCE_YOUR_CALM at once, and the router relays none of the streams of a
 * connection that was cut off (`refuses`), so reconnecting buys the attacker no more work
 * on-premises, and costs the instance one handshake per connection.
 */
import type { X509Certificate } from "node:crypto";
import http2, { type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { TLSSocket } from "node:tls";
import { describe, thumbprintOf } from "../pki/cert.ts";
import { topics, type GatewayAbuseRule, type Source } from "../observe/channels.ts";
import type { GatewayLimits } from "./config.ts";

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INTERNAL_ERROR } = http2.constants;

type AbuseLimits = Pick<
  GatewayLimits,
  "abuseWindowMs" | "maxCancelledStreamsPerConnection" | "maxCancelledStreamsPerClient" | "maxStreamsPerSecondPerConnection" | "maxStreamsPerSecondPerClient"
>;

/**
 * Events in the last `windowMs`: the times of at most `limit + 1` events are kept, so memory stays
 * bounded by the threshold whatever the client does.
 */
export class SlidingCount {
  readonly #times: number[] = [];
  constructor(
    readonly windowMs: number,
    readonly limit: number,
  ) {}

  /** Adds an event at `now`; true when the count within the window is now over the limit. */
  add(now: number): boolean {
    if (this.limit <= 0) return false;
    const t = this.#times;
    t.push(now);
    while (t.length > 0 && t[0]! <= now - this.windowMs) t.shift();
    if (t.length > this.limit + 1) t.shift();
    return t.length > this.limit;
  }

  get count(): number {
    return this.#times.length;
  }

  /** True when no event is left in the window. */
  idle(now: number): boolean {
    const last = this.#times[this.#times.length - 1];
    return last === undefined || last <= now - this.windowMs;
  }
}

interface Counters {
  cancelled: SlidingCount;
  opened: SlidingCount;
}

interface Client extends Counters {
  thumbprint: string;
  sessions: Set<ServerHttp2Session>;
  /** Until then (ms, this.now()), every new connection of the identity is cut off at once. */
  penaltyUntil: number;
}

interface Watched extends Counters {
  /** Streams open now: cancelled at once when the connection is cut off. */
  streams: Set<ServerHttp2Stream>;
  client: Client | null;
  leaf: X509Certificate | undefined;
  address: string | undefined;
  calmedDown?: boolean;
}

/**
 * Watches HTTP/2 client sessions for stream abuse.
 *
 * @example
 * const guard = new StreamAbuseGuard(source, limits);
 * server.on("session", (s) => guard.watch(s));
 */
export class StreamAbuseGuard {
  readonly #clients = new Map<string, Client>();
  #refusedSessions = 0;

  constructor(
    private readonly source: Source,
    private readonly limits: AbuseLimits,
    private readonly now: () => number = Date.now,
    /** A connection of an identity that was cut off within the window was cut off at once: with the running total (for a throttled log line). */
    private readonly onRefusedSession: (total: number, thumbprint: string) => void = () => {},
  ) {}

  /** True for a session that was cut off: its streams are not relayed (the router asks). */
  refuses(session: ServerHttp2Session): boolean {
    return watched.get(session)?.calmedDown === true;
  }

  /** Identities with counters held now (for tests and status). */
  get clients(): number {
    return this.#clients.size;
  }

  watch(session: ServerHttp2Session): void {
    const l = this.limits;
    const socket = session.socket as unknown as TLSSocket;
    const leaf = typeof socket.getPeerX509Certificate === "function" ? socket.getPeerX509Certificate() : undefined;
    const w: Watched = {
      cancelled: new SlidingCount(l.abuseWindowMs, l.maxCancelledStreamsPerConnection),
      opened: new SlidingCount(1000, l.maxStreamsPerSecondPerConnection),
      streams: new Set(),
      client: leaf ? this.#client(thumbprintOf(leaf.raw)) : null,
      leaf,
      address: socket.remoteAddress,
    };
    w.client?.sessions.add(session);
    watched.set(session, w);
    session.once("close", () => this.#forget(session, w));
    if (w.client && w.client.penaltyUntil > this.now()) {
      this.#refusedSessions++;
      this.onRefusedSession(this.#refusedSessions, w.client.thumbprint);
      calmDown(session);
      return;
    }
    session.on("stream", (stream: ServerHttp2Stream) => {
      if (session.destroyed || w.calmedDown) return;
      const now = this.now();
      if (w.opened.add(now)) return this.#trip(session, w, "connection", "stream_rate", w.opened);
      if (w.client?.opened.add(now)) return this.#trip(session, w, "client", "stream_rate", w.client.opened);
      w.streams.add(stream);
      stream.once("close", () => {
        w.streams.delete(stream);
        if (session.destroyed || w.calmedDown || !cancelledByClient(stream)) return;
        const at = this.now();
        if (w.cancelled.add(at)) return this.#trip(session, w, "connection", "cancelled_streams", w.cancelled);
        if (w.client?.cancelled.add(at)) this.#trip(session, w, "client", "cancelled_streams", w.client.cancelled);
      });
    });
  }

  #client(thumbprint: string): Client {
    let c = this.#clients.get(thumbprint);
    if (!c) {
      const l = this.limits;
      c = {
        thumbprint,
        sessions: new Set(),
        cancelled: new SlidingCount(l.abuseWindowMs, l.maxCancelledStreamsPerClient),
        opened: new SlidingCount(1000, l.maxStreamsPerSecondPerClient),
        penaltyUntil: 0,
      };
      this.#clients.set(thumbprint, c);
    }
    return c;
  }

  /** A closed session leaves its identity; the identity's counters are kept until their window is over. */
  #forget(session: ServerHttp2Session, w: Watched): void {
    const c = w.client;
    if (!c) return;
    c.sessions.delete(session);
    if (c.sessions.size > 0) return;
    const drop = (): void => {
      if (c.sessions.size > 0 || this.#clients.get(c.thumbprint) !== c) return;
      const now = this.now();
      if (c.cancelled.idle(now) && c.opened.idle(now) && c.penaltyUntil <= now) this.#clients.delete(c.thumbprint);
      else setTimeout(drop, this.limits.abuseWindowMs).unref();
    };
    drop();
  }

  #trip(session: ServerHttp2Session, w: Watched, scope: "connection" | "client", rule: GatewayAbuseRule, counter: SlidingCount): void {
    const victims = scope === "client" && w.client ? [...w.client.sessions] : [session];
    if (scope === "client" && w.client) w.client.penaltyUntil = this.now() + this.limits.abuseWindowMs;
    if (topics.gatewayAbuse.active) {
      topics.gatewayAbuse.publish({
        source: this.source,
        scope,
        rule,
        count: counter.count,
        limit: counter.limit,
        windowMs: counter.windowMs,
        clientAddress: w.address,
        thumbprint: w.client?.thumbprint,
        subject: w.leaf ? describe(w.leaf).subject : undefined,
        connections: victims.length,
      });
    }
    for (const s of victims) calmDown(s);
  }
}

/** True when the client reset the stream before the gateway finished answering it. */
function cancelledByClient(stream: ServerHttp2Stream): boolean {
  if (!stream.headersSent) return true;
  const code = stream.rstCode;
  return code !== undefined && code !== http2.constants.NGHTTP2_NO_ERROR && code !== NGHTTP2_INTERNAL_ERROR;
}

/** GOAWAY ENHANCE_YOUR_CALM, then the session and its streams are gone (their relays cancel upstream). */
function calmDown(s: ServerHttp2Session): void {
  const w = watched.get(s);
  if (s.destroyed || !w || w.calmedDown) return;
  w.calmedDown = true;
  s.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
  // Its requests are cancelled now (each relay cancels its tunnel stream on close), outside the
  // HTTP/2 callback that tripped the rule (resetting streams from inside one can spin nghttp2)...
  setImmediate(() => {
    for (const stream of w.streams) if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
  });
  // ...the connection a little later: closing a socket with unread input sends a TCP reset, which
  // can discard the GOAWAY before the client reads it. Meanwhile new streams are ignored (GOAWAY).
  setTimeout(() => {
    if (!s.destroyed) s.destroy(undefined, NGHTTP2_ENHANCE_YOUR_CALM);
  }, CALM_DOWN_GRACE_MS).unref();
}

/** Time between GOAWAY ENHANCE_YOUR_CALM and closing the connection, for the GOAWAY to reach the client. */
const CALM_DOWN_GRACE_MS = 1000;

const watched = new WeakMap<ServerHttp2Session, Watched>();
