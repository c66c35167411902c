/** The console's sign-in, session cookie and CSRF rules on the admin API (fastify inject, a real SQLite site). */
import { siteOperations } from "../app/operations.ts";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { initSite, openSite, type OpenedSite } from "../site/site.ts";
import { buildAdminApi } from "./server.ts";

const root = mkdtempSync(join(tmpdir(), "opencmg-console-api-"));
let site: OpenedSite;
let token: string;
let app: FastifyInstance;

before(async () => {
  site = await openSite({ dataDir: join(root, "data") });
  token = (await initSite(site, { code: "P01", name: "Test" })).adminToken;
  const ui = join(root, "ui");
  mkdirSync(join(ui, "assets"), { recursive: true });
  writeFileSync(join(ui, "index.html"), "<!doctype html><title>console</title>");
  writeFileSync(join(ui, "assets", "app-1234.js"), "console.log(1)");
  app = await buildAdminApi({ site, operations: (actor) => siteOperations(site, actor), consoleDir: ui, sessions: { maxFailures: 3 }, live: { pollMs: 0 } });
});
after(async () => {
  await app.close();
  await site.close();
  rmSync(root, { recursive: true, force: true });
});

async function signIn(): Promise<{ cookie: string; csrf: string }> {
  const r = await app.inject({ method: "POST", url: "/api/v1/session", payload: { token } });
  assert.equal(r.statusCode, 201);
  const set = String(r.headers["set-cookie"]);
  assert.match(set, /^opencmg_session=[\w-]+; Path=\/; HttpOnly; Secure; SameSite=Strict; Max-Age=\d+$/);
  return { cookie: set.split(";")[0]!, csrf: (r.json() as { csrfToken: string }).csrfToken };
}

it("signs in with the admin token only; a wrong token names the field; unknown fields are refused", async () => {
  const wrong = await app.inject({ method: "POST", url: "/api/v1/session", payload: { token: "nope" } });
  assert.equal(wrong.statusCode, 401);
  assert.equal(wrong.json().error.field, "token");
  assert.equal(wrong.headers["set-cookie"], undefined);
  const extra = await app.inject({ method: "POST", url: "/api/v1/session", payload: { token, remember: true } });
  assert.equal(extra.statusCode, 400);
  assert.equal(extra.json().error.field, "remember");
  const s = await signIn();
  assert.ok(!s.cookie.includes(token));
});

it("a session reads; a change needs the session's CSRF header and this site's Origin", async () => {
  const { cookie, csrf } = await signIn();
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/servers", headers: { cookie } })).statusCode, 200);
  const body = { fqdn: "srv01.contoso.test" };
  const noHeader = await app.inject({ method: "POST", url: "/api/v1/servers", headers: { cookie }, payload: body });
  assert.equal(noHeader.statusCode, 403);
  assert.equal(noHeader.json().error.code, "CSRF");
  const wrongHeader = await app.inject({ method: "POST", url: "/api/v1/servers", headers: { cookie, "x-opencmg-csrf": csrf + "x" }, payload: body });
  assert.equal(wrongHeader.statusCode, 403);
  const otherOrigin = await app.inject({ method: "POST", url: "/api/v1/servers", headers: { cookie, "x-opencmg-csrf": csrf, origin: "https://evil.example", host: "localhost:8240" }, payload: body });
  assert.equal(otherOrigin.statusCode, 403);
  assert.deepEqual(await site.services.servers.list(), [], "nothing changed");
  const ok = await app.inject({ method: "POST", url: "/api/v1/servers", headers: { cookie, "x-opencmg-csrf": csrf, origin: "http://localhost:8240", host: "localhost:8240" }, payload: body });
  assert.equal(ok.statusCode, 201);
  // A bearer token needs no CSRF header (no browser sends it by itself).
  const bearer = await app.inject({ method: "DELETE", url: "/api/v1/servers/srv01.contoso.test", headers: { authorization: `Bearer ${token}` } });
  assert.equal(bearer.statusCode, 204);
});

it("sign-out ends the session at the server", async () => {
  const { cookie } = await signIn();
  assert.equal((await app.inject({ method: "DELETE", url: "/api/v1/session", headers: { cookie } })).statusCode, 204);
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/servers", headers: { cookie } })).statusCode, 401);
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/session", headers: { cookie } })).statusCode, 401);
});

it("serves the console's files with its security headers, and its index for the pages' paths", async () => {
  const index = await app.inject({ method: "GET", url: "/monitoring/component-status" });
  assert.equal(index.statusCode, 200);
  assert.match(index.body, /<title>console<\/title>/);
  assert.match(String(index.headers["content-security-policy"]), /script-src 'self';/);
  assert.equal(index.headers["x-frame-options"], "DENY");
  const js = await app.inject({ method: "GET", url: "/assets/app-1234.js" });
  assert.equal(js.headers["content-type"], "text/javascript; charset=utf-8");
  assert.match(String(js.headers["cache-control"]), /immutable/);
  assert.equal((await app.inject({ method: "GET", url: "/assets/missing.js" })).statusCode, 404);
  assert.equal((await app.inject({ method: "GET", url: "/assets/..%2f..%2findex.html" })).statusCode, 404);
  const api404 = await app.inject({ method: "GET", url: "/api/v1/nope", headers: { authorization: `Bearer ${token}` } });
  assert.equal(api404.statusCode, 404);
  assert.equal(api404.json().error.kind, "not_found");
});

it("the OpenAPI document describes the console's routes", async () => {
  const doc = (await app.inject({ method: "GET", url: "/api/v1/openapi.json" })).json() as { paths: Record<string, Record<string, unknown>> };
  assert.ok(doc.paths["/api/v1/session"]?.post && doc.paths["/api/v1/session"]?.delete);
  assert.ok(doc.paths["/api/v1/events"]?.get);
});

it("failed sign-ins from one address are limited", async () => {
  for (let i = 0; i < 3; i++) await app.inject({ method: "POST", url: "/api/v1/session", payload: { token: "guess" }, remoteAddress: "10.9.9.9" });
  const held = await app.inject({ method: "POST", url: "/api/v1/session", payload: { token }, remoteAddress: "10.9.9.9" });
  assert.equal(held.statusCode, 429);
});

it("a read-only token's session only reads, and revoking the token ends its sessions", async () => {
  const reader = await site.services.adminTokens.create("reader", { readOnly: true });
  const r = await app.inject({ method: "POST", url: "/api/v1/session", payload: { token: reader.token } });
  assert.equal(r.statusCode, 201);
  const cookie = String(r.headers["set-cookie"]).split(";")[0]!;
  const csrf = (r.json() as { csrfToken: string }).csrfToken;
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/servers", headers: { cookie } })).statusCode, 200);
  const change = await app.inject({ method: "POST", url: "/api/v1/servers", headers: { cookie, "x-opencmg-csrf": csrf }, payload: { fqdn: "srv02.contoso.test" } });
  assert.equal(change.statusCode, 403);
  await site.services.adminTokens.revoke("reader");
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/servers", headers: { cookie } })).statusCode, 401);
  assert.equal((await app.inject({ method: "GET", url: "/api/v1/session", headers: { cookie } })).statusCode, 401, "the session itself is gone");
});
