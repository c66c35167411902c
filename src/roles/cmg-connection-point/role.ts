/**
 * Runs the CMG connection point role of a site system server: reads its CMG from the site, dials
 * every instance through the server's proxy (the egress route of `cmg-connection-point`), pushes
 * the client-authentication settings and URL map, follows changes at the site, and records health
 * (component SMS_CLOUD_PROXYCONNECTOR) and traffic in the site database. Health reaches the site as
 * a subscriber of the connection point's `opencmg:connection-point:health` channel: on the report
 * interval, when the status changes, and once stopped.
 */
import { connectionPointLogs, startConnectionPoint, type ConnectionPoint, type GatewayEndpoint, type HealthReport, type TrafficReport } from "../../connection-point/connection-point.ts";
import { OpenCmgError } from "../../errors.ts";
import type { ComponentState } from "../../site/model.ts";
import type { EgressProvider } from "../../egress/pool.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import type { TrafficRecord } from "../../site/services/cmg-traffic.ts";
import { newSource, topics, type HealthMessage } from "../../observe/channels.ts";
import type { ConnectionPointConfig, ConnectionPointSite } from "./site-link.ts";

export type { ConnectionPointConfig, ConnectionPointSite } from "./site-link.ts";

/**
 * What the connection point role needs (app/role-deps.ts builds it): the site, read and written
 * either through its services (in the site's own process, `opencmg up`) or over mutually
 * authenticated TLS from a joined server that has no database and no site key (joined.ts).
 */
export interface ConnectionPointRoleDeps {
  site: ConnectionPointSite;
  logs: LogSet;
  egress: EgressProvider;
}

export interface ConnectionPointRoleOptions {
  /** Health report interval (default 60 s, as the documents' connector reports). */
  healthIntervalMs?: number;
  /** Traffic report interval (default: the site's traffic-report-interval, 5 min unless set). */
  trafficIntervalMs?: number;
  /** How often site changes (roles, CMG settings) are looked for (default 10 s). */
  pollMs?: number;
  connectionsPerInstance?: number;
  metricsPort?: number | null;
  /** Address the metrics listener binds (default 127.0.0.1). */
  metricsHost?: string;
}

export interface RunningConnectionPoint {
  cmg: string;
  cp: ConnectionPoint;
  /** Reads the site again and pushes what changed (also runs on a timer). */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

const DEFAULT_TRAFFIC_INTERVAL_MS = 5 * 60_000;

const STATE: Record<HealthReport["status"], ComponentState> = { ok: "OK", warning: "Warning", critical: "Critical" };

export async function runConnectionPointRole(deps: ConnectionPointRoleDeps, fqdnInput: string, o: ConnectionPointRoleOptions = {}): Promise<RunningConnectionPoint> {
  const fqdn = fqdnInput.toLowerCase();
  const site = deps.site;
  // The certificate first: the settings signed next admit it, so the first tunnels are admitted at once.
  const tls = await site.tunnelCertificate(fqdn);
  const first = await site.config(fqdn);
  const cmg = first.cmg;
  const log = connectionPointLogs(deps.logs);
  // A stopped or deleted CMG has no instance to dial: the tunnels drain and end.
  const instancesOf = (v: ConnectionPointConfig["cmg"]) => (v.runState === "running" ? v.instances.map((i) => ({ host: i.tunnelHost, port: i.tunnelPort })) : []);
  let view = cmg;
  /** Set once the CMG was deleted at the site: nothing more is written for it. */
  let deleted = false;

  // The site signs the settings and assigns their revision; this connection point only carries them.
  let settings = first.settings;
  let backends = first.backends;
  let instances = instancesOf(cmg);
  let lastState: ComponentState | undefined;
  let trafficIntervalMs = o.trafficIntervalMs ?? first.trafficIntervalMs ?? DEFAULT_TRAFFIC_INTERVAL_MS;

  const onHealth = async (h: HealthReport): Promise<void> => {
    if (deleted || view.runState === "deleting") return;
    if (view.runState !== "running") {
      // Idle on purpose: no misleading Critical, and the tunnels are reported down at once so the CMG turns Stopped.
      const why = view.runState === "stopped" ? "stopped" : "being deleted";
      await site.report(fqdn, { cmg: cmg.name, state: "OK", message: `CMG ${cmg.name} is ${why}: no tunnels to keep`, tunnels: view.instances.map((i) => ({ instance: i.index, connected: false, detail: `CMG ${why}` })) });
      lastState = "OK";
      return;
    }
    const state = STATE[h.status];
    const tunnels = instances.map((inst, index) => {
      const ih = h.instances.find((x) => x.host === inst.host && x.port === inst.port);
      return { instance: index, connected: (ih?.connected ?? 0) > 0, detail: ih?.lastError ? `error ${ih.lastError.code}: ${ih.lastError.message}` : `${ih?.connected ?? 0} of ${ih?.wanted ?? 0} tunnels connected` };
    });
    const changed = lastState !== undefined && lastState !== state;
    await site.report(fqdn, { cmg: cmg.name, state, message: h.message, tunnels, ...(changed ? { changed: true } : {}) });
    lastState = state;
  };

  // Health messages are written to the site one after the other, in the order they came.
  const source = newSource("connection-point", fqdn);
  let writing: Promise<void> = Promise.resolve();
  const onMessage = (m: HealthMessage): void => {
    // Until the first report (below), a change is the start-up itself: tunnels still dialling.
    if (m.trigger === "change" && lastState === undefined) return;
    writing = writing.then(() => onHealth(m.report)).catch((e: unknown) => log.service.warn(`Could not record the connection point's health at the site: ${(e as Error).message}`));
  };
  const unsubscribe = topics.connectionPointHealth.subscribe(onMessage, source);

  let cp: ConnectionPoint;
  try {
    cp = await startConnectionPoint({
      source,
      name: fqdn,
      instances,
      dial: async (host, port) => {
        // Resolved per dial: a proxy configuration replaced at the site applies to the next tunnel.
        const { egress } = await deps.egress.for(fqdn, "cmg-connection-point", log.connector);
        return egress.connect(host, port);
      },
      tls: { certPem: tls.certPem, keyPem: tls.keyPem, siteCaPem: site.caPem },
      settings,
      backends,
      backendTls: { ca: [site.caPem], certPem: tls.certPem, keyPem: tls.keyPem },
      log,
      onTraffic: (t) => site.traffic(fqdn, cmg.name, trafficRecords(t, instances)),
      ...(o.healthIntervalMs ? { healthIntervalMs: o.healthIntervalMs } : {}),
      // Read before each wait; a change found by refresh() retimes the wait under way.
      trafficIntervalMs: () => trafficIntervalMs,
      ...(o.connectionsPerInstance ? { connectionsPerInstance: o.connectionsPerInstance } : {}),
      ...(o.metricsPort !== undefined ? { metrics: o.metricsPort === null ? null : { port: o.metricsPort, ...(o.metricsHost ? { host: o.metricsHost } : {}) } } : {}),
    });
  } catch (err) {
    unsubscribe();
    throw err;
  }
  log.service.info(`Connection point on ${fqdn} started for CMG ${cmg.name}: ${instances.length} instance(s), ${Object.keys(backends).length} role(s) allowing CMG traffic.`);

  const refresh = async (): Promise<void> => {
    if (deleted) return;
    let next: ConnectionPointConfig;
    try {
      next = await site.config(fqdn, cmg.name);
    } catch (e) {
      if (!(e instanceof OpenCmgError && e.kind === "not_found")) throw e;
      deleted = true;
      log.service.info(`CMG ${cmg.name} was deleted at the site: ending every tunnel; this connection point stays idle until it is stopped.`);
      instances = [];
      cp.update({ instances: [] });
      return;
    }
    const { settings: nextSettings, backends: nextBackends } = next;
    const wasRunning = view.runState === "running";
    view = next.cmg;
    if (wasRunning !== (view.runState === "running")) log.service.info(`CMG ${cmg.name} is now ${view.runState}: ${view.runState === "running" ? "dialling its instances again" : "draining and ending the tunnels"}.`);
    if (o.trafficIntervalMs === undefined) {
      const nextInterval = next.trafficIntervalMs ?? DEFAULT_TRAFFIC_INTERVAL_MS;
      if (nextInterval !== trafficIntervalMs) {
        log.service.info(`Traffic reports every ${Math.round(nextInterval / 1000)} s (site setting traffic-report-interval).`);
        trafficIntervalMs = nextInterval;
        cp.retimeTraffic();
      }
    }
    const patch: Parameters<ConnectionPoint["update"]>[0] = {};
    // A changed document has a new revision, assigned by the site.
    if (JSON.stringify(nextSettings) !== JSON.stringify(settings)) patch.settings = settings = nextSettings;
    if (JSON.stringify(nextBackends) !== JSON.stringify(backends)) patch.backends = backends = nextBackends;
    const nextInstances = instancesOf(view);
    if (JSON.stringify(nextInstances) !== JSON.stringify(instances)) patch.instances = instances = nextInstances;
    if (Object.keys(patch).length > 0) {
      log.service.info(`Site changes for CMG ${cmg.name}: ${Object.keys(patch).join(", ")} pushed to the instances.`);
      cp.update(patch);
    }
  };
  const timer = setInterval(() => {
    refresh().catch((e: unknown) => log.service.warn(`Could not read the site's CMG settings: ${(e as Error).message}`));
  }, o.pollMs ?? 10_000);
  timer.unref();
  // A first report soon, so the CMG's status does not wait a whole interval.
  const firstReport = setTimeout(() => onMessage({ source, trigger: "interval", report: cp.health(), previous: null }), 2000);
  firstReport.unref();

  return {
    cmg: cmg.name,
    cp,
    refresh,
    async stop() {
      clearInterval(timer);
      clearTimeout(firstReport);
      // The connection point publishes its last health report as it stops.
      await cp.stop();
      unsubscribe();
      await writing;
    },
  };
}

/**
 * A connection point's report as the site's rows: one per instance (its index in the CMG) and role
 * kind. Traffic of an instance that left the CMG meanwhile keeps a null index rather than being lost.
 */
export function trafficRecords(t: TrafficReport, instances: readonly GatewayEndpoint[]): TrafficRecord[] {
  const out: TrafficRecord[] = [];
  for (const [gateway, it] of Object.entries(t.byInstance)) {
    const index = instances.findIndex((i) => `${i.host}:${i.port}` === gateway);
    for (const [roleKind, k] of Object.entries(it.byKind)) {
      out.push({ instance: index < 0 ? null : index, roleKind, requests: k.requests, failed: k.failed, bytesToClients: k.bytesToClients, bytesFromClients: k.bytesFromClients });
    }
  }
  return out;
}
