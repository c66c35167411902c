/**
 * Prometheus metrics of one connection point, in a registry of its own, served on a separate port
 * (loopback unless `--metrics-host` says otherwise; the same small server as the gateway's,
 * src/observe/prometheus.ts).
 *
 * Named as the gateway names it: `opencmg_connection_point_*`, and every series carries
 * `connection_point` (its server's FQDN), the label the gateway's `opencmg_gateway_tunnel_sessions`
 * uses for the same connection point.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { addProcessMetrics, DURATION_BUCKETS_SECONDS } from "../observe/prometheus.ts";
import type { ForwardResult } from "./forwarder.ts";

export interface ConnectionPointMetricsOptions {
  /** Process metrics and opencmg_build_info (default false; on where the registry is served). */
  processMetrics?: boolean;
}

export class ConnectionPointMetrics {
  readonly registry = new Registry();
  readonly tunnels: Gauge<"gateway">;
  readonly tunnelConnects: Counter;
  readonly requests: Counter<"result">;
  readonly requestDuration: Histogram<"role_kind" | "result">;
  readonly bytes: Counter<"direction">;
  readonly handshakeFailures: Counter;

  constructor(connectionPoint: string, o: ConnectionPointMetricsOptions = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ connection_point: connectionPoint });
    if (o.processMetrics) addProcessMetrics(this.registry);
    this.tunnels = new Gauge({ name: "opencmg_connection_point_tunnels", help: "Connected tunnels by gateway instance (host:port it dials)", labelNames: ["gateway"], registers });
    this.tunnelConnects = new Counter({ name: "opencmg_connection_point_tunnel_connects_total", help: "Tunnels that reached the connected state", registers });
    this.requests = new Counter({ name: "opencmg_connection_point_requests_total", help: "Relayed requests by result", labelNames: ["result"], registers });
    this.requestDuration = new Histogram({
      name: "opencmg_connection_point_request_duration_seconds",
      help: "Time from a relayed request's arrival on a tunnel to the end of the role's answer, by role kind (mp, sup) and result",
      labelNames: ["role_kind", "result"],
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.bytes = new Counter({
      name: "opencmg_connection_point_tunnel_bytes_total",
      help: "Bytes on the tunnels' wire: out = to the gateways, in = from them",
      labelNames: ["direction"],
      registers,
    });
    this.handshakeFailures = new Counter({ name: "opencmg_connection_point_tls_handshake_failures_total", help: "Tunnel TLS handshakes that failed", registers });
    const results: ForwardResult[] = ["ok", "refused", "backend_error", "cancelled"];
    for (const result of results) this.requests.inc({ result }, 0);
    for (const direction of ["in", "out"]) this.bytes.inc({ direction }, 0);
  }
}
