/**
 * The service connection point's product update check: fetches the update feed through its
 * server's proxy (the role's own route) and reports what it found. Logs to dmpdownloader.log.
 */
import { z } from "zod";
import { NetError, OpenCmgError, ValidationError } from "../../errors.ts";
import type { EgressProvider } from "../../egress/pool.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { StatusService } from "../../site/services/status.ts";
import { StatusId } from "../../site/status-ids.ts";
import { LOG_FILES } from "../../logs/files.ts";

const feed = z.object({
  product: z.string().optional(),
  latestVersion: z.string().min(1),
  releases: z.array(z.object({ version: z.string(), title: z.string().optional(), url: z.string().optional() })).optional(),
});
export type UpdateFeed = z.output<typeof feed>;

export interface FeedDeps {
  roles: RolesService;
  status: StatusService;
  egress: EgressProvider;
  logs: LogSet;
}

export interface FeedCheckResult {
  server: string;
  url: string;
  route: string;
  latestVersion: string;
  releases: number;
}

export async function checkUpdateFeed(deps: FeedDeps, fqdn: string): Promise<FeedCheckResult> {
  const log = deps.logs.component(LOG_FILES.dmpdownloader);
  const scp = (await deps.roles.list(fqdn)).find((r) => r.kind === "service-connection-point");
  if (!scp || scp.kind !== "service-connection-point") throw new ValidationError("server", `${fqdn} has no service connection point`);
  const url = scp.settings.updateFeedUrl;
  if (!url) throw new ValidationError("updateFeedUrl", `the service connection point on ${fqdn} has no update feed (opencmg role set ${fqdn} service-connection-point --update-feed-url URL)`);
  const { egress, decision } = await deps.egress.for(fqdn, "service-connection-point", log);
  const via = decision.use === "proxy" ? `through proxy ${decision.host}:${decision.port}` : "directly";
  log.info(`Checking for product updates at ${url} ${via}.`);
  try {
    const res = await egress.request(url, { method: "GET", headers: { accept: "application/json" } });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new OpenCmgError("net", "FEED_HTTP", `the update feed ${url} answered HTTP ${res.statusCode}`);
    }
    const parsed = feed.safeParse(await res.body.json().catch((e: unknown) => { if (e instanceof NetError) throw e; return undefined; }));
    if (!parsed.success) throw new ValidationError("updateFeedUrl", "the update feed did not send a valid feed document");
    log.info(`Product update feed: latest version ${parsed.data.latestVersion}, ${parsed.data.releases?.length ?? 0} releases.`);
    return { server: fqdn, url, route: via, latestVersion: parsed.data.latestVersion, releases: parsed.data.releases?.length ?? 0 };
  } catch (e) {
    const code = e instanceof OpenCmgError ? e.code : "UNKNOWN";
    const msg = e instanceof Error ? e.message : String(e);
    log.error(`Failed to check for product updates. Error = ${code}. ${msg}`);
    await deps.status.raise({ messageId: StatusId.SCP_FEED_FAILED, severity: "error", component: "SMS_DMP_DOWNLOADER", server: fqdn, text: `The service connection point could not check for product updates: ${msg}`, properties: { code } });
    throw e;
  }
}
