/**
 * `opencmg site serve`: the long-running site process: the admin API and the site's schedules (the
 * endpoint check, the CMG alert evaluation, the software update points' synchronisation), each
 * reading its interval from the site settings or the role's.
 */
import type { Logger as PinoLogger } from "pino";
import type { Authenticator } from "../api/auth.ts";
import { buildAdminApi } from "../api/server.ts";
import type { ApiRoute } from "../api/routes.ts";
import type { SessionLimits } from "../api/console-session.ts";
import type { LiveFeedOptions } from "../api/live.ts";
import type { OpenedSite } from "../site/site.ts";
import { scheduleFromEnv, type EndpointMonitorOptions } from "../roles/scp/endpoint-monitor.ts";
import { cmgAlertEvaluator, endpointMonitor } from "./role-deps.ts";
import { scheduleCmgAlerts } from "../roles/scp/cmg-alerts.ts";
import { scheduleStatusRetention } from "../jobs/status-retention.ts";
import { scheduleSupSync } from "../roles/sup/sync-schedule.ts";
import { siteOperations } from "./operations.ts";
import { LOG_FILES } from "../logs/files.ts";
import type { Server as HttpsServer } from "node:https";
import { httpsOptions, loadAdminTls, requireLoopbackForHttp, type AdminTlsMaterial, type AdminTransport } from "./admin-tls.ts";

/** How often the admin API's certificate is looked at again (renewed from the site CA, or re-read from the given files). */
const TLS_RECHECK_MS = 12 * 3600 * 1000;
import { superviseLocalCmgs, type LocalCmgSupervisor } from "../cmg/site-supervisor.ts";
import { superviseLocalRoles, type LocalRolesOptions } from "./local-roles.ts";

export interface SiteServerOptions {
  site: OpenedSite;
  listen: { host: string; port: number };
  /**
   * TLS (from the site CA, or a given certificate) or plain HTTP, which only a loopback `listen`
   * may use. No default: each caller says which (`site serve` uses TLS unless `--insecure-http`).
   */
  transport: AdminTransport;
  /** How often the certificate is looked at again (default 12 hours). */
  tlsRecheckMs?: number;
  /** Structured logs on stdout; the admin API's request lines follow its level. */
  log?: PinoLogger;
  extraRoutes?: ApiRoute[];
  /** Who a request is, tried in order (default: the admin token); a console adds its session's. */
  authenticators?: Authenticator[];
  /** The service connection point's scheduled endpoint check (default: the site setting endpoint-check-interval; $OPENCMG_ENDPOINT_CHECK_INTERVAL seconds overrides it, 0 turns it off; false: off). */
  endpointCheck?: EndpointMonitorOptions | false;
  /** The console: its built folder (default dist/console; null: API only), session limits, live feed. */
  console?: { dir?: string | null; sessions?: Partial<SessionLimits>; live?: LiveFeedOptions };
  /** Options of the checks started over the API when the schedule is off (tests map targets to loopback). */
  onDemandCheck?: EndpointMonitorOptions;
  /**
   * Run the local-provider CMGs' instances in this process's care, and have the kubernetes CMGs'
   * clusters follow the site (`site serve`; default: not, `opencmg up` runs its own).
   */
  localCmgs?: { pollMs?: number } | false;
  /**
   * Run the CMG connection point role when it is assigned to this site server's own FQDN (`site
   * serve`, unless --no-local-roles; default: not).
   */
  localRoles?: LocalRolesOptions | false;
  /**
   * The software update points' synchronisation schedule (each its own `syncIntervalHours`, off
   * unless set): how often it looks for one that is due (default every minute; tests shorten it);
   * false: not at all.
   */
  supSyncSchedule?: { tickMs?: number } | false;
}

/** Who the schedule's synchronisations and rule runs are recorded as in the audit log. */
const SCHEDULE_ACTOR = { name: "software update point schedule", via: "schedule" };

export interface RunningSiteServer {
  url: string;
  /** Where an administrator opens the console (the same listener). */
  consoleUrl: string;
  /** The site CA's certificate file when it issued the listener's certificate: what browsers and clients trust. */
  caFile?: string;
  close(): Promise<void>;
}

export async function startSiteServer(o: SiteServerOptions): Promise<RunningSiteServer> {
  const transport = o.transport;
  if (transport.kind === "http") requireLoopbackForHttp(o.listen.host);
  let tls: AdminTlsMaterial | undefined = transport.kind === "http" ? undefined : await loadAdminTls(o.site, transport, o.listen.host);
  const check = o.endpointCheck ?? scheduleFromEnv(process.env.OPENCMG_ENDPOINT_CHECK_INTERVAL);
  const running = new Set<Promise<void>>();
  const stopping = new AbortController();
  // One monitor for the schedule and the site checks started over the API, so a run under way is shared.
  const onDemand: EndpointMonitorOptions = check === false ? (o.onDemandCheck ?? {}) : check;
  const monitor = endpointMonitor(o.site, onDemand);
  await o.site.services.checks.abandonRunning();
  let consoleUrl = "";
  const app = await buildAdminApi({
    consoleUrl: () => consoleUrl || undefined,
    site: o.site,
    operations: (actor) => siteOperations(o.site, actor, { monitor, running, check: onDemand, signal: stopping.signal }),
    extraRoutes: o.extraRoutes ?? [],
    ...(o.authenticators ? { authenticators: o.authenticators } : {}),
    ...(o.log ? { logger: { level: o.log.level } } : {}),
    ...(o.console?.dir !== undefined ? { consoleDir: o.console.dir } : {}),
    ...(o.console?.sessions ? { sessions: o.console.sessions } : {}),
    ...(o.console?.live ? { live: o.console.live } : {}),
    ...(tls ? { https: httpsOptions(tls) } : {}),
  });
  const address = await app.listen({ host: o.listen.host, port: o.listen.port });
  o.site.logs.component(LOG_FILES.sitecomp).info(`Admin API and console listening on ${address}.`);
  if (check !== false) monitor.start();
  consoleUrl = consoleUrlOf(address, o.listen.host, tls);
  let recheck: NodeJS.Timeout | undefined;
  if (tls && transport.kind !== "http") {
    const server = app.server as unknown as HttpsServer;
    const log = o.site.logs.component(LOG_FILES.sitecomp);
    // Renewal without a restart: a new context for new connections; open ones keep theirs.
    recheck = setInterval(() => {
      loadAdminTls(o.site, transport, o.listen.host).then(
        (next) => {
          if (next.certPem === tls!.certPem && next.keyPem === tls!.keyPem) return;
          server.setSecureContext(httpsOptions(next));
          tls = next;
          log.info(`The admin API's TLS certificate was replaced (names: ${next.names.join(", ")}).`);
        },
        (e: unknown) => log.error(`The admin API's TLS certificate could not be renewed or read again; the current one stays in use: ${(e as Error).message}`),
      );
    }, o.tlsRecheckMs ?? TLS_RECHECK_MS);
    recheck.unref();
  }
  const alerts = scheduleCmgAlerts(cmgAlertEvaluator(o.site), () => o.site.services.settings.durationMs("alert-evaluation-interval"), o.site.logs.component(LOG_FILES.cloudMgr));
  let cmgs: LocalCmgSupervisor | undefined;
  if (o.localCmgs) cmgs = await superviseLocalCmgs(o.site, { dataDir: o.site.paths.data, ...(o.localCmgs.pollMs !== undefined ? { pollMs: o.localCmgs.pollMs } : {}) });
  // The kubernetes CMGs' clusters follow every change too (loaded only where a site serves CMGs).
  const kube = o.localCmgs ? (await import("../cmg/kubernetes/provider.ts")).superviseKubernetesCmgs(o.site, o.localCmgs.pollMs !== undefined ? { pollMs: o.localCmgs.pollMs } : {}) : undefined;
  const roles = o.localRoles ? await superviseLocalRoles(o.site, o.localRoles) : undefined;
  const supSync =
    o.supSyncSchedule === false
      ? undefined
      : scheduleSupSync(
          { roles: o.site.services.roles, status: o.site.services.status, now: o.site.ctx.now, log: o.site.logs.component(LOG_FILES.wsyncmgr), sync: (fqdn) => siteOperations(o.site, SCHEDULE_ACTOR, { signal: stopping.signal }).supSync(fqdn) },
          o.supSyncSchedule ?? {},
        );
  const retention = scheduleStatusRetention({ settings: o.site.services.settings, status: o.site.services.status, log: o.site.logs.component(LOG_FILES.statmgr), now: o.site.ctx.now });
  return {
    url: address,
    consoleUrl,
    ...(tls?.caFile ? { caFile: tls.caFile } : {}),
    close: async () => {
      clearInterval(recheck);
      // The instances first: they drain their clients and tunnels while the rest still runs.
      await cmgs?.close();
      await kube?.close();
      // Then the connection point: it drains its tunnels and reports them down.
      await roles?.close();
      await alerts.stop();
      await retention.stop();
      stopping.abort();
      await supSync?.stop();
      await monitor.stop();
      await Promise.allSettled([...running]);
      await app.close();
    },
  };
}

/**
 * Where an administrator opens the console. Over TLS: the certificate's first name (the site
 * server's FQDN) when listening on every address, so the name matches; over loopback HTTP:
 * localhost, which browsers treat as a secure context (the session cookie is Secure).
 */
function consoleUrlOf(address: string, listenHost: string, tls: AdminTlsMaterial | undefined): string {
  const url = new URL(address);
  if (tls && ["0.0.0.0", "::", "[::]", ""].includes(listenHost) && tls.names[0]) url.hostname = tls.names[0];
  else if (url.hostname === "127.0.0.1") url.hostname = "localhost";
  return url.toString();
}
