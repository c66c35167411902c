/**
 * HTTP/2 keep-alive for tunnels, the same on both ends: a PING every `intervalMs`; a tunnel that
 * has not answered the previous PING when the next is due is dead (a proxy or NAT dropped it
 * silently) and is destroyed, so the reconnect logic takes over.
 */
import type { Http2Session } from "node:http2";

export function keepAlive(session: Http2Session, intervalMs: number, onMissed: () => void, onTick?: () => void): NodeJS.Timeout {
  let awaitingPong = false;
  const timer = setInterval(() => {
    onTick?.();
    if (session.destroyed) return;
    if (awaitingPong) {
      onMissed();
      session.destroy();
      return;
    }
    awaitingPong = true;
    try {
      session.ping((err) => {
        if (!err) awaitingPong = false;
      });
    } catch {
      session.destroy();
    }
  }, intervalMs);
  timer.unref();
  return timer;
}
