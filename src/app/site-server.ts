/**
 * `opencmg site serve`: the long-running site process. Today the admin API; the console and the
 * scheduled tasks hang off the same start/close.
 */
import type { Logger as PinoLogger } from "pino";
import { buildAdminApi } from "../api/server.ts";
import type { ApiRoute } from "../api/routes.ts";
import type { OpenedSite } from "../site/site.ts";
import { scheduleFromEnv, type EndpointMonitorOptions } from "../roles/scp/endpoint-monitor.ts";
import { endpointMonitor } from "./role-deps.ts";
import { LOG_FILES } from "../logs/files.ts";

export interface SiteServerOptions {
  site: OpenedSite;
  listen: { host: string; port: number };
  log?: PinoLogger;
  extraRoutes?: ApiRoute[];
  /** The service connection point's scheduled endpoint check (default: the site setting endpoint-check-interval; $OPENCMG_ENDPOINT_CHECK_INTERVAL seconds overrides it, 0 turns it off; false: off). */
  endpointCheck?: EndpointMonitorOptions | false;
}

export interface RunningSiteServer {
  url: string;
  close(): Promise<void>;
}

export async function startSiteServer(o: SiteServerOptions): Promise<RunningSiteServer> {
  const check = o.endpointCheck ?? scheduleFromEnv(process.env.OPENCMG_ENDPOINT_CHECK_INTERVAL);
  const app = await buildAdminApi({ site: o.site, extraRoutes: o.extraRoutes ?? [], ...(o.log ? { logger: { level: "info" } } : {}) });
  const address = await app.listen({ host: o.listen.host, port: o.listen.port });
  o.site.logs.component(LOG_FILES.sitecomp).info(`Admin API listening on ${address}.`);
  const monitor = check === false ? undefined : endpointMonitor(o.site, check);
  monitor?.start();
  return {
    url: address,
    close: async () => {
      await monitor?.stop();
      await app.close();
    },
  };
}
