/**
 * Every admin API route describes what it answers and what it takes, so the OpenAPI document (and
 * the console's types generated from it) covers the whole API: a JSON answer has a response schema,
 * a body is a strict schema, and a change declared without one is refused any body.
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
import { openApiDocument } from "./openapi.ts";
import type { ApiRoute } from "./route-kit.ts";
import { ROUTES } from "./routes.ts";
import { buildAdminApi } from "./server.ts";
import { createCa, issueCert } from "../pki/issue.ts";

const ALL = [...ROUTES, ...CONSOLE_ROUTE_DOCS];
const NO_CONTENT = new Set([204, 302]);

/** The routes that answer JSON but describe no answer, and those whose body is not a strict object. */
export function undescribed(routes: readonly ApiRoute[]): { response: string[]; body: string[] } {
  const doc = openApiDocument(routes, "test") as { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> } }>> };
  const name = (r: ApiRoute) => `${r.method} ${r.path}`;
  const response = routes.filter((r) => !NO_CONTENT.has(r.status ?? 200) && r.produces === undefined && r.response === undefined).map(name);
  const body = routes
    .filter((r) => r.body !== undefined)
    .filter((r) => {
      const op = doc.paths[r.path.replace(/:([a-zA-Z]+)/g, "{$1}")]![r.method.toLowerCase()]!;
      const schema = op.requestBody?.content["application/json"]?.schema;
      return schema?.type !== "object" || schema.additionalProperties !== false;
    })
    .map(name);
  return { response, body };
}

it("every JSON route has a response schema, every body a strict request schema", () => {
  assert.ok(ALL.length > 80, `found ${ALL.length} routes`);
  assert.deepEqual(undescribed(ALL), { response: [], body: [] });
});

it("finds a route without a response schema, and a body that is not strict", async () => {
  const { z } = await import("zod");
  const bare: ApiRoute = { method: "POST", path: "/api/v1/x", tag: "t", summary: "x", needs: "infrastructure", body: z.object({ a: z.string() }), handle: async () => ({}) };
  assert.deepEqual(undescribed([bare]), { response: ["POST /api/v1/x"], body: ["POST /api/v1/x"] });
});

let root: string;
let site: OpenedSite;
let app: FastifyInstance;
let token: string;
before(async () => {
  root = mkdtempSync(join(tmpdir(), "opencmg-route-schemas-"));
  site = await openSite({ dataDir: join(root, "data") });
  await initSite(site, { code: "P01", name: "Test" });
  token = (await site.services.adminTokens.create("tester")).token;
  app = await buildAdminApi({ site, operations: (actor) => siteOperations(site, actor), consoleDir: null, live: { pollMs: 0 } });
});
after(async () => {
  await app.close();
  await site.close();
  rmSync(root, { recursive: true, force: true });
});

it("a change that declares no request schema is refused a body (it cannot read one it does not describe)", async () => {
  const bodiless = ROUTES.filter((r) => r.method !== "GET" && r.body === undefined);
  assert.ok(bodiless.length > 5, `found ${bodiless.length}`);
  for (const r of bodiless) {
    const url = r.path.replace(/:(\w+)/g, (_m, p: string) => (p === "key" ? "traffic-report-interval" : `x-${p}`));
    const res = await app.inject({ method: r.method, url, headers: { authorization: `Bearer ${token}` }, payload: { surprise: 1 } });
    assert.equal(res.statusCode, 400, `${r.method} ${url}: ${res.body}`);
    assert.equal(res.json().error.field, "surprise", `${r.method} ${url}`);
  }
});

it("what the site answers fits each route's response schema (a CMG, tokens and keys made first)", async () => {
  await site.services.servers.add({ fqdn: "cp01.contoso.test" });
  const ca = await createCa({ commonName: "Test Root" });
  const cert = await issueCert({ issuer: ca, commonName: "*.contoso.test", dnsNames: ["*.contoso.test"], usage: "server" });
  await site.services.cmgs.create({ name: "gw1", serviceFqdn: "gw1.contoso.test", serverCertPem: cert.certPem, serverKeyPem: cert.keyPem, trustedRoots: [ca.certPem], provider: "external" });
  await site.services.tokens.createBulk({});
  await site.services.joins.createToken({ server: "cp01.contoso.test" });
  const answers = async (method: ApiRoute["method"], path: string, url: string): Promise<void> => {
    const r = ROUTES.find((x) => x.method === method && x.path === path)!;
    const res = await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, payload: method === "GET" ? undefined : {} });
    assert.ok(res.statusCode < 300, `${method} ${url}: ${res.body}`);
    const parsed = r.response!.safeParse(res.json());
    assert.ok(parsed.success, `${method} ${url}: ${parsed.error?.message}`);
  };
  await answers("GET", "/api/v1/cmgs/:name", "/api/v1/cmgs/gw1");
  await answers("GET", "/api/v1/cmgs/:name/traffic", "/api/v1/cmgs/gw1/traffic");
  await answers("POST", "/api/v1/cmgs/:name/stop", "/api/v1/cmgs/gw1/stop");
  await answers("POST", "/api/v1/tokens/signing-keys/rotate", "/api/v1/tokens/signing-keys/rotate");
  await answers("POST", "/api/v1/cmgs/settings-keys/rotate", "/api/v1/cmgs/settings-keys/rotate");
  const gets = ROUTES.filter((r) => r.method === "GET" && !r.path.includes(":") && r.response !== undefined);
  assert.ok(gets.length > 15, `found ${gets.length}`);
  for (const r of gets) {
    const res = await app.inject({ method: "GET", url: r.path, headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.statusCode, 200, `${r.path}: ${res.body}`);
    const parsed = r.response!.safeParse(res.json());
    assert.ok(parsed.success, `${r.path}: ${parsed.error?.message}`);
  }
  const one = await app.inject({ method: "GET", url: "/api/v1/settings/traffic-report-interval", headers: { authorization: `Bearer ${token}` } });
  assert.ok(ROUTES.find((r) => r.method === "GET" && r.path === "/api/v1/settings/:key")!.response!.safeParse(one.json()).success, one.body);
});

it("a rule's edit, disable, enable and delete, and the synchronisation schedule answer what their schemas say", async () => {
  await site.services.servers.add({ fqdn: "sup01.contoso.test" });
  await site.services.roles.add("sup01.contoso.test", "software-update-point", {});
  await site.services.adrs.add({ name: "rule1", server: "sup01.contoso.test", products: ["Windows 11"] });
  const answers = async (method: ApiRoute["method"], path: string, url: string, payload?: unknown): Promise<unknown> => {
    const r = ROUTES.find((x) => x.method === method && x.path === path)!;
    const res = await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, payload: method === "GET" ? undefined : ((payload ?? {}) as object) });
    assert.ok(res.statusCode < 300, `${method} ${url}: ${res.body}`);
    const parsed = r.response!.safeParse(res.json());
    assert.ok(parsed.success, `${method} ${url}: ${parsed.error?.message}`);
    return res.json();
  };
  await answers("PATCH", "/api/v1/adrs/:name", "/api/v1/adrs/rule1", { name: "rule2", runAfterSync: true });
  await answers("POST", "/api/v1/adrs/:name/disable", "/api/v1/adrs/rule2/disable");
  await answers("POST", "/api/v1/adrs/:name/enable", "/api/v1/adrs/rule2/enable");
  assert.deepEqual(await answers("GET", "/api/v1/servers/:fqdn/software-update-point/schedule", "/api/v1/servers/sup01.contoso.test/software-update-point/schedule"), { server: "sup01.contoso.test", syncIntervalHours: null, lastSync: null, nextSync: null });
  const set = (await answers("PUT", "/api/v1/servers/:fqdn/software-update-point/schedule", "/api/v1/servers/sup01.contoso.test/software-update-point/schedule", { syncIntervalHours: 12 })) as { syncIntervalHours: number };
  assert.equal(set.syncIntervalHours, 12);
  const refused = await app.inject({ method: "PUT", url: "/api/v1/servers/sup01.contoso.test/software-update-point/schedule", headers: { authorization: `Bearer ${token}` }, payload: { syncIntervalHours: 0 } });
  assert.equal(refused.statusCode, 400);
  assert.equal(refused.json().error.field, "syncIntervalHours");
  assert.equal(((await answers("DELETE", "/api/v1/adrs/:name", "/api/v1/adrs/rule2")) as { resultsDeleted: number }).resultsDeleted, 0);
});
