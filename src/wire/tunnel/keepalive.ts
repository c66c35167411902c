/**
 * HTTP/2 keep-alive for tunnels, the same on both ends: a PING every `intervalMs`; a tunnel whose
 * PING is still unanswered two intervals later, and that received nothing meanwhile, is dead (a
 * proxy or NAT dropped it silently) and is destroyed, so the reconnect logic takes over.
 *
 * Why two: timers run before the event loop reads sockets, so after a stall (a busy machine, a
 * long garbage collection) the first tick can find the answer still unread in the socket. One
 * interval of grace keeps a live tunnel from being cut for the process's own slowness.
 *
 * Why "received nothing": the answer to a PING leaves the peer behind the data it has queued for
 * this end. A tunnel whose reader is overloaded can hold many seconds of responses in the peer's
 * send queue, and the answer waits behind them all; bytes still arriving show that the peer is
 * alive. Closing that tunnel would fail every request on it and add a TLS handshake to the
 * overload (as seen with 60,000 devices on two cores).
 *
 * @example
 * const timer = keepAlive(session, { intervalMs: 15_000, received: () => socket.bytesRead, onMissed: () => log.warn("missed a keep-alive answer") });
 * session.once("close", () => clearInterval(timer));
 */
import type { Http2Session } from "node:http2";

export interface KeepAliveOptions {
  intervalMs: number;
  /** The PING went unanswered with nothing received for two intervals: called before the session is destroyed. */
  onMissed: () => void;
  /** Bytes read from the peer so far (its socket's `bytesRead`): a tunnel still receiving is alive. */
  received?: () => number;
  /** Called on every tick (e.g. to flush byte counters). */
  onTick?: () => void;
}

export function keepAlive(session: Pick<Http2Session, "destroyed" | "ping" | "destroy">, o: KeepAliveOptions): NodeJS.Timeout {
  let awaitingPong = false;
  let missed = 0;
  let lastReceived = o.received?.() ?? 0;
  const timer = setInterval(() => {
    o.onTick?.();
    if (session.destroyed) return;
    const received = o.received?.() ?? 0;
    const moved = received !== lastReceived;
    lastReceived = received;
    if (awaitingPong) {
      // Still receiving: the answer is on its way behind the peer's data. No second PING while one is out.
      if (moved) {
        missed = 0;
        return;
      }
      if (++missed < 2) return;
      o.onMissed();
      session.destroy();
      return;
    }
    awaitingPong = true;
    missed = 0;
    try {
      session.ping((err) => {
        if (!err) awaitingPong = false;
      });
    } catch {
      session.destroy();
    }
  }, o.intervalMs);
  timer.unref();
  return timer;
}
