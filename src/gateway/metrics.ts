/**
 * Prometheus metrics of one gateway instance, in a registry of its own (never prom-client's global
 * one: several instances and connection points may share a process, as in the tests), served on
 * a separate local port so the client listener never exposes them. They move as subscribers of
 * the observe channels (observers.ts), never from inside the code that makes an event happen.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Registry } from "prom-client";
import type { GatewayRequestResult } from "../observe/channels.ts";

/** Request results, the `result` label of opencmg_gateway_requests_total. */
export type RequestResult = GatewayRequestResult;

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly clientConnections: Gauge;
  readonly clientConnectionsTotal: Counter;
  readonly requests: Counter<"result">;
  readonly refusals: Counter<"reason">;
  readonly bytes: Counter<"direction">;
  readonly tunnelSessions: Gauge<"connection_point">;
  readonly tunnelSessionsTotal: Counter;
  readonly handshakeFailures: Counter<"listener">;
  readonly failovers: Counter;
  readonly settingsRevision: Gauge;
  readonly abuse: Counter<"rule" | "scope">;

  constructor(instance: string) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ instance });
    this.clientConnections = new Gauge({ name: "opencmg_gateway_client_connections", help: "Client connections open now", registers });
    this.clientConnectionsTotal = new Counter({ name: "opencmg_gateway_client_connections_total", help: "Client connections accepted", registers });
    this.requests = new Counter({ name: "opencmg_gateway_requests_total", help: "Client requests by result", labelNames: ["result"], registers });
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
    this.failovers = new Counter({ name: "opencmg_gateway_failovers_total", help: "Requests retried on another tunnel", registers });
    this.settingsRevision = new Gauge({ name: "opencmg_gateway_settings_revision", help: "Revision of the settings in force (-1: none yet)", registers });
    this.settingsRevision.set(-1);
    this.abuse = new Counter({
      name: "opencmg_gateway_client_abuse_total",
      help: "Client connections cut off with GOAWAY ENHANCE_YOUR_CALM, by rule (cancelled_streams, stream_rate) and scope (connection, client)",
      labelNames: ["rule", "scope"],
      registers,
    });
    for (const direction of ["in", "out"]) this.bytes.inc({ direction }, 0);
    for (const listener of ["client", "tunnel"]) this.handshakeFailures.inc({ listener }, 0);
  }
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text) and `GET /healthz` (JSON from `health`, status 200 when
 * `health().ok`, else 503) on a local port.
 *
 * @example
 * const m = await serveMetrics(metrics.registry, { host: "127.0.0.1", port: 9464 }, () => ({ ok: pool.readyCount() > 0 }));
 */
export async function serveMetrics(
  registry: Registry,
  at: { host: string; port: number },
  health: () => { ok: boolean } & Record<string, unknown>,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/metrics") {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(500, { "content-type": "text/plain" });
          res.end(err.message);
        },
      );
    } else if (req.method === "GET" && path === "/healthz") {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify(h));
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    }
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
