/**
 * Allow-list exports of a catalog selection, for the people and tools that enforce it: a table,
 * JSON, CSV (RFC 4180), a Squid ACL snippet and a proxy auto-config (PAC) file.
 */
import { isIPv4, isIPv6 } from "node:net";
import { ValidationError } from "../errors.ts";
import { bundledCatalog, ROLES, type Catalog, type ResolvedEndpoint, type Selection } from "./catalog.ts";

export const EXPORT_FORMATS = ["text", "json", "csv", "squid", "pac"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** Where the PAC file sends the catalog's hosts. */
export interface ProxyAddress {
  host: string;
  port: number;
}

/** What the exports say about the catalog they come from. */
export type CatalogInfo = Pick<Catalog, "version" | "source">;

export interface ExportOptions {
  /** Required for `pac`. */
  proxy?: ProxyAddress;
  /** Defaults to the bundled catalog's version and source. */
  catalog?: CatalogInfo;
}

/**
 * One selection in one format. The result ends with a newline.
 *
 * @example
 * const sel = selectEndpoints({ roles: ["software-update-point"] });
 * process.stdout.write(exportEndpoints("squid", sel));
 */
export function exportEndpoints(format: ExportFormat, selection: Selection, opts: ExportOptions = {}): string {
  switch (format) {
    case "text":
      return toText(selection.endpoints);
    case "json":
      return toJson(selection, opts.catalog);
    case "csv":
      return toCsv(selection.endpoints);
    case "squid":
      return toSquid(selection.endpoints, opts.catalog);
    case "pac":
      if (opts.proxy === undefined) throw new ValidationError("proxy", "the pac format needs a proxy (host:port)");
      return toPac(selection.endpoints, opts.proxy, opts.catalog);
    default:
      throw new ValidationError("format", `one of ${EXPORT_FORMATS.join(", ")}`);
  }
}

/** An aligned table for people: one row per endpoint. */
export function toText(endpoints: readonly ResolvedEndpoint[]): string {
  const header = ["ENDPOINT", "PORTS", "CLOUD", "REQUIRED", "SECTION", "ROLES"];
  const rows = endpoints.map((e) => [
    e.resolvedAddress,
    e.ports.map((p) => `${p.port}/${p.scheme}`).join(","),
    e.cloud,
    e.required ? "yes" : "no",
    e.section,
    e.roles.length === ROLES.length ? "(all)" : e.roles.join(","),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const lines = all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  "));
  return lines.join("\n") + "\n";
}

/** For machines: the catalog version, the endpoints with their targets, and what was left out and why. */
export function toJson(selection: Selection, catalog: CatalogInfo = bundledCatalog()): string {
  const doc = {
    catalog: { version: catalog.version, source: catalog.source },
    endpoints: selection.endpoints,
    omitted: selection.omitted.map((o) => ({ id: o.endpoint.id, address: o.endpoint.address, reason: o.reason })),
  };
  return JSON.stringify(doc, null, 2) + "\n";
}

const CSV_COLUMNS = ["id", "section", "address", "host", "scheme", "port", "url", "cloud", "wildcard", "takes_name", "required", "network", "roles", "features", "notes"] as const;

/** RFC 4180 CSV: a header, then one record per endpoint and port, CRLF line ends. */
export function toCsv(endpoints: readonly ResolvedEndpoint[]): string {
  const records: string[][] = [[...CSV_COLUMNS]];
  for (const e of endpoints) {
    for (const t of e.targets) {
      records.push([
        e.id,
        e.section,
        e.resolvedAddress,
        e.host,
        t.scheme,
        String(t.port),
        t.url,
        e.cloud,
        String(e.wildcard),
        String(e.takesName),
        String(e.required),
        e.network,
        e.roles.join(";"),
        e.features.join(";"),
        e.notes,
      ]);
    }
  }
  return records.map((r) => r.map(csvField).join(",")).join("\r\n") + "\r\n";
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The Squid ACL name for a catalog section. */
export function squidAclName(section: string): string {
  return `opencmg_${section.replace(/[^a-z0-9]+/gi, "_").toLowerCase()}`;
}

/**
 * A Squid snippet: `acl opencmg_<section> dstdomain` lines (wildcards as a leading dot) and the
 * matching `http_access allow` lines as commented examples. Intranet entries are left out (they are
 * firewall rules between site systems, not proxy rules).
 */
export function toSquid(endpoints: readonly ResolvedEndpoint[], catalog: CatalogInfo = bundledCatalog()): string {
  const bySection = new Map<string, string[]>();
  let intranet = 0;
  for (const e of endpoints) {
    if (e.network === "intranet") {
      intranet++;
      continue;
    }
    const list = bySection.get(e.section) ?? [];
    list.push(e.host.startsWith("*.") ? e.host.slice(1) : e.host);
    bySection.set(e.section, list);
  }
  const out = [
    `# OpenCMG internet endpoints: catalog ${catalog.version} (${catalog.source.title}, ${catalog.source.documentDate}).`,
    "# A leading dot matches the domain and every name under it; names a dot entry already covers are",
    "# left out, because Squid refuses (or warns about) overlapping dstdomain entries in one ACL.",
  ];
  if (intranet > 0) out.push(`# Left out: ${intranet} intranet firewall entries (between site systems, not through the proxy).`);
  const acls: string[] = [];
  for (const [section, domains] of bySection) {
    const acl = squidAclName(section);
    acls.push(acl);
    for (const d of withoutOverlaps(domains)) out.push(`acl ${acl} dstdomain ${d}`);
  }
  out.push("", "# Example: allow them, before your final 'http_access deny all':");
  for (const acl of acls) out.push(`# http_access allow ${acl}`);
  return out.join("\n") + "\n";
}

/**
 * Squid dstdomain semantics: `.x.com` matches `x.com` and everything under it. Drops duplicates and
 * every entry another `.domain` entry covers, keeping the first-seen order.
 */
export function withoutOverlaps(domains: readonly string[]): string[] {
  const unique = [...new Set(domains.map((d) => d.toLowerCase()))];
  const dotted = unique.filter((d) => d.startsWith("."));
  const coveredBy = (d: string, w: string): boolean => {
    const bare = d.startsWith(".") ? d.slice(1) : d;
    return d !== w && (bare === w.slice(1) || bare.endsWith(w));
  };
  return unique.filter((d) => !dotted.some((w) => coveredBy(d, w)));
}

/**
 * A proxy auto-config file: the catalog's exact hosts and wildcard subdomains go to `PROXY host:port`,
 * everything else (and intranet entries) `DIRECT`. A wildcard `*.x.com` matches names under
 * `x.com`, not `x.com` itself, as the catalog means it.
 */
export function toPac(endpoints: readonly ResolvedEndpoint[], proxy: ProxyAddress, catalog: CatalogInfo = bundledCatalog()): string {
  const target = `PROXY ${formatProxy(checkProxy(proxy))}`;
  const allSuffixes = [...new Set(endpoints.filter((e) => e.network === "internet" && e.wildcard).map((e) => e.host.slice(1)))];
  // `.a.x.com` adds nothing when `.x.com` is there.
  const suffixes = allSuffixes.filter((s) => !allSuffixes.some((o) => o !== s && s.endsWith(o)));
  const hosts = [
    ...new Set(endpoints.filter((e) => e.network === "internet" && !e.wildcard).map((e) => e.host)),
  ].filter((h) => !suffixes.some((s) => h.endsWith(s)));
  const list = (xs: string[]): string => (xs.length === 0 ? "[]" : `[\n    ${xs.map((x) => JSON.stringify(x)).join(",\n    ")}\n  ]`);
  return [
    `// OpenCMG proxy auto-config: catalog ${catalog.version} (${catalog.source.title}, ${catalog.source.documentDate}).`,
    "// The catalog's hosts go through the proxy; everything else goes direct.",
    "function FindProxyForURL(url, host) {",
    `  var proxy = ${JSON.stringify(target)};`,
    `  var hosts = ${list(hosts)};`,
    "  // From wildcard entries (*.example.com): names under the domain, not the domain itself.",
    `  var suffixes = ${list(suffixes)};`,
    "  var h = host.toLowerCase();",
    '  if (h.charAt(h.length - 1) == ".") h = h.substring(0, h.length - 1);',
    '  if (isPlainHostName(h)) return "DIRECT";',
    "  for (var i = 0; i < hosts.length; i++) {",
    "    if (h == hosts[i]) return proxy;",
    "  }",
    "  for (var j = 0; j < suffixes.length; j++) {",
    "    if (dnsDomainIs(h, suffixes[j])) return proxy;",
    "  }",
    '  return "DIRECT";',
    "}",
    "",
  ].join("\n");
}

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOST_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, "i");

/**
 * `proxy.contoso.com:8080`, `10.0.0.1:3128` or `[::1]:3128` -> `{ host, port }`; a ValidationError
 * naming `proxy` otherwise.
 */
export function parseProxyAddress(value: string): ProxyAddress {
  const m = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim());
  if (m === null) throw new ValidationError("proxy", "host:port (a host name, an IPv4 address or a bracketed IPv6 address, then the port)");
  if (m[1] !== undefined && !isIPv6(m[1])) throw new ValidationError("proxy", `'[${m[1]}]' is not an IPv6 address`);
  return checkProxy({ host: (m[1] ?? m[2])!, port: Number(m[3]) });
}

function checkProxy(p: ProxyAddress): ProxyAddress {
  if (!(isIPv6(p.host) || isIPv4(p.host) || (HOST_RE.test(p.host) && p.host.length <= 253)))
    throw new ValidationError("proxy", `'${p.host}' is not a host name or IP address`);
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new ValidationError("proxy", "port 1-65535");
  return p;
}

function formatProxy(p: ProxyAddress): string {
  return p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`;
}
