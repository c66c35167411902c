/**
 * HTTP/2 keep-alive for tunnels, the same on both ends: a PING every `intervalMs`; a tunnel whose
 * PING is still unanswered two intervals later is dead (a proxy or NAT dropped it silently) and is
 * destroyed, so the reconnect logic takes over.
 *
 * Why two: timers run before the event loop reads sockets, so after a stall (a busy machine, a
 * long garbage collection) the first tick can find the answer still unread in the socket. One
 * interval of grace keeps a live tunnel from being cut for the process's own slowness.
 *
 * @example
 * const timer = keepAlive(session, 15_000, () => log.warn("missed a keep-alive answer"));
 * session.once("close", () => clearInterval(timer));
 */
import type { Http2Session } from "node:http2";

export function keepAlive(
  session: Pick<Http2Session, "destroyed" | "ping" | "destroy">,
  intervalMs: number,
  onMissed: () => void,
  onTick?: () => void,
): NodeJS.Timeout {
  let awaitingPong = false;
  let missed = 0;
  const timer = setInterval(() => {
    onTick?.();
    if (session.destroyed) return;
    if (awaitingPong) {
      if (++missed < 2) return;
      onMissed();
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
  }, intervalMs);
  timer.unref();
  return timer;
}
