/**
 * Prometheus metrics of one connection point, in a registry of its own, served on a separate
 * local port (the same small server as the gateway's, src/gateway/metrics.ts).
 */
import { Counter, Gauge, Registry } from "prom-client";
import type { ForwardResult } from "./forwarder.ts";

export class ConnectionPointMetrics {
  readonly registry = new Registry();
  readonly tunnels: Gauge<"gateway">;
  readonly tunnelConnects: Counter;
  readonly requests: Counter<"result">;
  readonly bytes: Counter<"direction">;
  readonly handshakeFailures: Counter;

  constructor(connectionPoint: string) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ connection_point: connectionPoint });
    this.tunnels = new Gauge({ name: "opencmg_connector_tunnels", help: "Connected tunnels by gateway instance (host:port)", labelNames: ["gateway"], registers });
    this.tunnelConnects = new Counter({ name: "opencmg_connector_tunnel_connects_total", help: "Tunnels that reached the connected state", registers });
    this.requests = new Counter({ name: "opencmg_connector_requests_total", help: "Relayed requests by result", labelNames: ["result"], registers });
    this.bytes = new Counter({
      name: "opencmg_connector_tunnel_bytes_total",
      help: "Bytes on the tunnels' wire: out = to the gateways, in = from them",
      labelNames: ["direction"],
      registers,
    });
    this.handshakeFailures = new Counter({ name: "opencmg_connector_tls_handshake_failures_total", help: "Tunnel TLS handshakes that failed", registers });
    const results: ForwardResult[] = ["ok", "refused", "backend_error", "cancelled"];
    for (const result of results) this.requests.inc({ result }, 0);
    for (const direction of ["in", "out"]) this.bytes.inc({ direction }, 0);
  }
}
