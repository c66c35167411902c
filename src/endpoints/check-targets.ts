/**
 * The targets of a check: one per distinct URL of a catalog selection, with the wildcards that
 * have a known host to try resolved and the rest marked untestable.
 */
import { ValidationError } from "../errors.ts";
import { hostForUrl } from "../egress/route.ts";
import { bundledCatalog, hostOf, type Catalog, type ResolvedEndpoint, type Scheme, type Selection } from "./catalog.ts";

/** One URL to try, standing for one or more catalog entries (the same URL appears in several sections). */
export interface CheckTarget {
  /** What is tried: `https://go.microsoft.com/` (a port only when it is not the scheme's default). */
  url: string;
  scheme: Scheme;
  host: string;
  port: number;
  /** Path and query of the HEAD request. */
  path: string;
  /** The catalog entries this URL stands for. */
  endpointIds: string[];
  /** The address as the catalog writes it (`*.manage.microsoft.com` for a wildcard tried through a known host). */
  address: string;
  /** Needed (not optional) by at least one of its entries. */
  required: boolean;
  /** A wildcard with no known host: reported `not-testable`, never tried. */
  untestable?: boolean;
  /** Why it is not tried at all (reported `skipped`). */
  skip?: string;
}

export interface TargetOptions {
  /** A concrete host to try for a wildcard entry, by wildcard (`*.manage.microsoft.com` -> `a.manage.microsoft.com`). */
  wildcardHosts?: Record<string, string>;
}

/**
 * The targets of a selection: one per distinct URL (entries that share a URL are merged), in
 * catalog order. Wildcards are untestable unless `wildcardHosts` gives a host under them;
 * intranet entries (firewall rules between site systems) are skipped.
 *
 * @example
 * const targets = checkTargets(selectEndpoints({ roles: ["service-connection-point"], cloud: "public" }));
 */
export function checkTargets(selection: Selection | readonly ResolvedEndpoint[], opts: TargetOptions = {}): CheckTarget[] {
  const endpoints = "endpoints" in selection ? selection.endpoints : selection;
  const known = knownWildcardHosts(opts.wildcardHosts ?? {});
  const byUrl = new Map<string, CheckTarget>();
  for (const e of endpoints) {
    for (const t of e.targets) {
      const concrete = e.wildcard ? known.get(e.host) : e.host;
      const url = new URL(t.url.replace("://*.", "://wildcard."));
      const host = concrete ?? e.host;
      const path = `${url.pathname}${url.search}`;
      const key = `${t.scheme}://${host}:${t.port}${path}`;
      const existing = byUrl.get(key);
      if (existing) {
        existing.endpointIds.push(e.id);
        existing.required ||= e.required;
        continue;
      }
      byUrl.set(key, {
        url: targetUrl(t.scheme, host, t.port, path),
        scheme: t.scheme,
        host,
        port: t.port,
        path,
        endpointIds: [e.id],
        address: e.resolvedAddress,
        required: e.required,
        ...(e.wildcard && concrete === undefined ? { untestable: true } : {}),
        ...(e.network === "intranet" ? { skip: "an intranet firewall rule between site systems: check it from the software update point on the child site" } : {}),
      });
    }
  }
  return [...byUrl.values()];
}

/** Lower-cased wildcard -> host, each host checked to be one label under its wildcard. */
function knownWildcardHosts(wildcardHosts: Record<string, string>): Map<string, string> {
  const known = new Map<string, string>();
  for (const [pattern, host] of Object.entries(wildcardHosts)) {
    const p = pattern.toLowerCase();
    const h = host.toLowerCase();
    if (!p.startsWith("*.") || !h.endsWith(p.slice(1)) || h.length <= p.length - 1)
      throw new ValidationError("wildcardHost", `${host} is not a host under ${pattern}`);
    known.set(p, h);
  }
  return known;
}

/**
 * The wildcard entries each host falls under, as `TargetOptions.wildcardHosts`. A host under none
 * of the catalog's wildcards is refused.
 *
 * @example
 * wildcardHostsUnder(["a.manage.microsoft.com"]); // { "*.manage.microsoft.com": "a.manage.microsoft.com" }
 */
export function wildcardHostsUnder(hosts: readonly string[], catalog: Catalog = bundledCatalog()): Record<string, string> {
  const patterns = [...new Set(catalog.endpoints.filter((e) => e.wildcard).map((e) => hostOf(e)))];
  const out: Record<string, string> = {};
  for (const raw of hosts) {
    const h = raw.trim().toLowerCase();
    const under = patterns.filter((p) => h.endsWith(p.slice(1)) && h.length > p.length - 1);
    if (under.length === 0) throw new ValidationError("wildcardHost", `${raw} is under none of the catalog's wildcard entries (${patterns.join(", ")})`);
    for (const p of under) out[p] = h;
  }
  return out;
}

/** The same target on another port (where a stand-in listens, in tests and benchmarks). */
export function onPort(t: CheckTarget, port: number): CheckTarget {
  return { ...t, port, url: targetUrl(t.scheme, t.host, port, t.path) };
}

function targetUrl(scheme: Scheme, host: string, port: number, path: string): string {
  const def = scheme === "https" ? 443 : 80;
  return `${scheme}://${hostForUrl(host)}${port === def ? "" : `:${port}`}${path}`;
}
