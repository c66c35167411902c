/**
 * `opencmg site serve`: the long-running site process. Today the admin API; the console and the
 * scheduled tasks hang off the same start/close.
 */
import type { Logger as PinoLogger } from "pino";
import type { Authenticator } from "../api/auth.ts";
import { buildAdminApi } from "../api/server.ts";
import type { ApiRoute } from "../api/routes.ts";
import type { OpenedSite } from "../site/site.ts";
import { scheduleFromEnv, type EndpointMonitorOptions } from "../roles/scp/endpoint-monitor.ts";
import { endpointMonitor } from "./role-deps.ts";
import { siteOperations } from "./operations.ts";
import { LOG_FILES } from "../logs/files.ts";

export interface SiteServerOptions {
  site: OpenedSite;
  listen: { host: string; port: number };
  log?: PinoLogger;
  extraRoutes?: ApiRoute[];
  /** Who a request is, tried in order (default: the admin token); a console adds its session's. */
  authenticators?: Authenticator[];
  /** The service connection point's scheduled endpoint check (default: the site setting endpoint-check-interval; $OPENCMG_ENDPOINT_CHECK_INTERVAL seconds overrides it, 0 turns it off; false: off). */
  endpointCheck?: EndpointMonitorOptions | false;
  /** Options of the checks started over the API when the schedule is off (tests map targets to loopback). */
  onDemandCheck?: EndpointMonitorOptions;
}

export interface RunningSiteServer {
  url: string;
  close(): Promise<void>;
}

export async function startSiteServer(o: SiteServerOptions): Promise<RunningSiteServer> {
  const check = o.endpointCheck ?? scheduleFromEnv(process.env.OPENCMG_ENDPOINT_CHECK_INTERVAL);
  const running = new Set<Promise<void>>();
  const stopping = new AbortController();
  // One monitor for the schedule and the site checks started over the API, so a run under way is shared.
  const onDemand: EndpointMonitorOptions = check === false ? (o.onDemandCheck ?? {}) : check;
  const monitor = endpointMonitor(o.site, onDemand);
  await o.site.services.checks.abandonRunning();
  const app = await buildAdminApi({
    site: o.site,
    operations: (actor) => siteOperations(o.site, actor, { monitor, running, check: onDemand, signal: stopping.signal }),
    extraRoutes: o.extraRoutes ?? [],
    ...(o.authenticators ? { authenticators: o.authenticators } : {}),
    ...(o.log ? { logger: { level: "info" } } : {}),
  });
  const address = await app.listen({ host: o.listen.host, port: o.listen.port });
  o.site.logs.component(LOG_FILES.sitecomp).info(`Admin API listening on ${address}.`);
  if (check !== false) monitor.start();
  return {
    url: address,
    close: async () => {
      stopping.abort();
      await monitor.stop();
      await Promise.allSettled([...running]);
      await app.close();
    },
  };
}
