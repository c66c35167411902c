/**
 * Internet management points: how a CMG appears in a location answer. Each Ready CMG (every
 * instance connected to a connection point) offers every management point that allows CMG traffic
 * at `<clientUrl>/CCM_Proxy_MutualAuth/<roleId>`.
 */
import type { Role } from "../../site/model.ts";

export interface InternetMp {
  /** Full URL of the management point through the CMG. */
  url: string;
  /** The CMG's name. */
  cmg: string;
}

/** The URL of management point `roleId` through a CMG whose client URL is `clientUrl`. */
export function internetMpUrl(clientUrl: string, roleId: number | string, scheme = "CCM_Proxy_MutualAuth"): string {
  return `${clientUrl.replace(/\/+$/, "")}/${scheme}/${roleId}`;
}

/** What this module needs of a CMG (src/site/services/cmgs.ts CmgView fits). */
export interface CmgLike {
  name: string;
  status: string;
  instances: { clientUrl: string }[];
}

/**
 * The internet management points of the site.
 *
 * @example
 * startManagementPoint({ ..., internetMps: async () => cmgInternetMps(await cmgs.list(), await site.services.roles.list()) });
 */
export function cmgInternetMps(cmgs: readonly CmgLike[], roles: readonly Role[]): InternetMp[] {
  const mps = roles.filter((r) => r.kind === "management-point" && r.settings.allowCmgTraffic);
  const out: InternetMp[] = [];
  for (const cmg of cmgs) {
    if (cmg.status !== "Ready") continue;
    const urls = [...new Set(cmg.instances.map((i) => i.clientUrl))];
    for (const url of urls) for (const mp of mps) out.push({ url: internetMpUrl(url, mp.id), cmg: cmg.name });
  }
  return out;
}

/** What this module needs of the site: its CMGs and roles. */
export interface SiteWithCmgs {
  services: { cmgs: { list(): Promise<CmgLike[]> }; roles: { list(): Promise<Role[]> } };
}

/**
 * The internet management points from the site's own CMG table (the default of a management point).
 *
 * @example
 * startManagementPoint({ ..., internetMps: siteInternetMps(site) });
 */
export function siteInternetMps(site: SiteWithCmgs): () => Promise<InternetMp[]> {
  return async () => cmgInternetMps(await site.services.cmgs.list(), await site.services.roles.list());
}
