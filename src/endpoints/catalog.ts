/**
 * The internet endpoint catalog: which endpoints each role and feature needs (document 002 of
 * the source documents, see SPEC.md section 2). The data lives in `catalog.json`, versioned with
 * the product; this module validates it when it is loaded (a broken entry fails loudly, by id)
 * and answers "which endpoints for these roles, features and cloud".
 */
import catalogJson from "./catalog.json" with { type: "json" };
import { ValidationError } from "../errors.ts";
import { FEATURES, HOST_RE, hostOf, LABEL, NAME_PLACEHOLDER, PARAMETER_PLACEHOLDER, parseCatalog, ROLES, type Catalog, type Endpoint, type Parameter, type Scheme } from "./catalog-schema.ts";

export { CLOUDS, FEATURES, hostOf, PARAMETERS, parseCatalog, ROLES } from "./catalog-schema.ts";
export type { Catalog, Cloud, Endpoint, Feature, Parameter, PortSpec, Role, Scheme, Section } from "./catalog-schema.ts";

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
