/**
 * `opencmg site serve`: the long-running site process: the admin API and the site's schedules (the
 * endpoint check, the CMG alert evaluation), each reading its interval from the site settings.
 */
import type { Logger as PinoLogger } from "pino";
import { buildAdminApi } from "../api/server.ts";
import type { ApiRoute } from "../api/routes.ts";
import type { SessionLimits } from "../api/console-session.ts";
import type { LiveFeedOptions } from "../api/live.ts";
import type { OpenedSite } from "../site/site.ts";
import { scheduleFromEnv, type EndpointMonitorOptions } from "../roles/scp/endpoint-monitor.ts";
import { cmgAlertEvaluator, endpointMonitor } from "./role-deps.ts";
import { scheduleCmgAlerts } from "../roles/scp/cmg-alerts.ts";
import { LOG_FILES } from "../logs/files.ts";

export interface SiteServerOptions {
  site: OpenedSite;
  listen: { host: string; port: number };
  /** Structured logs on stdout; the admin API's request lines follow its level. */
  log?: PinoLogger;
  extraRoutes?: ApiRoute[];
  /** The service connection point's scheduled endpoint check (default: the site setting endpoint-check-interval; $OPENCMG_ENDPOINT_CHECK_INTERVAL seconds overrides it, 0 turns it off; false: off). */
  endpointCheck?: EndpointMonitorOptions | false;
  /** The console: its built folder (default dist/console; null: API only), session limits, live feed. */
  console?: { dir?: string | null; sessions?: Partial<SessionLimits>; live?: LiveFeedOptions };
}

export interface RunningSiteServer {
  url: string;
  /** Where an administrator opens the console (the same listener). */
  consoleUrl: string;
  close(): Promise<void>;
}

export async function startSiteServer(o: SiteServerOptions): Promise<RunningSiteServer> {
  const check = o.endpointCheck ?? scheduleFromEnv(process.env.OPENCMG_ENDPOINT_CHECK_INTERVAL);
  const app = await buildAdminApi({
    site: o.site,
    extraRoutes: o.extraRoutes ?? [],
    ...(o.log ? { logger: { level: o.log.level } } : {}),
    ...(o.console?.dir !== undefined ? { consoleDir: o.console.dir } : {}),
    ...(o.console?.sessions ? { sessions: o.console.sessions } : {}),
    ...(o.console?.live ? { live: o.console.live } : {}),
  });
  const address = await app.listen({ host: o.listen.host, port: o.listen.port });
  o.site.logs.component(LOG_FILES.sitecomp).info(`Admin API and console listening on ${address}.`);
  const monitor = check === false ? undefined : endpointMonitor(o.site, check);
  monitor?.start();
  // Browsers treat localhost as a secure context (the session cookie is Secure), and it reads better than 127.0.0.1.
  const consoleUrl = address.replace("://127.0.0.1:", "://localhost:") + "/";
  const alerts = scheduleCmgAlerts(cmgAlertEvaluator(o.site), () => o.site.services.settings.durationMs("alert-evaluation-interval"), o.site.logs.component(LOG_FILES.cloudMgr));
  return {
    url: address,
    consoleUrl,
    close: async () => {
      await alerts.stop();
      await monitor?.stop();
      await app.close();
    },
  };
}
