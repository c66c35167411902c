/**
 * What one connection point writes about itself, as subscribers of the observe channels: its
 * Prometheus metrics (tunnels per instance, tunnels that connected) and the health lines of
 * CMGService.log. Subscribed for its own source; the returned function unsubscribes on stop.
 */
import type { ComponentLog } from "../logs/cmtrace.ts";
import { Subscriptions, topics, type Source } from "../observe/channels.ts";
import type { ConnectionPointMetrics } from "./metrics.ts";

export interface ConnectionPointObserverDeps {
  source: Source;
  metrics: ConnectionPointMetrics;
  /** CMGService.log */
  service: ComponentLog;
  /** Connected tunnels to an instance (`host:port`); undefined once the instance left the CMG. */
  connectedTo: (gateway: string) => number | undefined;
}

/**
 * @example
 * const unobserve = observeConnectionPoint({ source, metrics, service: serviceLog, connectedTo });
 */
export function observeConnectionPoint(d: ConnectionPointObserverDeps): () => void {
  const { source, metrics, service } = d;
  return new Subscriptions()
    .add(
      topics.tunnelState.subscribe((m) => {
        if (m.side !== "connection-point") return;
        if (m.state === "connected") metrics.tunnelConnects.inc();
        const n = d.connectedTo(m.gateway);
        if (n !== undefined) metrics.tunnels.set({ gateway: m.gateway }, n);
      }, source),
      topics.connectionPointHealth.subscribe((m) => {
        if (m.trigger !== "change") return;
        const line = `Connection point ${m.report.connectionPoint} is ${m.report.status}: ${m.report.message}`;
        if (m.report.status === "ok") service.info(line);
        else if (m.previous !== null) service.warn(line);
      }, source),
    )
    .closer();
}
