/**
 * What every OpenCMG metrics registry shares (a gateway instance's and a connection point's):
 * process metrics, the build-info metric, the request duration buckets, and the small HTTP server
 * that serves a registry. Each registry is passed in: never prom-client's global one, since several
 * instances and connection points may share a process (as in the tests).
 *
 * Label names avoid `instance` and `job`: Prometheus adds those to every scraped series itself
 * (the target's address and the scrape job), and a series label of the same name would be renamed
 * `exported_instance` or overwrite the target's, depending on `honor_labels`.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Gauge, type Registry } from "prom-client";
import { VERSION } from "../version.ts";

/**
 * Request duration buckets, in seconds: from a cached answer on the same host (5 ms) to a large
 * policy or content download through a slow tunnel (120 s, the backend body timeout).
 */
export const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * Adds the process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, ...) and `opencmg_build_info{version,node} 1` to `registry`.
 *
 * @example
 * const registry = new Registry();
 * addProcessMetrics(registry);
 */
export function addProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  const info = new Gauge({ name: "opencmg_build_info", help: "OpenCMG version and Node.js version of this process (always 1)", labelNames: ["version", "node"], registers: [registry] });
  info.set({ version: VERSION, node: process.versions.node }, 1);
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Where a metrics listener binds: loopback unless an operator asks for another address. */
export const DEFAULT_METRICS_HOST = "127.0.0.1";

/**
 * The metrics listener's own limits: it is local by default, but a bind address makes it
 * reachable, and a scraper needs one connection at a time.
 */
const METRICS_LIMITS = { maxConnections: 32, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 5_000 };

/**
 * Serves `GET /metrics` (Prometheus text) and `GET /healthz` (JSON from `health`, status 200 when
 * `health().ok`, else 503) on `at`.
 *
 * @example
 * const m = await serveMetrics(metrics.registry, { host: "127.0.0.1", port: 9440 }, () => ({ ok: pool.readyCount() > 0 }));
 */
export async function serveMetrics(registry: { metrics(): Promise<string>; contentType: string }, at: { host: string; port: number }, health: () => { ok: boolean } & Record<string, unknown>): Promise<MetricsServer> {
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
  server.maxConnections = METRICS_LIMITS.maxConnections;
  server.headersTimeout = METRICS_LIMITS.headersTimeoutMs;
  server.requestTimeout = METRICS_LIMITS.requestTimeoutMs;
  server.keepAliveTimeout = METRICS_LIMITS.keepAliveTimeoutMs;
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
