/**
 * Prometheus metrics of one gateway instance, in a registry of its own (never prom-client's global
 * one: several instances and connection points may share a process, as in the tests), served on
 * a separate port (loopback unless the start-up file or `--metrics-host` says otherwise) so the
 * client listener never exposes them. They move as subscribers of the observe channels
 * (observers.ts), never from inside the code that makes an event happen.
 *
 * Every series carries `cmg_instance` ("<cmg>-<index>"), not `instance`: Prometheus sets
 * `instance` itself to the scraped target's address.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { GatewayRequestResult } from "../observe/channels.ts";
import { addProcessMetrics, DURATION_BUCKETS_SECONDS } from "../observe/prometheus.ts";
import { GATE_CLOSURES } from "./admission.ts";

/** Request results, the `result` label of opencmg_gateway_requests_total. */
export type RequestResult = GatewayRequestResult;

export interface GatewayMetricsOptions {
  /**
   * Process metrics and opencmg_build_info (default false). Turned on where the registry is served:
   * prom-client's process collectors (a GC observer, an event loop monitor) live as long as the
   * process, so an instance that serves no metrics does not start them.
   */
  processMetrics?: boolean;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly clientConnections: Gauge;
  readonly clientConnectionsTotal: Counter;
  readonly requests: Counter<"result">;
  readonly requestDuration: Histogram<"role_kind" | "result">;
  readonly refusals: Counter<"reason">;
  readonly bytes: Counter<"direction">;
  readonly tunnelSessions: Gauge<"connection_point">;
  readonly tunnelSessionsTotal: Counter;
  readonly handshakeFailures: Counter<"listener">;
  readonly gateClosed: Counter<"listener" | "why">;
  readonly failovers: Counter;
  readonly settingsRevision: Gauge;
  readonly abuse: Counter<"rule" | "scope">;
  readonly fairShare: Counter<"kind" | "scope">;

  constructor(instanceName: string, o: GatewayMetricsOptions = {}) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ cmg_instance: instanceName });
    if (o.processMetrics) addProcessMetrics(this.registry);
    this.clientConnections = new Gauge({ name: "opencmg_gateway_client_connections", help: "Client connections open now", registers });
    this.clientConnectionsTotal = new Counter({ name: "opencmg_gateway_client_connections_total", help: "Client connections accepted", registers });
    this.requests = new Counter({ name: "opencmg_gateway_requests_total", help: "Client requests by result", labelNames: ["result"], registers });
    this.requestDuration = new Histogram({
      name: "opencmg_gateway_request_duration_seconds",
      help: "Time from a relayed client request's arrival to the end of its answer, by role kind (mp, sup) and result",
      labelNames: ["role_kind", "result"],
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.refusals = new Counter({ name: "opencmg_gateway_auth_refusals_total", help: "Client requests refused by client authentication, by reason", labelNames: ["reason"], registers });
    this.bytes = new Counter({
      name: "opencmg_gateway_body_bytes_total",
      help: "Body bytes relayed: in = from clients, out = to clients",
      labelNames: ["direction"],
      registers,
    });
    this.tunnelSessions = new Gauge({ name: "opencmg_gateway_tunnel_sessions", help: "Ready tunnel sessions by connection point", labelNames: ["connection_point"], registers });
    this.tunnelSessionsTotal = new Counter({ name: "opencmg_gateway_tunnel_sessions_total", help: "Tunnel sessions opened", registers });
    this.handshakeFailures = new Counter({ name: "opencmg_gateway_tls_handshake_failures_total", help: "TLS handshakes that failed, by listener", labelNames: ["listener"], registers });
    this.gateClosed = new Counter({
      name: "opencmg_gateway_handshake_gate_closed_total",
      help: "Connections the handshake gate closed before TLS finished, by listener and why (room: its place went to a newcomer; queue_full; wait_timeout)",
      labelNames: ["listener", "why"],
      registers,
    });
    this.failovers = new Counter({ name: "opencmg_gateway_failovers_total", help: "Requests retried on another tunnel", registers });
    this.settingsRevision = new Gauge({ name: "opencmg_gateway_settings_revision", help: "Revision of the settings in force (-1: none yet)", registers });
    this.settingsRevision.set(-1);
    this.abuse = new Counter({
      name: "opencmg_gateway_client_abuse_total",
      help: "Client connections cut off with GOAWAY ENHANCE_YOUR_CALM, by rule (cancelled_streams, stream_rate) and scope (connection, client)",
      labelNames: ["rule", "scope"],
      registers,
    });
    this.fairShare = new Counter({
      name: "opencmg_gateway_fair_share_total",
      help: "Clients over their fair share: requests answered 429 (kind busy) and request bodies paused (kind upload_paused), by scope (client identity, address)",
      labelNames: ["kind", "scope"],
      registers,
    });
    for (const direction of ["in", "out"]) this.bytes.inc({ direction }, 0);
    for (const listener of ["client", "tunnel"]) {
      this.handshakeFailures.inc({ listener }, 0);
      for (const why of GATE_CLOSURES) this.gateClosed.inc({ listener, why }, 0);
    }
  }
}
