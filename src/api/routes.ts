/**
 * The admin API's routes: one table that both registers the handlers and describes them in the
 * OpenAPI document, so the two cannot drift apart. Bodies and queries are strict zod objects: an
 * unknown or misspelt field is a 400 naming it. Each area's routes are in routes-<area>.ts.
 */
import { z } from "zod";
import { CMG_ANALYZE_ROUTES } from "./routes-cmg-analyze.ts";
import { parseBody, parsedQuery, q, type ApiRoute, needing } from "./route-kit.ts";
import * as S from "./schemas.ts";
import { ADMIN_ROUTES } from "./routes-admin.ts";
import { CLIENTS_ROUTES } from "./routes-clients.ts";
import { CMGS_ROUTES } from "./routes-cmgs.ts";
import { ENDPOINTS_ROUTES } from "./routes-endpoints.ts";
import { UPDATES_ROUTES } from "./routes-updates.ts";
import { SETTINGS_ROUTES } from "./routes-settings.ts";
import { CMG_TRAFFIC_ROUTES } from "./routes-cmg-traffic.ts";
import { TOKEN_ROUTES } from "./routes-tokens.ts";
import { CMG_TRUST_ROUTES } from "./routes-cmg-trust.ts";
import { CMG_ROUTES } from "./routes-cmg-lifecycle.ts";
import { clientCommunicationPatch } from "../site/services/sites.ts";

export type { ApiRoute, RouteInput } from "./route-kit.ts";
export { Download, parseBody, parsedQuery, q, queryShape } from "./route-kit.ts";

const roleOptions = {
  allowCmgTraffic: z.boolean().optional(),
  useProxyForSync: z.boolean().optional(),
  useProxyForAdr: z.boolean().optional(),
  connectedCache: z.boolean().optional(),
  internalUrl: z.string().optional(),
  upstreamUrl: z.string().optional(),
  updateFeedUrl: z.string().optional(),
  cmgName: z.string().optional(),
};

export const bodies = {
  server: z.strictObject({ fqdn: z.string(), site: z.string().optional(), siteServer: z.boolean().optional() }),
  role: z.strictObject({ role: z.string(), ...roleOptions }),
  roleSet: z.strictObject(roleOptions),
  account: z.strictObject({ name: z.string(), username: z.string(), password: z.string() }),
  accountPassword: z.strictObject({ password: z.string(), username: z.string().optional() }),
  proxy: z.strictObject({
    enabled: z.boolean().optional(),
    host: z.string(),
    port: z.union([z.number(), z.string()]).optional(),
    account: z.string().nullable().optional(),
  }),
  site: z.strictObject({ code: z.string(), name: z.string(), type: z.string().optional(), parentCode: z.string().optional() }),
  clientCommunication: clientCommunicationPatch,
};

const statusQuery = z.strictObject({
  component: z.string().optional().describe("only this component, e.g. SMS_SERVICE_CONNECTOR"),
  server: z.string().optional().describe("only from this server"),
  severity: z.enum(["informational", "warning", "error"], { error: "must be informational, warning or error" }).optional(),
  messageId: z.coerce.number({ error: "must be a message ID (a whole number)" }).int("must be a message ID (a whole number)").min(0, "must be 0 or more").optional(),
  source: z.enum(["site", "client"], { error: "must be site or client" }).optional().describe("the site's own messages or the ones devices uploaded"),
  clientId: z.string().max(64, "must be at most 64 characters").optional().describe("only the messages this client uploaded"),
  since: q.time.describe("from this time (inclusive)"),
  until: q.time.describe("to this time (exclusive)"),
  limit: q.limit(1000, 100).describe("at most this many per page (default 100)"),
  cursor: q.cursor.describe("the nextCursor of the previous page"),
});

const CORE: ApiRoute[] = needing("infrastructure", [
  { method: "GET", path: "/api/v1/site", tag: "site", summary: "The top-level site", response: S.site, handle: (s) => s.sites.requireTop() },
  { method: "GET", path: "/api/v1/sites", tag: "site", summary: "All sites of the hierarchy", response: z.array(S.site), handle: (s) => s.sites.list() },
  { method: "GET", path: "/api/v1/sites/:code/client-communication", tag: "site", summary: "A primary site's Client Computer Communication settings", response: S.clientCommunication, handle: (s, i) => s.sites.clientCommunication(i.params.code!) },
  {
    method: "PATCH",
    path: "/api/v1/sites/:code/client-communication",
    tag: "site",
    summary: "Change a primary site's Client Computer Communication settings (the given ones; a Full Administrator: they weaken how clients trust site systems when turned off)",
    needs: "security",
    body: bodies.clientCommunication,
    response: S.clientCommunication,
    handle: (s, i) => s.sites.setClientCommunication(i.params.code!, parseBody(bodies.clientCommunication, i.body)),
  },
  { method: "POST", path: "/api/v1/sites", tag: "site", summary: "Add a child site", body: bodies.site, response: S.site, status: 201, handle: (s, i) => s.sites.add(parseBody(bodies.site, i.body)) },

  { method: "GET", path: "/api/v1/servers", tag: "servers", summary: "Site system servers", response: z.array(S.server), handle: (s) => s.servers.list() },
  { method: "POST", path: "/api/v1/servers", tag: "servers", summary: "Add a site system server", body: bodies.server, response: S.server, status: 201, handle: (s, i) => s.servers.add(parseBody(bodies.server, i.body)) },
  { method: "GET", path: "/api/v1/servers/:fqdn", tag: "servers", summary: "One site system server", response: S.server, handle: (s, i) => s.servers.get(i.params.fqdn!) },
  { method: "DELETE", path: "/api/v1/servers/:fqdn", tag: "servers", summary: "Remove a site system server (its roles first)", status: 204, handle: (s, i) => s.servers.remove(i.params.fqdn!) },

  { method: "GET", path: "/api/v1/roles", tag: "roles", summary: "Installed roles (filter with ?server=FQDN)", query: { server: "FQDN" }, response: z.array(S.role), handle: (s, i) => s.roles.list(i.query.server) },
  { method: "POST", path: "/api/v1/servers/:fqdn/roles", tag: "roles", summary: "Install a role on a server", body: bodies.role, response: S.role, status: 201, handle: (s, i) => { const { role, ...o } = parseBody(bodies.role, i.body); return s.roles.add(i.params.fqdn!, role, o); } },
  { method: "PATCH", path: "/api/v1/servers/:fqdn/roles/:role", tag: "roles", summary: "Change a role's settings", body: bodies.roleSet, response: S.role, handle: (s, i) => s.roles.set(i.params.fqdn!, i.params.role!, parseBody(bodies.roleSet, i.body)) },
  { method: "DELETE", path: "/api/v1/servers/:fqdn/roles/:role", tag: "roles", summary: "Remove a role", status: 204, handle: (s, i) => s.roles.remove(i.params.fqdn!, i.params.role!) },

  { method: "GET", path: "/api/v1/accounts", tag: "accounts", summary: "Accounts (never with their secrets)", response: z.array(S.account), handle: (s) => s.accounts.list() },
  { method: "POST", path: "/api/v1/accounts", tag: "accounts", summary: "Create an account", body: bodies.account, response: S.account, status: 201, handle: (s, i) => { const b = parseBody(bodies.account, i.body); return s.accounts.add(b.name, b.username, b.password); } },
  { method: "PUT", path: "/api/v1/accounts/:name/password", tag: "accounts", summary: "Change an account's credentials", body: bodies.accountPassword, response: S.account, handle: (s, i) => { const b = parseBody(bodies.accountPassword, i.body); return s.accounts.setPassword(i.params.name!, b.password, b.username); } },
  { method: "DELETE", path: "/api/v1/accounts/:name", tag: "accounts", summary: "Remove an account no proxy uses", status: 204, handle: (s, i) => s.accounts.remove(i.params.name!) },

  { method: "GET", path: "/api/v1/servers/:fqdn/proxy", tag: "proxy", summary: "The server's proxy configuration (null when none)", response: S.proxyConfig.nullable(), handle: (s, i) => s.proxies.show(i.params.fqdn!) },
  { method: "PUT", path: "/api/v1/servers/:fqdn/proxy", tag: "proxy", summary: "Save the server's proxy configuration (replaces the previous one)", body: bodies.proxy, response: S.proxyConfig, handle: (s, i) => s.proxies.set(i.params.fqdn!, parseBody(bodies.proxy, i.body)) },
  { method: "DELETE", path: "/api/v1/servers/:fqdn/proxy", tag: "proxy", summary: "Remove the server's proxy configuration", status: 204, handle: (s, i) => s.proxies.clear(i.params.fqdn!) },
  { method: "GET", path: "/api/v1/servers/:fqdn/proxy/effective/:subject", tag: "proxy", summary: "Which proxy a role or feature on the server uses, and why", response: S.proxyDecision, handle: (s, i) => s.proxies.effective(i.params.fqdn!, i.params.subject!) },

  {
    method: "GET",
    path: "/api/v1/status/messages",
    tag: "status",
    summary: "Status messages, newest first, a page at a time (filter by component, server, severity, message ID, source, client and time)",
    query: statusQuery,
    response: S.page(S.statusMessage),
    handle: (s, i) => s.status.page(parsedQuery(statusQuery, i)),
  },
  { method: "GET", path: "/api/v1/status/components", tag: "status", summary: "Component status per server", query: { server: "FQDN" }, response: z.array(S.componentStatus), handle: (s, i) => s.status.components(i.query.server) },

  ...SETTINGS_ROUTES,
  ...CMG_TRAFFIC_ROUTES,
  ...CMG_ANALYZE_ROUTES,
  ...TOKEN_ROUTES,
  ...CMG_TRUST_ROUTES,
  ...CMG_ROUTES,
]);

export const ROUTES: ApiRoute[] = [...CORE, ...ADMIN_ROUTES, ...CLIENTS_ROUTES, ...CMGS_ROUTES, ...ENDPOINTS_ROUTES, ...UPDATES_ROUTES];
