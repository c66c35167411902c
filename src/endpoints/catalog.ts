/**
 * The internet endpoint catalog: which endpoints each role and feature needs (document 002 of
 * the source documents, see SPEC.md section 2). The data lives in `catalog.json`, versioned with
 * the product; this module validates it when it is loaded (a broken entry fails loudly, by id)
 * and answers "which endpoints for these roles, features and cloud".
 */
import catalogJson from "./catalog.json" with { type: "json" };
import { z } from "zod";
import { ValidationError } from "../errors.ts";

export const ROLES = [
  "service-connection-point",
  "cmg-connection-point",
  "software-update-point",
  "management-point",
  "distribution-point",
  "cloud-distribution-point",
  "asset-intelligence-sync-point",
  "exchange-connector",
  "site-server",
  "client",
  "console",
] as const;
/** A site system role (the names of `opencmg role add`) or a machine kind (client, console, site server). */
export type Role = (typeof ROLES)[number];

export const FEATURES = [
  "url-forwarding",
  "updates-and-servicing",
  "windows-servicing",
  "azure-services",
  "delivery-optimization",
  "connected-cache",
  "cmg",
  "cmg-content",
  "cloud-distribution-point",
  "azure-ad",
  "azure-ad-user-discovery",
  "software-updates",
  "software-update-hierarchy",
  "office-365",
  "console-feedback",
  "documentation-node",
  "community-hub",
  "geographical-view",
  "asset-intelligence",
] as const;
export type Feature = (typeof FEATURES)[number];

export const CLOUDS = ["public", "usgov", "any"] as const;
/** `any`: the document gives one endpoint for every cloud. */
export type Cloud = (typeof CLOUDS)[number];
export type Scheme = "https" | "http";

/** The intranet firewall entries take a site system's FQDN instead of `<name>`. */
export const PARAMETERS = ["child-sup-fqdn", "parent-sup-fqdn"] as const;
export type Parameter = (typeof PARAMETERS)[number];

const NAME_PLACEHOLDER = "<name>";
const PARAMETER_PLACEHOLDER: Record<Parameter, string> = {
  "child-sup-fqdn": "<FQDN for software update point on child site>",
  "parent-sup-fqdn": "<FQDN for software update point on parent site>",
};

const slug = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "lower-case slug");

const sectionSchema = z.strictObject({
  id: slug,
  title: z.string().min(1),
  parent: slug.optional(),
  /** The anchor of the section in the source document. */
  anchor: z.string().min(1),
  /** For sections that list no endpoints of their own: what the document says instead. */
  reference: z.string().min(1).optional(),
});

const portSchema = z.strictObject({
  scheme: z.enum(["https", "http"]),
  port: z.number().int().min(1).max(65535),
});

const endpointSchema = z.strictObject({
  /** Stable identifier: `<section>/<address slug>`. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*\/[a-z0-9][a-z0-9.-]*$/, "<section>/<slug>"),
  section: slug,
  features: z.array(z.enum(FEATURES)).min(1),
  roles: z.array(z.enum(ROLES)).min(1),
  /** Host or URL exactly as the document writes it (placeholders included). */
  address: z.string().min(1),
  ports: z.array(portSchema).min(1),
  /** Where the scheme and port come from: the URL itself, the section's text, or assumed (HTTPS 443). */
  portSource: z.enum(["url", "section", "assumed"]),
  cloud: z.enum(CLOUDS),
  wildcard: z.boolean(),
  /** The address contains `<name>`: the CMG or cloud distribution point service name. */
  takesName: z.boolean(),
  parameter: z.enum(PARAMETERS).optional(),
  /** `intranet` entries are firewall rules between site systems, not internet proxy rules. */
  network: z.enum(["internet", "intranet"]),
  required: z.boolean(),
  /** Always included whatever the filters (the URL forwarding services). */
  always: z.boolean(),
  notes: z.string(),
});

const catalogSchema = z.strictObject({
  $comment: z.string().optional(),
  version: z.string().regex(/^\d+\.\d+\.\d+$/, "semantic version"),
  source: z.strictObject({
    document: z.string().min(1),
    title: z.string().min(1),
    locale: z.string().min(1),
    documentDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
    assetId: z.string().min(1),
  }),
  sections: z.array(sectionSchema).min(1),
  endpoints: z.array(endpointSchema).min(1),
});

export type Section = z.infer<typeof sectionSchema>;
export type PortSpec = z.infer<typeof portSchema>;
export type Endpoint = z.infer<typeof endpointSchema>;
export type Catalog = z.infer<typeof catalogSchema>;

/** One way to reach an endpoint: scheme, port and the URL to try (`*.` kept for wildcards). */
export interface Target {
  scheme: Scheme;
  port: number;
  url: string;
}

/** A catalog entry with its placeholders replaced. */
export interface ResolvedEndpoint extends Endpoint {
  /** `address` with its placeholders replaced (`address` itself stays as the document writes it). */
  resolvedAddress: string;
  /** Lower-case host name; wildcards keep their `*.` prefix. */
  host: string;
  /** One per entry of `ports`. */
  targets: Target[];
}

export interface OmittedEndpoint {
  endpoint: Endpoint;
  reason: string;
}

export interface Selection {
  endpoints: ResolvedEndpoint[];
  omitted: OmittedEndpoint[];
}

export interface SelectOptions {
  /** Entries needed by any of these roles (no filter when absent or empty). */
  roles?: readonly string[];
  /** Entries of any of these features (no filter when absent or empty). */
  features?: readonly string[];
  /** `public` or `usgov`: that cloud's variants plus the `any` entries. Absent: every variant. */
  cloud?: "public" | "usgov";
  /** The CMG or cloud distribution point service name (`GraniteFalls`) or its FQDN (`GraniteFalls.cloudapp.net`). */
  cmgName?: string;
  /** FQDN of the software update point on the child site (intranet firewall entries). */
  childSupFqdn?: string;
  /** FQDN of the software update point on the parent site (intranet firewall entries). */
  parentSupFqdn?: string;
}

/**
 * The host of an entry, lower case, from a host or a URL: `https://go.microsoft.com/fwlink/?LinkID=1`
 * gives `go.microsoft.com`, `*.akamaiedge.net` stays `*.akamaiedge.net`. Placeholders are kept.
 *
 * @example hostOf({ address: "http://*.windowsupdate.com" }) // "*.windowsupdate.com"
 */
export function hostOf(entry: Pick<Endpoint, "address">): string {
  const withoutScheme = entry.address.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  // Placeholders may hold spaces but never '/', '?' or '#'.
  const host = withoutScheme.split(/[/?#]/, 1)[0] ?? "";
  return host.toLowerCase();
}

/**
 * Validates catalog data. Throws a ValidationError whose field names the broken entry
 * (`catalog.endpoints[3] (id)`) and whose rule says what is wrong.
 */
export function parseCatalog(data: unknown): Catalog {
  const r = catalogSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ValidationError(describePath(data, issue.path), issue.message);
  }
  const catalog = r.data;
  const sectionIds = new Set<string>();
  catalog.sections.forEach((s, i) => {
    if (sectionIds.has(s.id)) throw new ValidationError(`catalog.sections[${i}] (${s.id})`, "duplicate section id");
    sectionIds.add(s.id);
  });
  catalog.sections.forEach((s, i) => {
    if (s.parent !== undefined && !sectionIds.has(s.parent))
      throw new ValidationError(`catalog.sections[${i}] (${s.id})`, `unknown parent section '${s.parent}'`);
  });
  const ids = new Set<string>();
  catalog.endpoints.forEach((e, i) => {
    const field = `catalog.endpoints[${i}] (${e.id})`;
    const fail = (rule: string): never => {
      throw new ValidationError(field, rule);
    };
    if (ids.has(e.id)) fail("duplicate endpoint id");
    ids.add(e.id);
    if (!sectionIds.has(e.section)) fail(`unknown section '${e.section}'`);
    if (!e.id.startsWith(`${e.section}/`)) fail("id must start with the section");
    const host = hostOf(e);
    if (e.wildcard !== host.startsWith("*.")) fail(`wildcard must be ${host.startsWith("*.")} for '${e.address}'`);
    if (host.indexOf("*", e.wildcard ? 1 : 0) !== -1) fail("'*' only as the leading label");
    if (e.takesName !== e.address.includes(NAME_PLACEHOLDER)) fail(`takesName must be ${!e.takesName} for '${e.address}'`);
    for (const p of PARAMETERS) {
      const has = e.address.includes(PARAMETER_PLACEHOLDER[p]);
      if (has !== (e.parameter === p)) fail(`parameter '${p}' and the placeholder in the address must go together`);
    }
    if ((e.parameter !== undefined) !== (e.network === "intranet")) fail("parameterised entries are the intranet ones");
    const concrete = host.replace(NAME_PLACEHOLDER, "name").replace(/^\*\./, "");
    if (e.parameter === undefined && !HOST_RE.test(concrete)) fail(`'${host}' is not a host name`);
    const scheme = /^([a-z]+):\/\//i.exec(e.address)?.[1]?.toLowerCase();
    if (scheme !== undefined) {
      if (e.portSource !== "url") fail("an address with a scheme takes its port from the URL");
      if (e.ports.length !== 1 || e.ports[0]!.scheme !== scheme) fail(`ports must be the URL's scheme '${scheme}'`);
    } else if (e.portSource === "url") fail("portSource 'url' needs a URL");
    for (const p of e.ports) {
      if (p.port !== (p.scheme === "https" ? 443 : 80)) fail(`${p.scheme} is on port ${p.scheme === "https" ? 443 : 80} in the document`);
    }
  });
  return deepFreeze(catalog);
}

let bundled: Catalog | undefined;

/** The catalog shipped with the product (read and validated once; the result is frozen). */
export function bundledCatalog(): Catalog {
  bundled ??= parseCatalog(catalogJson);
  return bundled;
}

/**
 * The endpoints for some roles and features in one cloud, with `<name>` and the software update
 * point FQDNs replaced. Entries that need a value that was not given are listed in `omitted`
 * with the reason. The URL forwarding entries (`always`) are included whatever the filters.
 *
 * @example
 * const { endpoints, omitted } = selectEndpoints({ roles: ["cmg-connection-point"], cloud: "public", cmgName: "GraniteFalls" });
 * // endpoints include granitefalls.cloudapp.net and granitefalls.blob.core.windows.net
 */
export function selectEndpoints(opts: SelectOptions = {}, catalog: Catalog = bundledCatalog()): Selection {
  const roles = checkNames("role", opts.roles, ROLES);
  const features = checkNames("feature", opts.features, FEATURES);
  if (opts.cloud !== undefined && opts.cloud !== "public" && opts.cloud !== "usgov")
    throw new ValidationError("cloud", "one of public, usgov");
  const name = opts.cmgName === undefined ? undefined : serviceName(opts.cmgName, opts.cloud);
  const values: Record<Parameter, string | undefined> = {
    "child-sup-fqdn": opts.childSupFqdn === undefined ? undefined : fqdn("childSupFqdn", opts.childSupFqdn),
    "parent-sup-fqdn": opts.parentSupFqdn === undefined ? undefined : fqdn("parentSupFqdn", opts.parentSupFqdn),
  };

  const out: Selection = { endpoints: [], omitted: [] };
  for (const e of catalog.endpoints) {
    if (opts.cloud !== undefined && e.cloud !== "any" && e.cloud !== opts.cloud) continue;
    if (!e.always) {
      if (roles.length > 0 && !e.roles.some((r) => roles.includes(r))) continue;
      if (features.length > 0 && !e.features.some((f) => features.includes(f))) continue;
    }
    let address = e.address;
    if (e.takesName) {
      if (name === undefined) {
        out.omitted.push({ endpoint: e, reason: "needs the CMG or cloud distribution point service name (cmgName)" });
        continue;
      }
      address = address.split(NAME_PLACEHOLDER).join(name);
    }
    if (e.parameter !== undefined) {
      const value = values[e.parameter];
      if (value === undefined) {
        const which = e.parameter === "child-sup-fqdn" ? "child site (childSupFqdn)" : "parent site (parentSupFqdn)";
        out.omitted.push({ endpoint: e, reason: `needs the FQDN of the software update point on the ${which}` });
        continue;
      }
      address = address.split(PARAMETER_PLACEHOLDER[e.parameter]).join(value);
    }
    out.endpoints.push(resolve(e, address));
  }
  return out;
}

function resolve(e: Endpoint, address: string): ResolvedEndpoint {
  const host = hostOf({ address });
  const targets = e.ports.map((p): Target => {
    // A URL in the document is tried as written (its path matters: fwlink, graph); a bare host at its root.
    const url = e.portSource === "url" ? address.replace(/^[a-z]+:\/\/[^/?#]*/i, `${p.scheme}://${host}`) : `${p.scheme}://${host}/`;
    return { scheme: p.scheme, port: p.port, url };
  });
  return { ...e, resolvedAddress: address, host, targets };
}

const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const HOST_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, "i");
const SERVICE_SUFFIXES: { suffix: string; cloud: "public" | "usgov" }[] = [
  { suffix: ".cloudapp.net", cloud: "public" },
  { suffix: ".usgovcloudapp.net", cloud: "usgov" },
];

/**
 * The service name from `GraniteFalls` or `GraniteFalls.cloudapp.net` (the document's example: that
 * CMG's storage endpoint is `GraniteFalls.blob.core.windows.net`). Lower case, one DNS label.
 */
function serviceName(value: string, cloud: "public" | "usgov" | undefined): string {
  let v = value.trim().toLowerCase().replace(/\.$/, "");
  for (const s of SERVICE_SUFFIXES) {
    if (v.endsWith(s.suffix)) {
      if (cloud !== undefined && cloud !== s.cloud)
        throw new ValidationError("cmgName", `'${value}' is a ${s.cloud} cloud service name but the cloud is ${cloud}`);
      v = v.slice(0, -s.suffix.length);
    }
  }
  if (!new RegExp(`^${LABEL}$`).test(v))
    throw new ValidationError("cmgName", "the service name is one DNS label (letters, digits, hyphens), optionally followed by .cloudapp.net or .usgovcloudapp.net");
  return v;
}

function fqdn(field: string, value: string): string {
  const v = value.trim().toLowerCase().replace(/\.$/, "");
  if (!HOST_RE.test(v) || v.length > 253) throw new ValidationError(field, "a host name or FQDN");
  return v;
}

function checkNames<T extends string>(field: string, given: readonly string[] | undefined, known: readonly T[]): T[] {
  const out: T[] = [];
  for (const g of given ?? []) {
    if (!(known as readonly string[]).includes(g)) throw new ValidationError(field, `unknown ${field} '${g}'; one of ${known.join(", ")}`);
    out.push(g as T);
  }
  return out;
}

/** `catalog.endpoints[3] (id).roles[0]` for a zod issue path, so a broken entry is found by id. */
function describePath(data: unknown, path: readonly PropertyKey[]): string {
  let out = "catalog";
  let node: unknown = data;
  for (const key of path) {
    node = node !== null && typeof node === "object" ? (node as Record<PropertyKey, unknown>)[key] : undefined;
    out += typeof key === "number" ? `[${key}]` : `.${String(key)}`;
    if (typeof key === "number" && node !== null && typeof node === "object" && typeof (node as { id?: unknown }).id === "string")
      out += ` (${(node as { id: string }).id})`;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
