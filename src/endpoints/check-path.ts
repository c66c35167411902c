/**
 * The one place that builds the outbound path of an endpoint check, for the CLI and the admin
 * API alike: an ad-hoc proxy, a site system server's proxy (through the site's egress, as its
 * roles use it), the service connection point's server, `$HTTPS_PROXY` when there is no site, or
 * direct.
 */
import { existsSync, readFileSync } from "node:fs";
import { ValidationError } from "../errors.ts";
import { Egress } from "../egress/egress.ts";
import type { EgressProvider } from "../egress/pool.ts";
import { proxyAddress, type EgressRoute } from "../egress/route.ts";
import type { ComponentLog } from "../logs/cmtrace.ts";
import { PROXY_ROLES } from "../proxy/rules.ts";
import { parseProxyAddress } from "./export.ts";

type ProxyRoute = Extract<EgressRoute, { mode: "proxy" }>;

/** What the path needs of a site (an OpenedSite has it all). */
export interface CheckPathSite {
  paths: { egressCa: string };
  services: {
    roles: { list(fqdn?: string): Promise<readonly { kind: string; serverFqdn: string }[]> };
    servers: { get(fqdn: string): Promise<{ fqdn: string }> };
    proxies: { show(fqdn: string): Promise<{ enabled: boolean; host: string; port: number; account: string | null } | null> };
    accounts: { credentials(name: string): Promise<{ username: string; password: string }> };
  };
  egress: EgressProvider;
}

export interface CheckPathOptions {
  /** The site, when one exists; without it only `proxy`, the environment's proxy or direct. */
  site?: CheckPathSite | undefined;
  /** Check through this site system server's proxy configuration (needs `site`). */
  server?: string | undefined;
  /** An ad-hoc proxy URL, `http://[user:password@]host:port` (not with `server`). */
  proxy?: string | undefined;
  /** `HTTPS_PROXY`/`https_proxy`, used only when there is no site. */
  env?: Record<string, string | undefined> | undefined;
  log: ComponentLog;
  connectTimeoutMs: number;
  /** Extra trusted roots for the targets' TLS. */
  ca?: string[] | undefined;
}

export interface CheckPath {
  egress: Egress;
  /** How the path reads for people: `proxy 10.0.0.1:8080 as CONTOSO\svc (the proxy configuration of scp01...)`. */
  describe: string;
  /** Trusted roots the path brings (the site's egress-ca.pem), to add to the check's own. */
  ca: string[];
  /** Closes the Egress when the path owns it (not one of the site's pooled ones). */
  close(): Promise<void>;
}

/**
 * The outbound path of a check: `proxy`, `server`, the service connection point's server,
 * `$HTTPS_PROXY` (no site only), else direct.
 *
 * @example
 * const path = await checkPath({ site, server: "scp01.contoso.com", log, connectTimeoutMs: 10_000 });
 * try { await checkEndpoints(targets, { egress: path.egress, ca: path.ca, log }); } finally { await path.close(); }
 */
export async function checkPath(o: CheckPathOptions): Promise<CheckPath> {
  if (o.server !== undefined && o.proxy !== undefined) throw new ValidationError("server", "give --server or --proxy, not both");
  const adhoc = o.proxy === undefined ? undefined : parseProxyUrl("proxy", o.proxy);
  const own = (route: EgressRoute, describe: string, ca: string[] = []): CheckPath => {
    const egress = new Egress(route, { log: o.log, connectTimeoutMs: o.connectTimeoutMs, ...(o.ca?.length ? { ca: o.ca } : {}) });
    return { egress, describe, ca, close: () => egress.close() };
  };
  if (adhoc) return own(adhoc, describeProxy(adhoc, "--proxy"));
  if (o.site) return sitePath(o.site, o.server, o.log, own);
  if (o.server !== undefined) throw new ValidationError("server", "--server needs a site");
  const env = o.env?.HTTPS_PROXY ?? o.env?.https_proxy;
  if (env) return own(parseProxyUrl("HTTPS_PROXY", env), describeProxy(parseProxyUrl("HTTPS_PROXY", env), "$HTTPS_PROXY (no site in --data)"));
  return own({ mode: "direct" }, "a direct connection (no site in --data, no $HTTPS_PROXY)");
}

/** The path of a server of the site: as its internet role goes out, else its stored proxy configuration. */
async function sitePath(site: CheckPathSite, server: string | undefined, log: ComponentLog, own: (route: EgressRoute, describe: string, ca: string[]) => CheckPath): Promise<CheckPath> {
  const siteCa = existsSync(site.paths.egressCa) ? [readFileSync(site.paths.egressCa, "utf8")] : [];
  const s = site.services;
  const fqdnGiven = server ?? (await s.roles.list()).find((r) => r.kind === "service-connection-point")?.serverFqdn;
  if (fqdnGiven === undefined) return own({ mode: "direct" }, "a direct connection (the site has no service connection point, whose server's proxy would be used)", siteCa);
  const { fqdn } = await s.servers.get(fqdnGiven);
  const kinds = (await s.roles.list(fqdn)).map((r) => r.kind);
  // The role whose proxy use is checked: the service connection point first, else another internet role.
  const subject = [...PROXY_ROLES].sort((a, b) => (a === "service-connection-point" ? -1 : b === "service-connection-point" ? 1 : 0)).find((k) => kinds.includes(k));
  if (subject) {
    const lease = await site.egress.for(fqdn, subject, log);
    const describe = lease.route.mode === "proxy" ? describeProxy(lease.route, `the proxy configuration of ${fqdn}, as its ${subject}`) : `a direct connection (${lease.decision.reason})`;
    return { egress: lease.egress, describe, ca: siteCa, close: async () => {} };
  }
  // No internet role on it: its stored proxy configuration as it stands.
  const cfg = await s.proxies.show(fqdn);
  if (!cfg || !cfg.enabled) return own({ mode: "direct" }, `a direct connection (${fqdn} has ${cfg ? "its proxy configuration disabled" : "no proxy configuration"})`, siteCa);
  const credentials = cfg.account ? await s.accounts.credentials(cfg.account) : undefined;
  const route: EgressRoute = { mode: "proxy", host: cfg.host, port: cfg.port, ...(credentials ? { credentials } : {}) };
  return own(route, describeProxy(route, `the proxy configuration of ${fqdn}`), siteCa);
}

function describeProxy(route: ProxyRoute, source: string): string {
  return `proxy ${proxyAddress(route)} ${route.credentials ? `as ${route.credentials.username}` : "without an account"} (${source})`;
}

/**
 * `http://[user:password@]host[:port]` -> a proxy route. The port defaults to 80, as the
 * documents' proxy settings do.
 *
 * @example
 * parseProxyUrl("proxy", "http://svc:secret@proxy.contoso.com:8080");
 * // { mode: "proxy", host: "proxy.contoso.com", port: 8080, credentials: { username: "svc", password: "secret" } }
 */
export function parseProxyUrl(field: string, value: string): ProxyRoute {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ValidationError(field, "a URL: http://[user:password@]host:port");
  }
  if (u.protocol !== "http:") throw new ValidationError(field, "an http:// URL (the proxy is spoken to in plain HTTP; https:// targets tunnel through it)");
  if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash) throw new ValidationError(field, "http://[user:password@]host:port, with nothing after the port");
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const { host: h, port } = parseProxyAddress(`${host.includes(":") ? `[${host}]` : host}:${u.port || "80"}`);
  const username = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  if (password && !username) throw new ValidationError(field, "a password needs a user name");
  return { mode: "proxy", host: h, port, ...(username ? { credentials: { username, password } } : {}) };
}
