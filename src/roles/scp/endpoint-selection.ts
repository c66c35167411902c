/**
 * Which internet endpoints a listing or a check is about, as `opencmg endpoints`, `opencmg check`
 * and the admin API choose them: the filters given win; with none, what the site uses (all its
 * roles, or the roles of one server), else the whole catalog.
 */
import type { SelectOptions, Selection } from "../../endpoints/catalog.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { ServersService } from "../../site/services/servers.ts";
import { selectForNames, siteUsage, type UsageDeps, type SiteUsage } from "./endpoint-monitor.ts";

export interface EndpointFilters {
  roles?: string[] | undefined;
  features?: string[] | undefined;
  cmgName?: string | undefined;
  childSupFqdn?: string | undefined;
  parentSupFqdn?: string | undefined;
}

export interface SelectionDeps extends UsageDeps {
  roles: RolesService;
  servers: ServersService;
}

/**
 * `site`: the site's services when a site exists. `cloud`: the filter, "default" (a check: the
 * site's CMGs' cloud, else public) or undefined (every variant, or the CMGs' cloud). `note` hears
 * what people should know about the choice.
 */
export async function endpointSelection(site: SelectionDeps | undefined, f: EndpointFilters, cloud: "public" | "usgov" | "default" | undefined, server: string | undefined, note: (text: string) => void = () => undefined): Promise<Selection> {
  const usage: SiteUsage | undefined = site ? await siteUsage(site) : undefined;
  for (const n of usage?.notes ?? []) note(n);
  let roles = f.roles ?? [];
  const features = f.features ?? [];
  if (roles.length === 0 && features.length === 0 && site && usage) {
    if (server !== undefined) {
      const info = await site.servers.get(server);
      roles = (await site.roles.list(info.fqdn)).map((r) => r.kind);
      if (info.isSiteServer) roles.push("site-server");
      if (roles.length === 0) note(`${server} hosts no roles: checking the whole catalog (use --role to narrow it)`);
    } else {
      roles = usage.roles;
      if (roles.length === 0) note("no roles are installed at the site: listing the whole catalog (use --role to narrow it)");
    }
  }
  const chosenCloud = cloud === "default" ? (usage && usage.cmgNames.length > 0 ? usage.cloud : "public") : cloud ?? (usage && usage.cmgNames.length > 0 ? usage.cloud : undefined);
  const opts: Omit<SelectOptions, "cmgName"> = {
    roles,
    features,
    ...(chosenCloud ? { cloud: chosenCloud } : {}),
    ...(f.childSupFqdn !== undefined ? { childSupFqdn: f.childSupFqdn } : {}),
    ...(f.parentSupFqdn !== undefined ? { parentSupFqdn: f.parentSupFqdn } : {}),
  };
  const names = f.cmgName !== undefined ? [f.cmgName] : (usage?.cmgNames ?? []);
  return selectForNames(opts, names);
}
