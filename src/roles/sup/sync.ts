/**
 * Software update point synchronisation: fetches the upstream catalog through the route the proxy
 * rules give `software-update-sync` (the proxy only when "use a proxy server when synchronizing"
 * is on) and stores the update metadata. Logs to wsyncmgr.log as the platform does.
 */
import { NetError, OpenCmgError, ValidationError } from "../../errors.ts";
import type { EgressProvider } from "../../egress/pool.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import type { SoftwareUpdatePointSettings } from "../../site/model.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { UpdatesService } from "../../site/services/updates.ts";
import type { StatusService } from "../../site/services/status.ts";
import { StatusId } from "../../site/status-ids.ts";
import { updateCatalog, type Update } from "./update-catalog.ts";
import { LOG_FILES } from "../../logs/files.ts";

/** What synchronisation needs, and nothing more. */
export interface SupSyncDeps {
  updates: UpdatesService;
  roles: RolesService;
  status: StatusService;
  egress: EgressProvider;
  logs: LogSet;
}

export interface SyncResult {
  server: string;
  upstreamUrl: string;
  route: string;
  updates: number;
  added: number;
}

const MAX_CATALOG_BYTES = 256 * 1024 * 1024;


export async function syncSoftwareUpdates(deps: SupSyncDeps, fqdn: string): Promise<SyncResult> {
  const log = deps.logs.component(LOG_FILES.wsyncmgr);
  const settings = await deps.roles.softwareUpdatePoint(fqdn);
  if (!settings.upstreamUrl) throw new ValidationError("upstreamUrl", `the software update point on ${fqdn} has no upstream update source (opencmg role set ${fqdn} software-update-point --upstream-url URL)`);
  const url = settings.upstreamUrl;
  const { egress, decision } = await deps.egress.for(fqdn, "software-update-sync", log);
  const via = decision.use === "proxy" ? `through proxy ${decision.host}:${decision.port}` : "directly";
  log.info(`Synchronizing update metadata from ${url} ${via} (${decision.reason}).`);
  try {
    const res = await egress.request(url, { method: "GET", headers: { accept: "application/json" } });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new OpenCmgError("net", "UPSTREAM_HTTP", `the upstream update source ${url} answered HTTP ${res.statusCode}`);
    }
    const declared = Number(res.headers["content-length"] ?? 0);
    if (declared > MAX_CATALOG_BYTES) {
      await res.body.dump();
      throw new ValidationError("upstreamUrl", `the catalog is ${declared} bytes, more than the ${MAX_CATALOG_BYTES} allowed`);
    }
    let json: unknown;
    try {
      json = await res.body.json();
    } catch (e) {
      if (e instanceof NetError) throw e;
      throw new ValidationError("upstreamUrl", `the upstream update source did not send valid JSON (${(e as Error).message})`);
    }
    const parsed = updateCatalog.safeParse(json);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new ValidationError("upstreamUrl", `the update catalog is not valid at ${i.path.join(".")}: ${i.message}`);
    }
    const added = await deps.updates.store(parsed.data.updates, url);
    log.info(`Synchronization done: ${parsed.data.updates.length} updates in the catalog, ${added} new.`);
    await deps.status.raise({ messageId: StatusId.SUP_SYNC_DONE, severity: "informational", component: "SMS_WSUS_SYNC_MANAGER", server: fqdn, text: `Software update synchronization completed: ${parsed.data.updates.length} updates, ${added} new.` });
    return { server: fqdn, upstreamUrl: url, route: via, updates: parsed.data.updates.length, added };
  } catch (e) {
    const code = e instanceof NetError ? e.code : e instanceof OpenCmgError ? e.code : "UNKNOWN";
    const msg = e instanceof Error ? e.message : String(e);
    log.error(`Sync failed: ${msg}. Error = ${code}.`);
    await deps.status.raise({ messageId: StatusId.SUP_SYNC_FAILED, severity: "error", component: "SMS_WSUS_SYNC_MANAGER", server: fqdn, text: `Software update synchronization failed: ${msg}`, properties: { code, ...(e instanceof NetError ? { hop: e.hop, host: e.host } : {}) } });
    throw e;
  }
}
