/**
 * Every admin API route declares the permission its caller's security role must grant, and the API
 * holds each to it (fastify inject, a real SQLite site): a Read-only Analyst is refused every
 * change with 403 ROLE_FORBIDDEN; an Infrastructure Administrator changes servers and ordinary
 * settings but not tokens, administrative users or the settings of directory sign-in.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { siteOperations } from "../app/operations.ts";
import { initSite, openSite, type OpenedSite } from "../site/site.ts";
import { CONSOLE_ROUTE_DOCS } from "./console.ts";
import { ROUTES } from "./routes.ts";
import { buildAdminApi } from "./server.ts";
import { PERMISSIONS } from "../site/services/admin-roles.ts";

const root = mkdtempSync(join(tmpdir(), "opencmg-route-roles-"));
let site: OpenedSite;
let app: FastifyInstance;
let analyst: string;
let infra: string;
const ALL = [...ROUTES, ...CONSOLE_ROUTE_DOCS];

before(async () => {
  site = await openSite({ dataDir: join(root, "data") });
  await initSite(site, { code: "P01", name: "Test" });
  analyst = (await site.services.adminTokens.create("analyst", { role: "read-only-analyst" })).token;
  infra = (await site.services.adminTokens.create("infra", { role: "infrastructure-administrator" })).token;
  app = await buildAdminApi({ site, operations: (actor) => siteOperations(site, actor), consoleDir: null, live: { pollMs: 0 } });
});
after(async () => {
  await app.close();
  await site.close();
  rmSync(root, { recursive: true, force: true });
});

it("every route declares what it needs (or that it is public), and no change needs only read", () => {
  const undeclared = ALL.filter((r) => r.auth !== false && r.needs === undefined).map((r) => `${r.method} ${r.path}`);
  assert.deepEqual(undeclared, [], "routes that declare no permission");
  for (const r of ALL) {
    if (r.auth === false || r.needs === undefined) continue;
    const need = typeof r.needs === "function" ? r.needs({ params: { key: "x" } }) : r.needs;
    assert.ok((PERMISSIONS as readonly string[]).includes(need), `${r.method} ${r.path}: ${need}`);
    if (r.method !== "GET") assert.notEqual(need, "read", `${r.method} ${r.path} changes the site but needs only read`);
  }
});

it("a Read-only Analyst is refused every change with 403 ROLE_FORBIDDEN, and reads", async () => {
  const changes = ALL.filter((r) => r.method !== "GET" && r.auth !== false);
  assert.ok(changes.length > 30, `found ${changes.length} changing routes`);
  for (const r of changes) {
    const url = r.path.replace(/:(\w+)/g, (_m, p: string) => (p === "key" ? "traffic-report-interval" : `x-${p}`));
    const res = await app.inject({ method: r.method, url, headers: { authorization: `Bearer ${analyst}` }, payload: {} });
    assert.equal(res.statusCode, 403, `${r.method} ${url}: ${res.body}`);
    assert.equal(res.json().error.code, "ROLE_FORBIDDEN", `${r.method} ${url}`);
    assert.match(res.json().error.message, /analyst is a Read-only Analyst/);
  }
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/servers", headers: { authorization: `Bearer ${analyst}` } })).statusCode, 200);
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/audit", headers: { authorization: `Bearer ${analyst}` } })).statusCode, 200);
  const me = (await app.inject({ method: "GET", url: "/api/v1/whoami", headers: { authorization: `Bearer ${analyst}` } })).json();
  assert.deepEqual(me, { name: "analyst", role: "read-only-analyst", roleLabel: "Read-only Analyst", readOnly: true, permissions: ["read"], source: "token" });
});

it("an Infrastructure Administrator changes servers and ordinary settings, not tokens, administrative users or directory settings", async () => {
  const as = (method: "POST" | "PUT" | "DELETE", url: string, payload: unknown) => app.inject({ method, url, headers: { authorization: `Bearer ${infra}` }, payload: payload as object });
  assert.equal((await as("POST", "/api/v1/servers", { fqdn: "srv01.contoso.test" })).statusCode, 201);
  assert.equal((await as("PUT", "/api/v1/settings/traffic-report-interval", { value: "1m" })).statusCode, 200);
  for (const [method, url, body] of [
    ["POST", "/api/v1/admin-tokens", { name: "mine", role: "full-administrator" }],
    ["POST", "/api/v1/tokens/bulk", {}],
    ["POST", "/api/v1/admin-users", { kind: "user", value: "mallory", role: "full-administrator" }],
    ["PUT", "/api/v1/admin-tokens/infra/role", { role: "full-administrator" }],
    ["PUT", "/api/v1/settings/admin-oidc-issuer", { value: "https://login.example.com" }],
    ["DELETE", "/api/v1/settings/oidc-issuer", undefined],
  ] as const) {
    const res = await as(method, url, body);
    assert.equal(res.statusCode, 403, `${method} ${url}: ${res.body}`);
    assert.equal(res.json().error.code, "ROLE_FORBIDDEN");
  }
  assert.deepEqual((await site.services.adminTokens.list()).map((t) => t.name), ["admin", "analyst", "infra"], "no token was made");
  // The audit log names the token for its change.
  const audit = await site.services.audit.list({ action: "servers.add" });
  assert.equal(audit.items[0]?.actor, "infra");
});

it("the services refuse a security change to an Infrastructure Administrator whatever door it comes through", async () => {
  const s = site.servicesAs({ name: "infra", via: "api", role: "infrastructure-administrator" });
  await assert.rejects(s.adminTokens.create("sneaky"), (e: Error & { code?: string }) => e.code === "FORBIDDEN");
  await assert.rejects(s.adminUsers.add({ kind: "group", value: "admins", role: "full-administrator" }), (e: Error & { code?: string }) => e.code === "FORBIDDEN");
});
