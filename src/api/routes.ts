/**
 * The admin API's routes: one table that both registers the handlers and describes them in the
 * OpenAPI document, so the two cannot drift apart.
 */
import { z } from "zod";
import type { SiteServices } from "../site/site.ts";
import { SETTINGS_ROUTES } from "./routes-settings.ts";
import { CMG_ROUTES } from "./routes-cmg.ts";

export interface RouteInput {
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: unknown;
}

export interface ApiRoute {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Fastify path syntax (`:name`). */
  path: string;
  summary: string;
  tag: string;
  body?: z.ZodType;
  query?: Record<string, string>;
  /** The status of a success (200 unless said). */
  status?: number;
  handle(s: SiteServices, i: RouteInput): Promise<unknown>;
}

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
  server: z.object({ fqdn: z.string(), site: z.string().optional(), siteServer: z.boolean().optional() }),
  role: z.object({ role: z.string(), ...roleOptions }),
  roleSet: z.object(roleOptions),
  account: z.object({ name: z.string(), username: z.string(), password: z.string() }),
  accountPassword: z.object({ password: z.string(), username: z.string().optional() }),
  proxy: z.object({
    enabled: z.boolean().optional(),
    host: z.string(),
    port: z.union([z.number(), z.string()]).optional(),
    account: z.string().nullable().optional(),
  }),
  site: z.object({ code: z.string(), name: z.string(), type: z.string().optional(), parentCode: z.string().optional() }),
};

/** Body shape errors are reported like every other validation failure (field + rule). */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  return schema.parse(body ?? {});
}

export const ROUTES: ApiRoute[] = [
  { method: "GET", path: "/api/v1/site", tag: "site", summary: "The top-level site", handle: (s) => s.sites.requireTop() },
  { method: "GET", path: "/api/v1/sites", tag: "site", summary: "All sites of the hierarchy", handle: (s) => s.sites.list() },
  { method: "POST", path: "/api/v1/sites", tag: "site", summary: "Add a child site", body: bodies.site, status: 201, handle: (s, i) => s.sites.add(parseBody(bodies.site, i.body)) },

  { method: "GET", path: "/api/v1/servers", tag: "servers", summary: "Site system servers", handle: (s) => s.servers.list() },
  { method: "POST", path: "/api/v1/servers", tag: "servers", summary: "Add a site system server", body: bodies.server, status: 201, handle: (s, i) => s.servers.add(parseBody(bodies.server, i.body)) },
  { method: "GET", path: "/api/v1/servers/:fqdn", tag: "servers", summary: "One site system server", handle: (s, i) => s.servers.get(i.params.fqdn!) },
  { method: "DELETE", path: "/api/v1/servers/:fqdn", tag: "servers", summary: "Remove a site system server (its roles first)", status: 204, handle: (s, i) => s.servers.remove(i.params.fqdn!) },

  { method: "GET", path: "/api/v1/roles", tag: "roles", summary: "Installed roles (filter with ?server=FQDN)", query: { server: "FQDN" }, handle: (s, i) => s.roles.list(i.query.server) },
  { method: "POST", path: "/api/v1/servers/:fqdn/roles", tag: "roles", summary: "Install a role on a server", body: bodies.role, status: 201, handle: (s, i) => { const { role, ...o } = parseBody(bodies.role, i.body); return s.roles.add(i.params.fqdn!, role, o); } },
  { method: "PATCH", path: "/api/v1/servers/:fqdn/roles/:role", tag: "roles", summary: "Change a role's settings", body: bodies.roleSet, handle: (s, i) => s.roles.set(i.params.fqdn!, i.params.role!, parseBody(bodies.roleSet, i.body)) },
  { method: "DELETE", path: "/api/v1/servers/:fqdn/roles/:role", tag: "roles", summary: "Remove a role", status: 204, handle: (s, i) => s.roles.remove(i.params.fqdn!, i.params.role!) },

  { method: "GET", path: "/api/v1/accounts", tag: "accounts", summary: "Accounts (never with their secrets)", handle: (s) => s.accounts.list() },
  { method: "POST", path: "/api/v1/accounts", tag: "accounts", summary: "Create an account", body: bodies.account, status: 201, handle: (s, i) => { const b = parseBody(bodies.account, i.body); return s.accounts.add(b.name, b.username, b.password); } },
  { method: "PUT", path: "/api/v1/accounts/:name/password", tag: "accounts", summary: "Change an account's credentials", body: bodies.accountPassword, handle: (s, i) => { const b = parseBody(bodies.accountPassword, i.body); return s.accounts.setPassword(i.params.name!, b.password, b.username); } },
  { method: "DELETE", path: "/api/v1/accounts/:name", tag: "accounts", summary: "Remove an account no proxy uses", status: 204, handle: (s, i) => s.accounts.remove(i.params.name!) },

  { method: "GET", path: "/api/v1/servers/:fqdn/proxy", tag: "proxy", summary: "The server's proxy configuration (null when none)", handle: (s, i) => s.proxies.show(i.params.fqdn!) },
  { method: "PUT", path: "/api/v1/servers/:fqdn/proxy", tag: "proxy", summary: "Save the server's proxy configuration (replaces the previous one)", body: bodies.proxy, handle: (s, i) => s.proxies.set(i.params.fqdn!, parseBody(bodies.proxy, i.body)) },
  { method: "DELETE", path: "/api/v1/servers/:fqdn/proxy", tag: "proxy", summary: "Remove the server's proxy configuration", status: 204, handle: (s, i) => s.proxies.clear(i.params.fqdn!) },
  { method: "GET", path: "/api/v1/servers/:fqdn/proxy/effective/:subject", tag: "proxy", summary: "Which proxy a role or feature on the server uses, and why", handle: (s, i) => s.proxies.effective(i.params.fqdn!, i.params.subject!) },

  { method: "GET", path: "/api/v1/status/messages", tag: "status", summary: "Status messages, oldest first", query: { component: "component name", messageId: "message ID", limit: "at most this many (newest)" }, handle: (s, i) => s.status.messages({ component: i.query.component, messageId: i.query.messageId ? Number(i.query.messageId) : undefined, limit: i.query.limit ? Number(i.query.limit) : undefined }) },
  { method: "GET", path: "/api/v1/status/components", tag: "status", summary: "Component status per server", query: { server: "FQDN" }, handle: (s, i) => s.status.components(i.query.server) },

  ...SETTINGS_ROUTES,
  ...CMG_ROUTES,
];
