import type { ProxyModel } from "../../proxy/rules.ts";
import type { ProxyConfig, Role, Site, SiteSystemServer, SiteType } from "../model.ts";
import type { Db } from "./context.ts";

/** Reads the whole model the proxy rules reason about, in one go. */
export async function loadProxyModel(db: Db): Promise<ProxyModel> {
  const [sites, servers, roles, proxies] = await Promise.all([
    db.selectFrom("sites").selectAll().execute(),
    db.selectFrom("servers").selectAll().execute(),
    db.selectFrom("roles").innerJoin("servers", "servers.id", "roles.server_id").select(["roles.id", "roles.kind", "roles.settings", "servers.fqdn"]).execute(),
    db
      .selectFrom("proxy_configs")
      .innerJoin("servers", "servers.id", "proxy_configs.server_id")
      .leftJoin("accounts", "accounts.id", "proxy_configs.account_id")
      .select(["servers.fqdn", "proxy_configs.enabled", "proxy_configs.host", "proxy_configs.port", "accounts.name as account"])
      .execute(),
  ]);
  return {
    sites: sites.map(toSite),
    servers: servers.map(toServer),
    roles: roles.map((r) => toRole(r)),
    proxies: proxies.map((p): ProxyConfig => ({ server: p.fqdn, enabled: p.enabled === 1, host: p.host, port: p.port, account: p.account ?? null })),
  };
}

export function toSite(r: { code: string; name: string; type: string; parent_code: string | null }): Site {
  return { code: r.code, name: r.name, type: r.type as SiteType, parentCode: r.parent_code };
}

export function toServer(r: { id: number; fqdn: string; site_code: string; is_site_server: number }): SiteSystemServer {
  return { id: r.id, fqdn: r.fqdn, siteCode: r.site_code, isSiteServer: r.is_site_server === 1 };
}

export function toRole(r: { id: number; kind: string; settings: string; fqdn: string }): Role {
  return { id: r.id, kind: r.kind, serverFqdn: r.fqdn, settings: JSON.parse(r.settings) } as Role;
}
