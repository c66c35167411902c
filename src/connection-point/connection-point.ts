/**
 * The CMG connection point: keeps `connectionsPerInstance` tunnels to **every** gateway instance of
 * its CMG (dialled outward, through the server's proxy when the caller's `dial` goes through
 * Egress), serves the gateway's requests on them by forwarding to the internal URLs of the
 * management points and software update points, pushes the settings (trusted roots, revocation
 * checking, URL map) on connect and on change, and reports health and traffic through callbacks
 * (the site layer writes them to the database). Like Teleport's agents, it reconciles: given a
 * list of instances it dials until it holds tunnels to each, and drops tunnels to removed ones.
 */
import { connect as netConnect, type Socket } from "node:net";
import { rootCertificates } from "node:tls";
import { Agent } from "undici";
import type { ComponentLog, LogSet } from "../logs/cmtrace.ts";
import { serveMetrics, type MetricsServer } from "../gateway/metrics.ts";
import { parseSettings, type CmgSettings } from "../wire/tunnel/protocol.ts";
import type { BackoffOptions } from "./backoff.ts";
import { createForwarder, type BackendTarget, type ForwardResult } from "./forwarder.ts";
import { ConnectionPointMetrics } from "./metrics.ts";
import { TunnelSlot, type GatewayEndpoint, type TunnelContext } from "./tunnel.ts";
import { LOG_FILES } from "../logs/files.ts";

export type { GatewayEndpoint } from "./tunnel.ts";
export type { BackendTarget } from "./forwarder.ts";

/** The log files of a connection point. */
export interface ConnectionPointLogs {
  /** SMS_Cloud_ProxyConnector.log (component SMS_CLOUD_PROXYCONNECTOR): tunnels and relayed requests. */
  connector: ComponentLog;
  /** CMGService.log: settings pushed and applied, health changes. */
  service: ComponentLog;
}

/**
 * @example
 * const cp = await startConnectionPoint({ ..., log: connectionPointLogs(new LogSet({ dir })) });
 */
export function connectionPointLogs(logs: LogSet): ConnectionPointLogs {
  return {
    connector: logs.component(LOG_FILES.cloudProxyConnector),
    service: logs.component(LOG_FILES.cmgService),
  };
}

/** Component status of SMS_CLOUD_PROXYCONNECTOR, as the site shows it. */
export type ComponentStatus = "ok" | "warning" | "critical";

export interface InstanceHealth {
  host: string;
  port: number;
  /** Instance name from the gateway's hello (null until a tunnel is up). */
  instance: string | null;
  connected: number;
  wanted: number;
  /** Settings revision the instance confirmed (null: none confirmed yet). */
  revisionInForce: number | null;
  lastError: { code: number | string; message: string; at: Date } | null;
}

export interface HealthReport {
  at: Date;
  connectionPoint: string;
  /**
   * ok: every tunnel up and this connection point's settings revision in force everywhere;
   * warning: every instance reachable, but not all tunnels up or another revision in force somewhere;
   * critical: an instance has no tunnel.
   */
  status: ComponentStatus;
  message: string;
  settingsRevision: number;
  instances: InstanceHealth[];
}

export interface TrafficReport {
  from: Date;
  to: Date;
  connectionPoint: string;
  requests: number;
  /** Requests refused here or not answered by the backend. */
  failed: number;
  /** Bytes sent to the gateways (≈ the gateways' outbound traffic to clients), TLS included. */
  bytesToGateway: number;
  /** Bytes received from the gateways. */
  bytesFromGateway: number;
  byRole: Record<string, { requests: number; failed: number }>;
}

export interface ConnectionPointOptions {
  /** This connection point's name (its server's FQDN), sent in the hello. */
  name: string;
  /** Every instance of the CMG. */
  instances: GatewayEndpoint[];
  /** Opens a TCP connection to an instance: `egress.connect` (through the proxy) in production; direct by default. */
  dial?: (host: string, port: number) => Promise<Socket>;
  tls: {
    /** Tunnel client certificate issued by the site CA. */
    certPem: string;
    keyPem: string;
    /** The site CA: instances' tunnel certificates are checked against it. */
    siteCaPem: string;
    /** More CAs for the instances' tunnel certificates (when they present the public server certificate). */
    gatewayCaPem?: string[];
  };
  /** Tunnels per instance (default 2). */
  connectionsPerInstance?: number;
  settings: CmgSettings;
  /** roleId -> internal URL of the role (string or { url }). */
  backends: Record<string, BackendTarget | string>;
  /** TLS to the backends: extra CAs (default: system roots + the site CA), optional client certificate. */
  backendTls?: { ca?: string[]; certPem?: string; keyPem?: string };
  log: ConnectionPointLogs;
  onHealth?: (r: HealthReport) => void | Promise<void>;
  /** Default 60 s. */
  healthIntervalMs?: number;
  onTraffic?: (r: TrafficReport) => void | Promise<void>;
  /** Default 5 min. */
  trafficIntervalMs?: number;
  reconnect?: BackoffOptions;
  /** Dial + TLS limit, ms (default 15 s). */
  dialTimeoutMs?: number;
  /** HTTP/2 keep-alive PING interval, ms (default 15 s). */
  pingMs?: number;
  backendHeadersTimeoutMs?: number;
  backendBodyTimeoutMs?: number;
  metrics?: { host?: string; port: number } | null;
}

export interface ConnectionPoint {
  readonly metrics: ConnectionPointMetrics;
  readonly metricsPort: number | null;
  /** New settings (pushed to every instance), backends, or instance list (reconciled). */
  update(patch: { settings?: CmgSettings; backends?: Record<string, BackendTarget | string>; instances?: GatewayEndpoint[] }): void;
  health(): HealthReport;
  /** Resolves once every instance has at least `perInstance` (default 1) connected tunnel(s); rejects after `timeoutMs`. */
  waitConnected(opts?: { perInstance?: number; timeoutMs?: number }): Promise<void>;
  /** GOAWAY on every tunnel, `drainMs` (default 5 s) for requests in flight, then closes. Sends a last traffic report. */
  stop(opts?: { drainMs?: number }): Promise<void>;
}

/**
 * Starts the connection point. Resolves once started (tunnels keep dialling in the background).
 *
 * @example
 * const egress = new Egress(route, { log });
 * const cp = await startConnectionPoint({
 *   name: "cp1.contoso.local",
 *   instances: [{ host: "cmg.contoso.com", port: 10140 }, { host: "cmg.contoso.com", port: 10141 }],
 *   dial: (host, port) => egress.connect(host, port),
 *   tls: { certPem, keyPem, siteCaPem },
 *   settings: { revision: Date.now(), trustedRoots, intermediates: [], crlCheck: true, urlMap: { "72057594037927941": { kind: "mp", allowCmgTraffic: true } } },
 *   backends: { "72057594037927941": "https://mp1.contoso.local" },
 *   log: connectionPointLogs(logSet),
 *   onHealth: (h) => site.componentStatus("SMS_CLOUD_PROXYCONNECTOR", h),
 *   onTraffic: (t) => site.recordTraffic(t),
 * });
 */
export async function startConnectionPoint(o: ConnectionPointOptions): Promise<ConnectionPoint> {
  const log = o.log.connector;
  const serviceLog = o.log.service;
  const perInstance = o.connectionsPerInstance ?? 2;
  const metrics = new ConnectionPointMetrics(o.name);
  let settings = parseSettings(o.settings);
  let backends = toBackendMap(o.backends);

  const dispatcher = new Agent({
    connect: {
      ca: o.backendTls?.ca ?? [...rootCertificates, o.tls.siteCaPem],
      ...(o.backendTls?.certPem ? { cert: o.backendTls.certPem, key: o.backendTls.keyPem } : {}),
    },
    keepAliveTimeout: 30_000,
  });

  // Traffic since the last report.
  let traffic = emptyTraffic();
  const record = (roleId: string, result: ForwardResult): void => {
    metrics.requests.inc({ result });
    if (result === "cancelled") return;
    const failed = result === "ok" ? 0 : 1;
    traffic.requests++;
    traffic.failed += failed;
    const r = (traffic.byRole[roleId || "-"] ??= { requests: 0, failed: 0 });
    r.requests++;
    r.failed += failed;
  };

  const forward = createForwarder({
    routes: () => ({ settings, backends }),
    dispatcher,
    log,
    record,
    headersTimeoutMs: o.backendHeadersTimeoutMs,
    bodyTimeoutMs: o.backendBodyTimeoutMs,
  });

  let lastStatus: ComponentStatus | null = null;
  const ctx: TunnelContext = {
    connectionPoint: o.name,
    dial: o.dial ?? directDial,
    tls: { certPem: o.tls.certPem, keyPem: o.tls.keyPem, ca: [o.tls.siteCaPem, ...(o.tls.gatewayCaPem ?? [])] },
    settings: () => settings,
    onStream: forward,
    log,
    serviceLog,
    backoff: o.reconnect ?? {},
    dialTimeoutMs: o.dialTimeoutMs ?? 15_000,
    pingMs: o.pingMs ?? 15_000,
    changed: () => onChange(),
    onBytes: (sent, received) => {
      traffic.bytesToGateway += sent;
      traffic.bytesFromGateway += received;
      metrics.bytes.inc({ direction: "out" }, sent);
      metrics.bytes.inc({ direction: "in" }, received);
    },
    onHandshakeFailure: () => metrics.handshakeFailures.inc(),
  };

  const slots = new Map<string, TunnelSlot[]>();
  const waiters = new Set<() => void>();
  const connectedBefore = new WeakSet<TunnelSlot>();

  function onChange(): void {
    for (const [key, list] of slots) {
      metrics.tunnels.set({ gateway: key }, list.filter((s) => s.state === "connected").length);
      for (const s of list) {
        if (s.state === "connected" && !connectedBefore.has(s)) {
          connectedBefore.add(s);
          metrics.tunnelConnects.inc();
        } else if (s.state !== "connected") connectedBefore.delete(s);
      }
    }
    const h = health();
    if (h.status !== lastStatus) {
      const line = `Connection point ${o.name} is ${h.status}: ${h.message}`;
      if (h.status === "ok") serviceLog.info(line);
      else if (lastStatus !== null) serviceLog.warn(line);
      lastStatus = h.status;
    }
    for (const w of waiters) w();
  }

  function reconcile(instances: GatewayEndpoint[]): void {
    const wanted = new Map(instances.map((i) => [keyOf(i), i]));
    for (const [key, list] of slots) {
      if (!wanted.has(key)) {
        slots.delete(key);
        metrics.tunnels.remove({ gateway: key });
        log.info(`Instance ${key} left the CMG; closing its tunnels`);
        for (const s of list) void s.stop(5000);
      }
    }
    for (const [key, endpoint] of wanted) {
      if (slots.has(key)) continue;
      const list = Array.from({ length: perInstance }, (_, i) => new TunnelSlot(endpoint, i, ctx));
      slots.set(key, list);
      for (const s of list) s.start();
    }
    onChange();
  }

  function health(): HealthReport {
    const instances: InstanceHealth[] = [...slots.values()].map((list) => {
      const e = list[0]!.endpoint;
      const up = list.filter((s) => s.state === "connected");
      return {
        host: e.host,
        port: e.port,
        instance: up.find((s) => s.instance)?.instance ?? null,
        connected: up.length,
        wanted: list.length,
        revisionInForce: up.reduce<number | null>((m, s) => (s.revisionInForce === null ? m : Math.max(m ?? -Infinity, s.revisionInForce)), null),
        lastError: list.map((s) => s.lastError).find((x) => x !== null) ?? null,
      };
    });
    const down = instances.filter((i) => i.connected === 0);
    const partial = instances.filter((i) => i.connected > 0 && i.connected < i.wanted);
    // Either way is worth a look: an instance behind has not taken the push; an instance ahead got
    // newer settings from another connection point than this one has from the site.
    const stale = instances.filter((i) => i.connected > 0 && i.revisionInForce !== null && i.revisionInForce !== settings.revision);
    let status: ComponentStatus = "ok";
    let message = `${instances.length} instance(s), all tunnels up`;
    if (instances.length === 0) {
      status = "critical";
      message = "no gateway instance to connect to";
    } else if (down.length > 0) {
      status = "critical";
      message = down.map((i) => `no tunnel to ${i.host}:${i.port}${i.lastError ? ` (${i.lastError.code}: ${i.lastError.message})` : ""}`).join("; ");
    } else if (partial.length > 0 || stale.length > 0) {
      status = "warning";
      message = [
        ...partial.map((i) => `${i.connected} of ${i.wanted} tunnels to ${i.host}:${i.port}`),
        ...stale.map((i) => `${i.host}:${i.port} enforces settings revision ${i.revisionInForce}, this connection point has ${settings.revision}`),
      ].join("; ");
    }
    return { at: new Date(), connectionPoint: o.name, status, message, settingsRevision: settings.revision, instances };
  }

  function report<T>(name: string, cb: ((r: T) => void | Promise<void>) | undefined, r: T): void {
    if (!cb) return;
    Promise.resolve()
      .then(() => cb(r))
      .catch((err: Error) => serviceLog.error(`The ${name} report could not be delivered: ${err.message}`));
  }

  function takeTraffic(): TrafficReport {
    for (const list of slots.values()) for (const s of list) s.flushBytes();
    const t = traffic;
    traffic = emptyTraffic();
    return { ...t, to: new Date(), connectionPoint: o.name };
  }

  let metricsServer: MetricsServer | null = null;
  if (o.metrics) {
    metricsServer = await serveMetrics(metrics.registry, { host: o.metrics.host ?? "127.0.0.1", port: o.metrics.port }, () => {
      const h = health();
      return { ...h, ok: h.status !== "critical" };
    });
  }

  log.info(`Connection point ${o.name} starting: ${o.instances.length} instance(s), ${perInstance} tunnel(s) each, settings revision ${settings.revision}`);
  reconcile(o.instances);

  const healthTimer = setInterval(() => report("health", o.onHealth, health()), o.healthIntervalMs ?? 60_000);
  const trafficTimer = setInterval(() => report("traffic", o.onTraffic, takeTraffic()), o.trafficIntervalMs ?? 300_000);
  healthTimer.unref();
  trafficTimer.unref();

  let stopping: Promise<void> | null = null;
  return {
    metrics,
    metricsPort: metricsServer?.port ?? null,
    update(patch) {
      if (patch.backends) backends = toBackendMap(patch.backends);
      if (patch.settings) {
        const next = parseSettings(patch.settings);
        if (next.revision !== settings.revision || JSON.stringify(next) !== JSON.stringify(settings)) {
          settings = next;
          serviceLog.info(`Pushing settings revision ${settings.revision} to every instance`);
          for (const list of slots.values()) for (const s of list) s.pushSettings(settings);
        }
      }
      if (patch.instances) reconcile(patch.instances);
      onChange();
    },
    health,
    waitConnected({ perInstance: n = 1, timeoutMs = 30_000 } = {}) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (health().instances.every((i) => i.connected >= n)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`tunnels not connected within ${timeoutMs} ms: ${health().message}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    stop({ drainMs = 5000 } = {}) {
      stopping ??= (async () => {
        clearInterval(healthTimer);
        clearInterval(trafficTimer);
        log.info(`Connection point ${o.name} stopping: draining tunnels`);
        await Promise.all([...slots.values()].flat().map((s) => s.stop(drainMs)));
        report("traffic", o.onTraffic, takeTraffic());
        await dispatcher.close().catch(() => dispatcher.destroy());
        await metricsServer?.close();
        log.info(`Connection point ${o.name} stopped`);
      })();
      return stopping;
    },
  };
}

function keyOf(e: GatewayEndpoint): string {
  return `${e.host}:${e.port}`;
}

function toBackendMap(b: Record<string, BackendTarget | string>): Map<string, BackendTarget> {
  return new Map(Object.entries(b).map(([roleId, t]) => [roleId, typeof t === "string" ? { url: t } : { url: t.url }]));
}

function emptyTraffic(): Omit<TrafficReport, "to" | "connectionPoint"> {
  return { from: new Date(), requests: 0, failed: 0, bytesToGateway: 0, bytesFromGateway: 0, byRole: {} };
}

/** Direct TCP (no proxy): resolves once connected. */
function directDial(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host, port });
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}
