/**
 * The proxy rules of the site, in one place (SPEC.md section 1). Pure functions over a snapshot of
 * the model: `decideProxy` answers "which proxy, with which account, does role R (or feature F) on
 * server S use, and why"; `checkProxyConfig` and `checkRoleSettings` refuse changes that would
 * break a rule, with a ValidationError naming the field and the rule.
 */
import { NotFoundError, ValidationError } from "../errors.ts";
import {
  FEATURES,
  ROLE_KINDS,
  type Feature,
  type ProxyConfig,
  type Role,
  type RoleKind,
  type RoleSettingsByKind,
  type Site,
  type SiteSystemServer,
} from "../site/model.ts";

/** What the rules need to know of the site: all of it is read in one snapshot. */
export interface ProxyModel {
  sites: readonly Site[];
  servers: readonly SiteSystemServer[];
  roles: readonly Role[];
  proxies: readonly ProxyConfig[];
}

export type ProxySubject = RoleKind | Feature;

interface DecisionBase {
  subject: ProxySubject;
  /** The server the question was asked for. */
  server: string;
  /** Why, in a sentence an administrator can act on. */
  reason: string;
}
export type ProxyDecision =
  | (DecisionBase & { use: "proxy"; proxyServer: string; host: string; port: number; account: string | null })
  | (DecisionBase & { use: "direct" })
  /** The role never reaches the internet (management point, distribution point without connected cache). */
  | (DecisionBase & { use: "none" });

/** Roles that reach the internet through the proxy of the server they are installed on. */
export const PROXY_ROLES: readonly RoleKind[] = [
  "asset-intelligence-sync-point",
  "service-connection-point",
  "exchange-connector",
  "software-update-point",
  "cmg-connection-point",
];

/** Features that use the proxy of the server hosting the service connection point. */
const SCP_FEATURES: readonly Feature[] = ["directory-user-discovery", "directory-group-discovery", "group-sync"];

export function isProxySubject(s: string): s is ProxySubject {
  return (ROLE_KINDS as readonly string[]).includes(s) || (FEATURES as readonly string[]).includes(s);
}

function serverOf(model: ProxyModel, fqdn: string): SiteSystemServer {
  const s = model.servers.find((x) => x.fqdn === fqdn);
  if (!s) throw new NotFoundError("server", `site system server ${fqdn}`);
  return s;
}

function siteOf(model: ProxyModel, server: SiteSystemServer): Site {
  const site = model.sites.find((x) => x.code === server.siteCode);
  if (!site) throw new NotFoundError("site", `site ${server.siteCode}`);
  return site;
}

function roleOn<K extends RoleKind>(model: ProxyModel, fqdn: string, kind: K): Extract<Role, { kind: K }> | undefined {
  return model.roles.find((r) => r.serverFqdn === fqdn && r.kind === kind) as Extract<Role, { kind: K }> | undefined;
}

function activeProxy(model: ProxyModel, fqdn: string): ProxyConfig | undefined {
  const p = model.proxies.find((x) => x.server === fqdn);
  return p && p.enabled ? p : undefined;
}

function viaServerProxy(model: ProxyModel, subject: ProxySubject, asked: string, proxyServer: string, why: string): ProxyDecision {
  const p = activeProxy(model, proxyServer);
  if (!p) {
    const stored = model.proxies.find((x) => x.server === proxyServer);
    const state = stored ? "is disabled" : "is not configured";
    return { use: "direct", subject, server: asked, reason: `${why}; the proxy configuration of ${proxyServer} ${state}, so it connects directly as the server itself` };
  }
  const as = p.account ? `with the site system proxy server account ${p.account}` : "as the server itself (no proxy account)";
  return { use: "proxy", subject, server: asked, proxyServer, host: p.host, port: p.port, account: p.account, reason: `${why}; uses ${p.host}:${p.port} ${as}` };
}

/** The primary site that owns `site`: itself, or the parent of a secondary site. */
function primaryOf(model: ProxyModel, site: Site): Site | undefined {
  if (site.type === "primary") return site;
  if (site.type === "secondary" && site.parentCode) return model.sites.find((s) => s.code === site.parentCode && s.type === "primary");
  return undefined;
}

/**
 * Which proxy role or feature `subject` uses on server `fqdn`, and why.
 *
 * @example
 *   decideProxy(model, "sup01.contoso.com", "adr-download")
 *   // { use: "proxy", host: "proxy.contoso.com", port: 80, account: "CONTOSO\\svc-proxy", reason: "..." }
 */
export function decideProxy(model: ProxyModel, fqdn: string, subject: ProxySubject): ProxyDecision {
  const server = serverOf(model, fqdn);
  const needRole = <K extends RoleKind>(kind: K, field = "role"): Extract<Role, { kind: K }> => {
    const r = roleOn(model, fqdn, kind);
    if (!r) throw new ValidationError(field, `${subject} needs a ${kind} on ${fqdn}, and none is installed there`);
    return r;
  };

  switch (subject) {
    case "management-point":
      needRole(subject);
      return { use: "none", subject, server: fqdn, reason: "a management point does not connect to the internet" };
    case "distribution-point": {
      const dp = needRole(subject);
      if (!dp.settings.connectedCache)
        return { use: "none", subject, server: fqdn, reason: "a distribution point without connected cache does not connect to the internet" };
      const d = viaServerProxy(model, subject, fqdn, fqdn, "a distribution point with connected cache uses its server's proxy, unauthenticated only");
      if (d.use === "proxy" && d.account)
        throw new ValidationError("account", `the proxy of ${fqdn} has an account, but a distribution point with connected cache only accepts an unauthenticated proxy`);
      return d;
    }
    case "cloud-distribution-point": {
      needRole(subject);
      const primary = primaryOf(model, siteOf(model, server));
      if (!primary) throw new ValidationError("site", `a cloud distribution point must belong to a primary site; ${server.siteCode} is not one`);
      const siteServer = model.servers.find((s) => s.siteCode === primary.code && s.isSiteServer);
      if (!siteServer)
        throw new ValidationError("server", `the cloud distribution point uses the proxy of the primary site server, and site ${primary.code} has none recorded (opencmg server add FQDN --site ${primary.code} --site-server)`);
      return viaServerProxy(model, subject, fqdn, siteServer.fqdn, `a cloud distribution point takes no proxy of its own: the primary site server ${siteServer.fqdn} sets it up, monitors it and sends it content`);
    }
    case "software-update-sync": {
      const sup = needRole("software-update-point");
      if (!sup.settings.useProxyForSync) return { use: "direct", subject, server: fqdn, reason: `"use a proxy server when synchronizing software updates" is off on ${fqdn}` };
      return viaServerProxy(model, subject, fqdn, fqdn, `"use a proxy server when synchronizing software updates" is on`);
    }
    case "adr-download": {
      const sup = needRole("software-update-point");
      if (siteOf(model, server).type === "secondary")
        return { use: "direct", subject, server: fqdn, reason: `software update points at secondary sites do not use the proxy for automatic deployment rule downloads (${fqdn} is at secondary site ${server.siteCode})` };
      if (!sup.settings.useProxyForAdr) return { use: "direct", subject, server: fqdn, reason: `"use a proxy server when downloading content by using automatic deployment rules" is off on ${fqdn}` };
      return viaServerProxy(model, subject, fqdn, fqdn, `"use a proxy server when downloading content by using automatic deployment rules" is on`);
    }
    case "directory-user-discovery":
    case "directory-group-discovery":
    case "group-sync": {
      const scp = model.roles.find((r) => r.kind === "service-connection-point");
      if (!scp) throw new ValidationError("feature", `${subject} uses the proxy of the server hosting the service connection point, and no service connection point is installed`);
      return viaServerProxy(model, subject, fqdn, scp.serverFqdn, `${subject} uses the proxy of ${scp.serverFqdn}, the server hosting the service connection point`);
    }
    default: {
      needRole(subject);
      if (!PROXY_ROLES.includes(subject)) return { use: "none", subject, server: fqdn, reason: `${subject} does not connect to the internet` };
      return viaServerProxy(model, subject, fqdn, fqdn, `${subject} shares the one proxy configuration of its server`);
    }
  }
}

/**
 * Refuses a new proxy configuration (or its removal, `next = null`) for `fqdn` that would break a
 * rule for the roles already on that server.
 */
export function checkProxyConfig(model: ProxyModel, fqdn: string, next: Omit<ProxyConfig, "server"> | null): void {
  serverOf(model, fqdn);
  const dp = roleOn(model, fqdn, "distribution-point");
  if (next?.account && dp?.settings.connectedCache)
    throw new ValidationError("account", `${fqdn} hosts a distribution point with connected cache, which only accepts a proxy without an account`);
  const sup = roleOn(model, fqdn, "software-update-point");
  if ((!next || !next.enabled) && sup && (sup.settings.useProxyForSync || sup.settings.useProxyForAdr)) {
    const opts = [sup.settings.useProxyForSync && "--no-use-proxy-for-sync", sup.settings.useProxyForAdr && "--no-use-proxy-for-adr"].filter(Boolean).join(" ");
    throw new ValidationError("enabled", `the software update point on ${fqdn} is set to use this proxy; turn that off first (opencmg role set ${fqdn} software-update-point ${opts})`);
  }
}

/** Refuses role settings that need a proxy configuration the server does not have. */
export function checkRoleSettings<K extends RoleKind>(model: ProxyModel, fqdn: string, kind: K, settings: RoleSettingsByKind[K]): void {
  serverOf(model, fqdn);
  const proxy = activeProxy(model, fqdn);
  if (kind === "software-update-point") {
    const s = settings as RoleSettingsByKind["software-update-point"];
    for (const [field, on] of [["useProxyForSync", s.useProxyForSync], ["useProxyForAdr", s.useProxyForAdr]] as const) {
      if (on && !proxy)
        throw new ValidationError(field, `needs a proxy server configured and enabled on ${fqdn} first (opencmg proxy set ${fqdn} --host HOST)`);
    }
  }
  if (kind === "distribution-point") {
    const s = settings as RoleSettingsByKind["distribution-point"];
    const stored = model.proxies.find((p) => p.server === fqdn);
    if (s.connectedCache && stored?.account)
      throw new ValidationError("connectedCache", `the proxy of ${fqdn} uses the account ${stored.account}, but connected cache only works through an unauthenticated proxy`);
  }
}
