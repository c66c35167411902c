/**
 * The shape of the internet endpoint catalog (`catalog.json`): its roles, features, clouds and
 * placeholders, the schema of its sections and entries, and the checks that make a broken entry
 * fail loudly, by id, when the catalog is loaded.
 */
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

export const NAME_PLACEHOLDER = "<name>";
export const PARAMETER_PLACEHOLDER: Record<Parameter, string> = {
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

export const portSchema = z.strictObject({
  scheme: z.enum(["https", "http"]),
  port: z.number().int().min(1).max(65535),
});

export const endpointSchema = z.strictObject({
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

export const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
export const HOST_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`, "i");
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
