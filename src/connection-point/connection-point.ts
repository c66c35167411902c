/**
 * The CMG connection point: keeps `connectionsPerInstance` tunnels to **every** gateway instance of
 * its CMG (dialled outward, through the server's proxy when the caller's `dial` goes through
 * Egress), serves the gateway's requests on them by forwarding to the internal URLs of the
 * management points and software update points, pushes the settings (trusted roots, revocation
 * checking, URL map) on connect and on change, and reports health and traffic through callbacks
 * (the site layer writes them to the database). Like Teleport's agents, it reconciles: given a
 * list of instances it dials until it holds tunnels to each, and drops tunnels to removed ones.
 *
 * Tunnel states and health are published on the observe channels (`opencmg:tunnel:state`,
 * `opencmg:connection-point:health`) with this connection point's source; its metrics, its health
 * lines, the `onHealth` callback and the site's component status subscribe there.
 */
import type { Socket } from "node:net";
import { rootCertificates } from "node:tls";
import { Agent } from "undici";
import type { ComponentLog, LogSet } from "../logs/cmtrace.ts";
import { DEFAULT_METRICS_HOST, serveMetrics, type MetricsServer } from "../observe/prometheus.ts";
import { unverifiedSettings, type SignedSettings } from "../wire/tunnel/signed-settings.ts";
import type { BackoffOptions } from "./backoff.ts";
import { createForwarder, type BackendTarget, type ForwardResult, type ForwardUsage } from "./forwarder.ts";
import { ConnectionPointMetrics } from "./metrics.ts";
import { TunnelSlot, type GatewayEndpoint, type TunnelContext } from "./tunnel.ts";
import { LOG_FILES } from "../logs/files.ts";
import { newSource, topics, type HealthMessage, type Source } from "../observe/channels.ts";
import { computeHealth, type ComponentStatus, type HealthReport } from "./health.ts";
import { observeConnectionPoint } from "./observers.ts";
import { TrafficCounter, type TrafficReport } from "./traffic.ts";
import { directDial } from "./dial.ts";

export type { GatewayEndpoint } from "./tunnel.ts";
export type { BackendTarget } from "./forwarder.ts";
export type { ComponentStatus, HealthReport, InstanceHealth } from "./health.ts";
export type { InstanceTraffic, KindTraffic, TrafficReport } from "./traffic.ts";
export { TUNNEL_KIND } from "./traffic.ts";

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

export interface ConnectionPointOptions {
  /** This connection point's name (its server's FQDN), sent in the hello. */
  name: string;
  /**
   * What its tunnel states and health are published with (default: a new source). Pass one to
   * subscribe before the start, so no event of the start is missed.
   */
  source?: Source;
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
  /**
   * The site's signed settings document (signed-settings.ts): pushed to every instance as it is.
   * The connection point reads its URL map too (defence in depth) but cannot change it.
   */
  settings: SignedSettings;
  /** roleId -> internal URL of the role (string or { url }). */
  backends: Record<string, BackendTarget | string>;
  /** TLS to the backends: extra CAs (default: system roots + the site CA), optional client certificate. */
  backendTls?: { ca?: string[]; certPem?: string; keyPem?: string };
  log: ConnectionPointLogs;
  onHealth?: (r: HealthReport) => void | Promise<void>;
  /** Default 60 s. */
  healthIntervalMs?: number;
  onTraffic?: (r: TrafficReport) => void | Promise<void>;
  /** Default 5 min. A function is read again before each wait: a changed interval applies from the next report. */
  trafficIntervalMs?: number | (() => number);
  reconnect?: BackoffOptions;
  /** Dial + TLS limit, ms (default 15 s). */
  dialTimeoutMs?: number;
  /** HTTP/2 keep-alive PING interval, ms (default 15 s). */
  pingMs?: number;
  backendHeadersTimeoutMs?: number;
  backendBodyTimeoutMs?: number;
  /** Prometheus metrics listener (host default 127.0.0.1). Absent or null: none. */
  metrics?: { host?: string; port: number } | null;
  /**
   * Dial every worker process of an instance that names its workers' tunnel ports (default true).
   * False: only the instances' own endpoints, as connection points before workers existed did
   * (compatibility tests).
   */
  followWorkers?: boolean;
}

export interface ConnectionPoint {
  /** Subscribe to the observe channels for this source to follow this connection point. */
  readonly source: Source;
  readonly metrics: ConnectionPointMetrics;
  readonly metricsPort: number | null;
  /** New settings (pushed to every instance), backends, or instance list (reconciled). */
  update(patch: { settings?: SignedSettings; backends?: Record<string, BackendTarget | string>; instances?: GatewayEndpoint[] }): void;
  health(): HealthReport;
  /** The traffic interval changed: the next report comes one new interval after the last one (at once if that is past). */
  retimeTraffic(): void;
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
  const metrics = new ConnectionPointMetrics(o.name, { processMetrics: Boolean(o.metrics) });
  let document = o.settings;
  let settings = unverifiedSettings(document);
  let backends = toBackendMap(o.backends);

  const dispatcher = new Agent({
    connect: {
      ca: o.backendTls?.ca ?? [...rootCertificates, o.tls.siteCaPem],
      ...(o.backendTls?.certPem ? { cert: o.backendTls.certPem, key: o.backendTls.keyPem } : {}),
    },
    keepAliveTimeout: 30_000,
  });

  // Traffic since the last report.
  const traffic = new TrafficCounter(o.name);
  // Label children resolved once per label set: these move on every request, and a lookup by a
  // labels object hashes it each time.
  const counted = new Map<ForwardResult, { inc(): void }>();
  const timed = new Map<string, { observe(seconds: number): void }>();
  const record = (roleId: string, result: ForwardResult, usage: ForwardUsage, seconds: number): void => {
    let c = counted.get(result);
    if (!c) counted.set(result, (c = metrics.requests.labels({ result })));
    c.inc();
    const kind = usage.kind === "-" ? "unknown" : usage.kind;
    const key = `${kind} ${result}`;
    let h = timed.get(key);
    if (!h) timed.set(key, (h = metrics.requestDuration.labels({ role_kind: kind, result })));
    h.observe(seconds);
    traffic.request(roleId, result, usage);
  };

  const forward = createForwarder({
    routes: () => ({ settings, backends }),
    dispatcher,
    log,
    record,
    headersTimeoutMs: o.backendHeadersTimeoutMs,
    bodyTimeoutMs: o.backendBodyTimeoutMs,
  });

  const source = o.source ?? newSource("connection-point", o.name);
  const ctx: TunnelContext = {
    source,
    connectionPoint: o.name,
    dial: o.dial ?? directDial,
    tls: { certPem: o.tls.certPem, keyPem: o.tls.keyPem, ca: [o.tls.siteCaPem, ...(o.tls.gatewayCaPem ?? [])] },
    settings: () => document,
    onStream: forward,
    log,
    serviceLog,
    backoff: o.reconnect ?? {},
    dialTimeoutMs: o.dialTimeoutMs ?? 15_000,
    pingMs: o.pingMs ?? 15_000,
    changed: () => onChange(),
    onBytes: (gateway, sent, received) => {
      traffic.bytes(gateway, sent, received);
      metrics.bytes.inc({ direction: "out" }, sent);
      metrics.bytes.inc({ direction: "in" }, received);
    },
    onHandshakeFailure: () => metrics.handshakeFailures.inc(),
    onWorkers: (slot, ports) => {
      if (o.followWorkers === false) return;
      // Worker 0 is the instance's own endpoint; the others listen on the same host.
      const parent = instanceOf.get(keyOf(slot.endpoint)) ?? keyOf(slot.endpoint);
      const base = instanceList.find((i) => keyOf(i) === parent);
      if (!base) return;
      const extra = ports.slice(1).filter((p) => p > 0 && p !== base.port);
      const before = JSON.stringify(workerPorts.get(parent) ?? []);
      if (before === JSON.stringify(extra)) return;
      workerPorts.set(parent, extra);
      log.info(`Instance ${parent} runs ${ports.length} worker processes: dialling their tunnel ports ${extra.join(", ") || "(none)"} too`);
      reconcile(instanceList);
    },
  };

  const slots = new Map<string, TunnelSlot[]>();
  /** Tunnel ports of instances' workers beyond worker 0, by instance ("host:port"); and which instance a worker endpoint belongs to. */
  const workerPorts = new Map<string, number[]>();
  const instanceOf = new Map<string, string>();
  let instanceList: GatewayEndpoint[] = o.instances;
  const waiters = new Set<() => void>();
  const connectedTo = (gateway: string): number | undefined => slots.get(gateway)?.filter((s) => s.state === "connected").length;
  const unobserve = observeConnectionPoint({ source, metrics, service: serviceLog, connectedTo });
  const unreport = topics.connectionPointHealth.subscribe((m) => {
    if (m.trigger === "interval") report("health", o.onHealth, m.report);
  }, source);

  // Health is published on every status change, on the report interval, and once stopped.
  let lastStatus: ComponentStatus | null = null;
  function publishHealth(trigger: HealthMessage["trigger"], h = health()): void {
    // A change is always published as one, whatever found it first.
    if (trigger !== "change" && h.status !== lastStatus) publishHealth("change", h);
    const previous = lastStatus;
    lastStatus = h.status;
    if (topics.connectionPointHealth.active) topics.connectionPointHealth.publish({ source, trigger, report: h, previous });
  }

  function onChange(): void {
    const h = health();
    if (h.status !== lastStatus) publishHealth("change", h);
    for (const w of waiters) w();
  }

  function reconcile(instances: GatewayEndpoint[]): void {
    instanceList = instances;
    const wanted = new Map(instances.map((i) => [keyOf(i), i]));
    // Each worker of an instance (workers.ts at the gateway) is dialled like an instance of its own.
    instanceOf.clear();
    for (const [key, ports] of workerPorts) {
      const base = wanted.get(key);
      if (!base) {
        workerPorts.delete(key);
        continue;
      }
      for (const port of ports) {
        const w: GatewayEndpoint = { ...base, port };
        if (!wanted.has(keyOf(w))) {
          wanted.set(keyOf(w), w);
          instanceOf.set(keyOf(w), key);
        }
      }
    }
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
    return computeHealth(o.name, [...slots.values()], settings.revision);
  }

  function report<T>(name: string, cb: ((r: T) => void | Promise<void>) | undefined, r: T): void {
    if (!cb) return;
    Promise.resolve()
      .then(() => cb(r))
      .catch((err: Error) => serviceLog.error(`The ${name} report could not be delivered: ${err.message}`));
  }

  function takeTraffic(): TrafficReport {
    for (const list of slots.values()) for (const s of list) s.flushBytes();
    return traffic.take();
  }

  let metricsServer: MetricsServer | null = null;
  if (o.metrics) {
    metricsServer = await serveMetrics(metrics.registry, { host: o.metrics.host ?? DEFAULT_METRICS_HOST, port: o.metrics.port }, () => {
      const h = health();
      return { ...h, ok: h.status !== "critical" };
    });
  }

  log.info(
    `Connection point ${o.name} starting: ${o.instances.length} instance(s), ${perInstance} tunnel(s) each, settings revision ${settings.revision}` +
      (metricsServer ? `; metrics on ${o.metrics!.host ?? DEFAULT_METRICS_HOST}:${metricsServer.port}` : ""),
  );
  reconcile(o.instances);

  const healthTimer = setInterval(() => publishHealth("interval"), o.healthIntervalMs ?? 60_000);
  const trafficInterval = (): number => {
    const v = typeof o.trafficIntervalMs === "function" ? o.trafficIntervalMs() : o.trafficIntervalMs;
    return v !== undefined && Number.isFinite(v) && v > 0 ? v : 300_000;
  };
  let trafficTimer: NodeJS.Timeout | undefined;
  let lastTraffic = Date.now();
  const scheduleTraffic = (): void => {
    clearTimeout(trafficTimer);
    trafficTimer = setTimeout(() => {
      report("traffic", o.onTraffic, takeTraffic());
      lastTraffic = Date.now();
      scheduleTraffic();
    }, Math.max(0, lastTraffic + trafficInterval() - Date.now()));
    trafficTimer.unref();
  };
  scheduleTraffic();
  healthTimer.unref();

  let stopping: Promise<void> | null = null;
  return {
    source,
    metrics,
    metricsPort: metricsServer?.port ?? null,
    update(patch) {
      if (patch.backends) backends = toBackendMap(patch.backends);
      if (patch.settings) {
        const next = unverifiedSettings(patch.settings);
        if (JSON.stringify(patch.settings) !== JSON.stringify(document)) {
          settings = next;
          document = patch.settings;
          serviceLog.info(`Pushing the site's settings revision ${settings.revision} to every instance`);
          for (const list of slots.values()) for (const s of list) s.pushSettings(document);
        }
      }
      if (patch.instances) reconcile(patch.instances);
      onChange();
    },
    health,
    retimeTraffic() {
      if (!stopping) scheduleTraffic();
    },
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
        clearTimeout(trafficTimer);
        log.info(`Connection point ${o.name} stopping: draining tunnels`);
        await Promise.all([...slots.values()].flat().map((s) => s.stop(drainMs)));
        report("traffic", o.onTraffic, takeTraffic());
        // Every tunnel is closed: no backend answer can reach a device any more, so requests still
        // open to a role are cancelled rather than waited for (up to the role's own timeouts).
        await dispatcher.destroy().catch(() => undefined);
        await metricsServer?.close();
        publishHealth("stop");
        unreport();
        unobserve();
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
