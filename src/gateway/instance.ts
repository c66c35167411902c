/**
 * One gateway instance: a client listener for devices, a tunnel listener for connection points,
 * the router between them, client authentication, and metrics. It keeps no site state on disk:
 * everything it enforces beyond its start-up configuration arrives over the tunnels.
 */
import { X509Certificate } from "node:crypto";
import { request } from "undici";
import { CrlCache } from "../pki/crl.ts";
import type { ComponentLog, LogSet } from "../logs/cmtrace.ts";
import { MutualTlsAuthenticator, type ClientAuthenticator } from "./auth/client-cert.ts";
import { TokenAuthenticator } from "./auth/token.ts";
import { TOKEN_SCHEME } from "../wire/tokens.ts";
import { startClientListener } from "./client-listener.ts";
import { resolveGatewayConfig, type GatewayInstanceConfig } from "./config.ts";
import { GatewayMetrics } from "./metrics.ts";
import { serveMetrics, type MetricsServer } from "../observe/prometheus.ts";
import { createRouter } from "./relay/router.ts";
import { SettingsStore } from "./settings-store.ts";
import { startTunnelListener } from "./tunnels/tunnel-listener.ts";
import { TunnelPool, type TunnelState } from "./tunnels/tunnel-pool.ts";
import { LOG_FILES } from "../logs/files.ts";
import { newSource, topics } from "../observe/channels.ts";
import { observeGateway } from "./observers.ts";
import { StreamAbuseGuard } from "./abuse.ts";
import { worthLogging } from "./admission.ts";
import { FairShare } from "./fairness.ts";
import type { Http2ServerRequest, ServerHttp2Session } from "node:http2";
import { AggregatorRegistry } from "prom-client";
import { reply } from "./relay/reply.ts";
import { TicketKeys, ticketSecret } from "./tls-tickets.ts";
import type { WorkerLink } from "./workers.ts";

export type { GatewayInstanceConfig } from "./config.ts";

/** The log files of a gateway instance. */
export interface GatewayLogs {
  /** CMGHttpHandler.log: client requests, refusals with the failed check. */
  http: ComponentLog;
  /** CMGService.log: listeners, tunnels, settings, CRL downloads. */
  service: ComponentLog;
}

/**
 * The gateway's component logs in a LogSet.
 *
 * @example
 * const inst = await startGatewayInstance(cfg, { log: gatewayLogs(new LogSet({ dir })) });
 */
export function gatewayLogs(logs: LogSet): GatewayLogs {
  return { http: logs.component(LOG_FILES.cmgHttpHandler), service: logs.component(LOG_FILES.cmgService) };
}

export interface GatewayDeps {
  log: GatewayLogs;
  /** Downloads a CRL (default: plain HTTP(S) GET, 10 s timeout, 32 MB at most). */
  fetchCrl?: (url: string) => Promise<Buffer>;
  /**
   * More (or other) authenticators by URL scheme segment. `CCM_Proxy_MutualAuth` is always the
   * client-certificate authenticator; `CCM_Proxy_ServerAuth` is the token authenticator unless given here.
   */
  authenticators?: Record<string, ClientAuthenticator>;
  /** This instance is one worker process of several (workers.ts): ports, settings and tunnel ports come through the link. */
  worker?: WorkerLink;
}

export interface GatewayStatus {
  instance: string;
  /** At least one tunnel is ready: requests can reach the site. */
  ready: boolean;
  settingsRevision: number | null;
  tunnels: { id: number; connectionPoint: string; remote: string; state: TunnelState; inFlight: number }[];
  /** Ready tunnels per connection point. */
  connectionPoints: Record<string, number>;
  /** Per listener: connections in TLS handshake now, and connections waiting for a handshake place of their address. */
  handshakes: { client: { pending: number; waiting: number; limit: number }; tunnel: { pending: number; waiting: number; limit: number } };
}

export interface GatewayInstance {
  /** "<name>-<index>" */
  readonly instanceName: string;
  readonly clientPort: number;
  readonly tunnelPort: number;
  /** Null when no metrics listener was asked for. */
  readonly metricsPort: number | null;
  readonly metrics: GatewayMetrics;
  status(): GatewayStatus;
  /** Stops both listeners: GOAWAY to clients and tunnels, `graceMs` for requests in flight (default 5 s). */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

/**
 * Starts one instance and resolves once all its listeners are bound.
 *
 * @example
 * const inst = await startGatewayInstance(
 *   { name: "cmg1", index: 0, serverCert: { certPem, keyPem }, client: { host: "0.0.0.0", port: 443 },
 *     tunnel: { host: "0.0.0.0", siteCaPem }, metrics: { port: 9464 } },
 *   { log: gatewayLogs(logSet) },
 * );
 * // ... on SIGTERM:
 * await inst.stop();
 */
export async function startGatewayInstance(config: GatewayInstanceConfig, deps: GatewayDeps): Promise<GatewayInstance> {
  const cfg = resolveGatewayConfig(config);
  const { http: httpLog, service: serviceLog } = deps.log;
  const worker = deps.worker;
  const metrics = new GatewayMetrics(cfg.instanceName, { processMetrics: cfg.metrics !== null || worker !== undefined });
  const settings = new SettingsStore(cfg.name, cfg.trust);
  const pool = new TunnelPool();
  // Metrics and log lines of this instance subscribe to what it publishes, until it stops.
  const source = newSource("gateway", cfg.instanceName);
  const unobserve = observeGateway({ source, metrics, pool, http: httpLog, service: serviceLog });
  if (worker) {
    // The primary serves every worker's series, each named by its worker.
    metrics.registry.setDefaultLabels({ cmg_instance: cfg.instanceName, worker: String(worker.index) });
    AggregatorRegistry.setRegistries([metrics.registry]);
    // Constructing one makes prom-client answer the primary's metrics requests in this worker.
    new AggregatorRegistry();
    // A document another worker applied: verified here as if a connection point had brought it.
    const fromPeers = (doc: unknown): void => {
      const r = settings.offer(doc);
      if (r.result === "applied") {
        const s = r.settings;
        if (topics.settingsApplied.active) {
          topics.settingsApplied.publish({ source, revision: s.revision, from: "another worker", trustedRoots: s.trustedRoots.length, intermediates: s.intermediates.length, crlCheck: s.crlCheck, roles: Object.keys(s.urlMap).length });
        }
      } else if (r.result === "refused" && r.error.reason !== "stale_revision") {
        serviceLog.error(`Worker ${worker.index}: settings another worker applied were refused here (${r.error.reason}: ${r.error.message})`);
      }
    };
    worker.onSettings(fromPeers);
    // What the other workers enforce already, before this one takes any client (a restarted worker).
    if (worker.settings !== null) fromPeers(worker.settings);
    settings.onChange((s) => worker.applied(s.revision, settings.document()));
  }

  const crls = new CrlCache({ fetch: deps.fetchCrl ?? fetchCrl, log: serviceLog });
  const mtls = new MutualTlsAuthenticator({
    trust: () => {
      const s = settings.current();
      return s && { generation: settings.generation, trustedRoots: s.trustedRoots, intermediates: s.intermediates, crlCheck: s.crlCheck, ...(s.clientCertPolicy ? { policy: s.clientCertPolicy } : {}) };
    },
    revocation: crls,
    cacheMs: cfg.limits.authCacheMs,
  });
  const tokens = new TokenAuthenticator({
    instance: { name: cfg.instanceName, index: cfg.index },
    ...(deps.worker ? { shared: { nonceSecret: deps.worker.nonceSecret, useProof: deps.worker.useProof } } : {}),
    trust: () => {
      const s = settings.current();
      return s && { generation: settings.generation, tokens: s.tokens };
    },
  });
  const abuseGuard = new StreamAbuseGuard(source, cfg.limits, Date.now, (n, thumbprint) => {
    if (worthLogging(n)) httpLog.warn(`Client thumbprint ${thumbprint} was cut off for HTTP/2 stream abuse within the last ${cfg.limits.abuseWindowMs} ms: its new connection got GOAWAY ENHANCE_YOUR_CALM at once (${n} such connections so far)`);
  });
  const router = createRouter({
    source,
    settings,
    pool,
    authenticators: { [TOKEN_SCHEME]: tokens, ...deps.authenticators, CCM_Proxy_MutualAuth: mtls },
    limits: cfg.limits,
    log: httpLog,
    fairShare: new FairShare(source, cfg.limits),
    refusesSession: (s) => abuseGuard.refuses(s as ServerHttp2Session),
  });

  const opened: { close(graceMs?: number): Promise<void> }[] = [];
  try {
    let refusedNoTunnel = 0;
    const client = await startClientListener({
      host: cfg.client.host,
      port: worker?.clientPort ?? cfg.client.port,
      tickets: (keyPem) => new TicketKeys(ticketSecret(keyPem, cfg.name)),
      ...(worker
        ? {
            worker: {
              index: worker.index,
              reusePort: worker.reusePort,
              // A worker relays over its own tunnels only. Without one (its connection points have not
              // dialled it yet, or are of a version that dials worker 0 only) it says so, and the client's
              // retry comes on a new connection, which may reach another worker.
              refuse: (req, res) => {
                if (!settings.current() || pool.readyCount() > 0) return false;
                refusedNoTunnel++;
                if (worthLogging(refusedNoTunnel)) httpLog.warn(`Worker ${worker.index} has no tunnel: 503 worker_without_tunnel (${refusedNoTunnel} so far); its connection points have not dialled its tunnel port ${worker.tunnelPort} (a connection point of an earlier version dials worker 0 only)`);
                if (req.httpVersionMajor === 2) (req as unknown as Http2ServerRequest).stream.session?.close();
                reply(req, res, 503, "worker_without_tunnel", "this worker process of the gateway has no tunnel to a connection point; retry on a new connection", {
                  "retry-after": "1",
                  ...(req.httpVersionMajor === 1 ? { connection: "close" } : {}),
                });
                return true;
              },
            },
          }
        : {}),
      serverCert: cfg.serverCert,
      limits: cfg.limits,
      metrics,
      log: httpLog,
      handler: router,
      onSession: (s) => abuseGuard.watch(s),
    });
    opened.push(client);
    let serverThumbprint = thumbprintOfPem(cfg.serverCert.certPem);
    settings.onChange((s) => {
      client.applySettings(s);
      const t = s.serverCert ? thumbprintOfPem(s.serverCert.certPem) : serverThumbprint;
      if (t !== serverThumbprint) serviceLog.info(`Server authentication certificate changed from ${serverThumbprint} to ${t} (settings revision ${s.revision}): new connections get it, established ones keep theirs`);
      serverThumbprint = t;
    });
    const tunnel = await startTunnelListener({
      source,
      host: cfg.tunnel.host,
      port: worker?.tunnelPort ?? cfg.tunnel.port,
      cert: cfg.tunnel.cert,
      ...(worker ? { worker: { index: worker.index, tunnelPorts: () => worker.tunnelPorts() } } : {}),
      siteCaPem: cfg.tunnel.siteCaPem,
      instanceName: cfg.instanceName,
      limits: cfg.limits,
      pool,
      settings,
      metrics,
      log: serviceLog,
    });
    opened.push(tunnel);
    worker?.onTunnelPorts(() => tunnel.announceWorkers());

    const status = (): GatewayStatus => ({
      instance: cfg.instanceName,
      ready: pool.readyCount() > 0,
      settingsRevision: settings.current()?.revision ?? null,
      tunnels: pool.all().map((t) => ({ id: t.id, connectionPoint: t.connectionPoint, remote: t.remote, state: t.state, inFlight: t.inFlight })),
      connectionPoints: Object.fromEntries(pool.byConnectionPoint()),
      handshakes: { client: client.handshakes(), tunnel: tunnel.handshakes() },
    });

    let metricsServer: MetricsServer | null = null;
    if (cfg.metrics && !worker) {
      metricsServer = await serveMetrics(metrics.registry, cfg.metrics, () => ({ ok: pool.readyCount() > 0, ...status() }));
      opened.push(metricsServer);
    }
    worker?.listening(client.port, tunnel.port);
    if (worker) {
      // The primary answers /healthz for the instance from what each worker reports.
      worker.reportStatus(status());
      const reporting = setInterval(() => worker.reportStatus(status()), 1000);
      reporting.unref();
      opened.push({ close: async () => clearInterval(reporting) });
    }
    serviceLog.info(
      `Gateway instance ${cfg.instanceName}${worker ? ` worker ${worker.index} (pid ${process.pid})` : ""} started: clients on ${cfg.client.host}:${client.port}, connection points on ${cfg.tunnel.host}:${tunnel.port}` +
        (metricsServer ? `, metrics on ${cfg.metrics!.host}:${metricsServer.port}` : ""),
    );

    let stopping: Promise<void> | null = null;
    return {
      instanceName: cfg.instanceName,
      clientPort: client.port,
      tunnelPort: tunnel.port,
      metricsPort: metricsServer?.port ?? null,
      metrics,
      status,
      stop(opts) {
        stopping ??= (async () => {
          const graceMs = opts?.graceMs ?? 5000;
          serviceLog.info(`Gateway instance ${cfg.instanceName} stopping`);
          // Clients first (no new requests), then the tunnels once requests in flight are done.
          await client.close(graceMs);
          await tunnel.close(graceMs);
          await metricsServer?.close();
          crls.close();
          serviceLog.info(`Gateway instance ${cfg.instanceName} stopped`);
          unobserve();
        })();
        return stopping;
      },
    };
  } catch (err) {
    for (const o of opened.reverse()) await o.close(0);
    crls.close();
    unobserve();
    throw err;
  }
}

/** SHA-1 thumbprint of a PEM certificate (its first), as the platform shows them. */
function thumbprintOfPem(pem: string): string {
  return new X509Certificate(pem).fingerprint.replace(/:/g, "");
}

const MAX_CRL_BYTES = 32 * 1024 * 1024;

/** Plain HTTP(S) CRL download: the gateway is on the internet side, where CRLs are published. */
async function fetchCrl(url: string): Promise<Buffer> {
  const u = new URL(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`unsupported CRL URL scheme ${u.protocol}`);
  const res = await request(u, { method: "GET", headersTimeout: 10_000, bodyTimeout: 10_000 });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`HTTP ${res.statusCode}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_CRL_BYTES) {
      res.body.destroy();
      throw new Error(`CRL larger than ${MAX_CRL_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
