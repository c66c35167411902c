/**
 * Software update point synchronisation: fetches the upstream catalog through the route the proxy
 * rules give `software-update-sync` (the proxy only when "use a proxy server when synchronizing"
 * is on) and stores the update metadata. Logs to wsyncmgr.log as the platform does.
 */
import { NetError, OpenCmgError, ValidationError } from "../../errors.ts";
import type { EgressProvider } from "../../egress/pool.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import type { SoftwareUpdatePointSettings } from "../../site/model.ts";
import type { ServiceContext } from "../../site/services/context.ts";
import { writeTransaction } from "../../site/db/transaction.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { StatusService } from "../../site/services/status.ts";
import { StatusId } from "../../site/status-ids.ts";
import { updateCatalog, type Update } from "./update-catalog.ts";

export interface SupDeps {
  ctx: ServiceContext;
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

export async function supSettings(roles: RolesService, fqdn: string): Promise<SoftwareUpdatePointSettings> {
  const sup = (await roles.list(fqdn)).find((r) => r.kind === "software-update-point");
  if (!sup || sup.kind !== "software-update-point") throw new ValidationError("server", `${fqdn} has no software update point`);
  return sup.settings;
}

export async function syncSoftwareUpdates(deps: SupDeps, fqdn: string): Promise<SyncResult> {
  const log = deps.logs.component("wsyncmgr.log", "SMS_WSUS_SYNC_MANAGER");
  const settings = await supSettings(deps.roles, fqdn);
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
    const added = await storeUpdates(deps.ctx, parsed.data.updates, url);
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

async function storeUpdates(ctx: ServiceContext, updates: Update[], source: string): Promise<number> {
  const now = ctx.now().toISOString();
  return writeTransaction(ctx.db, async (tx) => {
    const known = new Set((await tx.selectFrom("updates").select("update_id").execute()).map((r) => r.update_id));
    let added = 0;
    for (const u of updates) {
      const row = { title: u.title, classification: u.classification, product: u.product, release_date: u.releaseDate, files: JSON.stringify(u.files), synced_from: source, synced_at: now };
      if (known.has(u.id)) await tx.updateTable("updates").set(row).where("update_id", "=", u.id).execute();
      else {
        await tx.insertInto("updates").values({ update_id: u.id, ...row }).execute();
        added++;
      }
    }
    return added;
  });
}

export async function listUpdates(ctx: ServiceContext): Promise<Update[]> {
  const rows = await ctx.db.selectFrom("updates").selectAll().orderBy("release_date", "desc").execute();
  return rows.map((r) => ({ id: r.update_id, title: r.title, classification: r.classification, product: r.product, releaseDate: r.release_date, files: JSON.parse(r.files) }));
}
