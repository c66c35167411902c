/**
 * The internet endpoints the site's roles need (`opencmg endpoints`), their exports as downloads,
 * and the site's connectivity check (`opencmg check --site`) started and read over the API.
 */
import { z } from "zod";
import { ValidationError } from "../errors.ts";
import { EXPORT_FORMATS, exportEndpoints, parseProxyAddress, type ExportFormat } from "../endpoints/export.ts";
import { endpointSelection } from "../roles/scp/endpoint-selection.ts";
import type { SiteServices } from "../site/site.ts";
import type { ApiRoute, RouteInput } from "./route-kit.ts";
import { Download, parseBody, parsedQuery, needing } from "./route-kit.ts";
import * as S from "./schemas.ts";

/** Content type and file name of each export. */
export const EXPORT_TYPES: Record<ExportFormat, { contentType: string; file: string }> = {
  text: { contentType: "text/plain; charset=utf-8", file: "opencmg-endpoints.txt" },
  json: { contentType: "application/json; charset=utf-8", file: "opencmg-endpoints.json" },
  csv: { contentType: "text/csv; charset=utf-8", file: "opencmg-endpoints.csv" },
  squid: { contentType: "text/plain; charset=utf-8", file: "opencmg-endpoints.squid.conf" },
  pac: { contentType: "application/x-ns-proxy-autoconfig", file: "opencmg-endpoints.pac" },
};

const list = (what: string) =>
  z
    .string()
    .optional()
    .transform((v) => (v === undefined ? undefined : v.split(",").map((x) => x.trim()).filter((x) => x !== "")))
    .describe(`${what}, comma-separated`);

const filters = {
  role: list("only what these roles or machines need"),
  feature: list("only these features, e.g. cmg,software-updates"),
  cloud: z.enum(["public", "usgov"], { error: "must be public or usgov" }).optional().describe("default: the site's CMGs' cloud, else both clouds' variants"),
  cmgName: z.string().optional().describe("the CMG service name that fills <name> (default: the site's CMGs)"),
  childSupFqdn: z.string().optional().describe("software update point of the child site (intranet firewall entries)"),
  parentSupFqdn: z.string().optional().describe("software update point of the parent site"),
};
const listQuery = z.strictObject(filters);
const exportQuery = z.strictObject({
  ...filters,
  format: z.enum(EXPORT_FORMATS, { error: `must be one of ${EXPORT_FORMATS.join(", ")}` }).default("text").describe(`${EXPORT_FORMATS.join(", ")} (default text)`),
  proxy: z.string().optional().describe("for format=pac: the proxy (host:port) the catalog's hosts go to"),
});
const checkBody = z.strictObject({ server: z.string().optional().describe("check the endpoints of this server's roles through its proxy; default: the site's own check from the service connection point's server, recorded as status") });

async function selection(s: SiteServices, f: z.output<typeof listQuery>) {
  return endpointSelection(s, { roles: f.role, features: f.feature, cmgName: f.cmgName, childSupFqdn: f.childSupFqdn, parentSupFqdn: f.parentSupFqdn }, f.cloud, undefined);
}

async function exportDownload(s: SiteServices, i: RouteInput): Promise<Download> {
  const f = parsedQuery(exportQuery, i);
  if (f.proxy !== undefined && f.format !== "pac") throw new ValidationError("proxy", "applies to format=pac only");
  if (f.format === "pac" && f.proxy === undefined) throw new ValidationError("proxy", "format=pac needs proxy=host:port");
  const proxy = f.proxy === undefined ? undefined : parseProxyAddress(f.proxy);
  const t = EXPORT_TYPES[f.format];
  return new Download(t.contentType, t.file, exportEndpoints(f.format, await selection(s, f), proxy ? { proxy } : {}));
}

export const ENDPOINTS_ROUTES: ApiRoute[] = needing("infrastructure", [
  {
    method: "GET",
    path: "/api/v1/endpoints",
    tag: "endpoints",
    summary: "The internet endpoints to allow: with no filters, those of the roles installed at the site",
    query: listQuery,
    response: S.endpointSelection,
    handle: async (s, i) => {
      const sel = await selection(s, parsedQuery(listQuery, i));
      return { endpoints: sel.endpoints, omitted: sel.omitted.map((o) => ({ id: o.endpoint.id, address: o.endpoint.address, reason: o.reason })) };
    },
  },
  {
    method: "GET",
    path: "/api/v1/endpoints/export",
    tag: "endpoints",
    summary: "The endpoints as a file to download: text, json, csv, squid (ACLs) or pac",
    query: exportQuery,
    produces: [...new Set(Object.values(EXPORT_TYPES).map((t) => t.contentType))],
    handle: exportDownload,
  },
  {
    method: "POST",
    path: "/api/v1/endpoints/checks",
    tag: "endpoints",
    summary: "Start a connectivity check (the site's own, or through one server's proxy); answers at once with the running check",
    body: checkBody,
    response: S.checkRecord,
    status: 202,
    handle: (_s, i) => i.ops.startCheck(parseBody(checkBody, i.body).server),
  },
  { method: "GET", path: "/api/v1/endpoints/checks", tag: "endpoints", summary: "Connectivity checks started over the API, newest first (without their results)", response: z.array(S.checkRecord), handle: (s) => s.checks.list() },
  {
    method: "GET",
    path: "/api/v1/endpoints/checks/:id",
    tag: "endpoints",
    summary: "One connectivity check: its state and, when done, every endpoint with its stages",
    response: S.checkRecord,
    handle: (s, i) => {
      const id = Number(i.params.id);
      if (!Number.isInteger(id) || id < 1) throw new ValidationError("id", "must be a check id (a whole number)");
      return s.checks.get(id);
    },
  },
]);
