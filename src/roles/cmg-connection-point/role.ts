/**
 * Runs the CMG connection point role of a site system server: reads its CMG from the site, dials
 * every instance through the server's proxy (the egress route of `cmg-connection-point`), pushes
 * the client-authentication settings and URL map, follows changes at the site, and records health
 * (component SMS_CLOUD_PROXYCONNECTOR) and traffic in the site database. Health reaches the site as
 * a subscriber of the connection point's `opencmg:connection-point:health` channel: on the report
 * interval, when the status changes, and once stopped.
 */
import { connectionPointLogs, startConnectionPoint, type ConnectionPoint, type GatewayEndpoint, type HealthReport, type TrafficReport } from "../../connection-point/connection-point.ts";
import { NotFoundError, ValidationError } from "../../errors.ts";
import type { SignedSettings } from "../../wire/tunnel/signed-settings.ts";
import type { CmgTrustService } from "../../site/services/cmg-trust.ts";
import type { ComponentState } from "../../site/model.ts";
import type { EgressProvider } from "../../egress/pool.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import type { CmgsService } from "../../site/services/cmgs.ts";
import type { CmgTrafficService, TrafficRecord } from "../../site/services/cmg-traffic.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { StatusService } from "../../site/services/status.ts";
import type { SettingsService } from "../../site/services/settings.ts";
import { StatusId } from "../../site/status-ids.ts";
import { newSource, topics, type HealthMessage } from "../../observe/channels.ts";

/** What the connection point role needs of the site (app/role-deps.ts builds it). */
export interface ConnectionPointRoleDeps {
  roles: RolesService;
  cmgs: CmgsService;
  traffic: CmgTrafficService;
  /** The site's `traffic-report-interval`, read at start and on every look for site changes. */
  settings: Pick<SettingsService, "durationMs">;
  status: StatusService;
  logs: LogSet;
  egress: EgressProvider;
  /** The site CA. */
  pki: { readonly caPem: string };
  /** The tunnel client certificate the site issues to a connection point, and the settings it signs for the instances. */
  trust: Pick<CmgTrustService, "connectionPointCertificate" | "signedSettings">;
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
  const role = (await deps.roles.list(fqdn)).find((r) => r.kind === "cmg-connection-point");
  if (!role || role.kind !== "cmg-connection-point") throw new ValidationError("server", `${fqdn} has no CMG connection point role (opencmg role add ${fqdn} cmg-connection-point --cmg NAME)`);
  const cmgName = role.settings.cmgName;
  if (!cmgName) throw new ValidationError("cmg", `the connection point on ${fqdn} is not bound to a CMG (opencmg role set ${fqdn} cmg-connection-point --cmg NAME)`);
  const cmgs = deps.cmgs;
  const cmg = await cmgs.show(cmgName);
  const pki = deps.pki;
  const tls = await deps.trust.connectionPointCertificate(fqdn);
  const log = connectionPointLogs(deps.logs);
  // A stopped or deleted CMG has no instance to dial: the tunnels drain and end.
  const instancesOf = (v: typeof cmg) => (v.runState === "running" ? v.instances.map((i) => ({ host: i.tunnelHost, port: i.tunnelPort })) : []);
  let view = cmg;
  /** Set once the CMG was deleted at the site: nothing more is written for it. */
  let deleted = false;

  // The site signs the settings and assigns their revision; this connection point only carries them.
  let settings = await deps.trust.signedSettings(cmg.name);
  let backends = await cmgs.backends();
  let instances = instancesOf(cmg);
  let lastState: ComponentState | undefined;
  const readTrafficInterval = async (): Promise<number> => (await deps.settings.durationMs("traffic-report-interval")) ?? DEFAULT_TRAFFIC_INTERVAL_MS;
  let trafficIntervalMs = o.trafficIntervalMs ?? (await readTrafficInterval());

  const onHealth = async (h: HealthReport): Promise<void> => {
    if (deleted || view.runState === "deleting") return;
    // Deleted since the last look: the delete cleared the component state, which must stay cleared.
    if (!(await cmgs.exists(cmg.name))) return;
    if (view.runState !== "running") {
      // Idle on purpose: no misleading Critical, and the tunnels are reported down at once so the CMG turns Stopped.
      const why = view.runState === "stopped" ? "stopped" : "being deleted";
      await deps.status.setComponent(fqdn, "SMS_CLOUD_PROXYCONNECTOR", "OK", `CMG ${cmg.name} is ${why}: no tunnels to keep`);
      await cmgs.reportTunnels(cmg.name, fqdn, view.instances.map((i) => ({ instance: i.index, connected: false, detail: `CMG ${why}` })));
      lastState = "OK";
      return;
    }
    const state = STATE[h.status];
    await deps.status.setComponent(fqdn, "SMS_CLOUD_PROXYCONNECTOR", state, h.message);
    await cmgs.reportTunnels(
      cmg.name,
      fqdn,
      instances.map((inst, index) => {
        const ih = h.instances.find((x) => x.host === inst.host && x.port === inst.port);
        return { instance: index, connected: (ih?.connected ?? 0) > 0, detail: ih?.lastError ? `error ${ih.lastError.code}: ${ih.lastError.message}` : `${ih?.connected ?? 0} of ${ih?.wanted ?? 0} tunnels connected` };
      }),
    );
    if (lastState !== undefined && lastState !== state) {
      await deps.status.raise({ messageId: StatusId.CMG_CONNECTOR_STATE, severity: state === "OK" ? "informational" : state === "Warning" ? "warning" : "error", component: "SMS_CLOUD_PROXYCONNECTOR", server: fqdn, text: `CMG connection point for ${cmg.name}: ${h.message}` });
    }
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
      tls: { certPem: tls.certPem, keyPem: tls.keyPem, siteCaPem: pki.caPem },
      settings,
      backends,
      backendTls: { ca: [pki.caPem], certPem: tls.certPem, keyPem: tls.keyPem },
      log,
      onTraffic: (t) => deps.traffic.record(cmg.name, fqdn, trafficRecords(t, instances)),
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
    let next: [SignedSettings, Record<string, string>, typeof cmg];
    try {
      next = await Promise.all([deps.trust.signedSettings(cmg.name), cmgs.backends(), cmgs.show(cmg.name)]);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      deleted = true;
      log.service.info(`CMG ${cmg.name} was deleted at the site: ending every tunnel; this connection point stays idle until it is stopped.`);
      instances = [];
      cp.update({ instances: [] });
      return;
    }
    const [nextSettings, nextBackends] = next;
    const wasRunning = view.runState === "running";
    view = next[2];
    if (wasRunning !== (view.runState === "running")) log.service.info(`CMG ${cmg.name} is now ${view.runState}: ${view.runState === "running" ? "dialling its instances again" : "draining and ending the tunnels"}.`);
    if (o.trafficIntervalMs === undefined) {
      const next = await readTrafficInterval();
      if (next !== trafficIntervalMs) {
        log.service.info(`Traffic reports every ${Math.round(next / 1000)} s (site setting traffic-report-interval).`);
        trafficIntervalMs = next;
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
  const first = setTimeout(() => onMessage({ source, trigger: "interval", report: cp.health(), previous: null }), 2000);
  first.unref();

  return {
    cmg: cmg.name,
    cp,
    refresh,
    async stop() {
      clearInterval(timer);
      clearTimeout(first);
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
