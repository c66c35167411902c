/** The admin API over real HTTP, on SQLite and PostgreSQL. */
import assert from "node:assert/strict";
import { after, beforeEach, it } from "node:test";
import { forEachDatabase } from "../../helpers/databases.ts";
import { openTestSite } from "../../helpers/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import type { OpenedSite } from "../../../src/site/site.ts";

forEachDatabase("admin API", (db) => {
  let site: OpenedSite & { adminToken: string };
  let server: RunningSiteServer;
  const open: { site: OpenedSite; server: RunningSiteServer }[] = [];
  after(async () => {
    for (const o of open) {
      await o.server.close();
      await o.site.close();
    }
  });
  beforeEach(async () => {
    site = await openTestSite(db);
    server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" } });
    open.push({ site, server });
  });
  const call = async (method: string, path: string, body?: unknown, token: string | null = site.adminToken) => {
    const res = await fetch(server.url + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  it("a request without a valid token gets 401 and changes nothing", async () => {
    for (const token of [null, "wrong-token"]) {
      const r = await call("POST", "/api/v1/servers", { fqdn: "srv01.contoso.com" }, token);
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, "ADMIN_TOKEN");
    }
    assert.deepEqual((await call("GET", "/api/v1/servers")).body, []);
  });

  it("manages servers, roles, accounts and proxy settings through the same services as the CLI", async () => {
    assert.equal((await call("POST", "/api/v1/servers", { fqdn: "scp01.contoso.com" })).status, 201);
    const role = await call("POST", "/api/v1/servers/scp01.contoso.com/roles", { role: "service-connection-point" });
    assert.equal(role.status, 201);
    assert.equal(typeof role.body.id, "number");
    const acc = await call("POST", "/api/v1/accounts", { name: "CONTOSO\\svc-proxy", username: "svc", password: "Api-S3cret" });
    assert.equal(acc.status, 201);
    assert.ok(!JSON.stringify(acc.body).includes("Api-S3cret"));
    const put = await call("PUT", "/api/v1/servers/scp01.contoso.com/proxy", { host: "proxy.contoso.com", port: 8080, account: "CONTOSO\\svc-proxy" });
    assert.equal(put.status, 200);
    assert.deepEqual(put.body, { server: "scp01.contoso.com", enabled: true, host: "proxy.contoso.com", port: 8080, account: "CONTOSO\\svc-proxy" });
    const eff = await call("GET", "/api/v1/servers/scp01.contoso.com/proxy/effective/service-connection-point");
    assert.equal(eff.body.use, "proxy");
    const accounts = await call("GET", "/api/v1/accounts");
    assert.ok(!JSON.stringify(accounts.body).includes("Api-S3cret"));
  });

  it("validation errors name the field and the rule; malformed JSON is a 400 too", async () => {
    await call("POST", "/api/v1/servers", { fqdn: "srv01.contoso.com" });
    const bad = await call("PUT", "/api/v1/servers/srv01.contoso.com/proxy", { host: "proxy.contoso.com", port: 70000 });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, "port");
    assert.match(bad.body.error.rule, /1 to 65535/);
    const missing = await call("PUT", "/api/v1/servers/srv01.contoso.com/proxy", { port: 8080 });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.field, "host");
    const malformed = await call("POST", "/api/v1/servers", "{not json");
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.error.field, "body");
    const dup = await call("POST", "/api/v1/servers", { fqdn: "srv01.contoso.com" });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.field, "fqdn");
    assert.equal((await call("GET", "/api/v1/servers/srv01.contoso.com/proxy")).body, null);
  });

  it("a request with several bad fields gets every one back at once, each named in words", async () => {
    await call("POST", "/api/v1/servers", { fqdn: "srv01.contoso.com" });
    const problems = (r: { body: { error: { errors?: { field: string; rule: string; message: string }[] } } }) => Object.fromEntries((r.body.error.errors ?? []).map((e) => [e.field, e.message]));
    // The service's own checks (accounts).
    const account = await call("POST", "/api/v1/accounts", { name: " padded ", username: "bad\u0001user", password: "" });
    assert.equal(account.status, 400);
    assert.equal(account.body.error.code, "VALIDATION");
    assert.equal(account.body.error.field, "name", "the top-level field is the first problem, as before");
    assert.match(account.body.error.message, /^name: must not start or end with spaces/);
    assert.deepEqual(problems(account), {
      name: "Name: must not start or end with spaces",
      username: "User name: must not contain control characters",
      password: "Password: must not be empty",
    });
    // A rule that needs the database (the account must exist) beside the others (proxy).
    const proxy = await call("PUT", "/api/v1/servers/srv01.contoso.com/proxy", { host: "http://proxy", port: 70000, account: "nobody" });
    assert.equal(proxy.status, 400);
    assert.deepEqual(Object.keys(problems(proxy)).sort(), ["account", "host", "port"]);
    assert.match(problems(proxy).port!, /^Port: must be from 1 to 65535$/);
    assert.match(problems(proxy).account!, /^Proxy server account: must name an existing account/);
    // The body's shape and rules and the certificate files together (Create Cloud Management Gateway).
    const cmg = await call("POST", "/api/v1/cmgs", { name: "bad name!", region: "west europe", deploy: { trafficAlert: { thresholdGb: 0 } } });
    assert.equal(cmg.status, 400);
    assert.deepEqual(problems(cmg), {
      name: "Name: must be 1-63 letters, digits or hyphens, starting with a letter or digit",
      region: "Region: must be 1-90 letters, digits, dots, underscores or hyphens",
      "deploy.trafficAlert.thresholdGb": "14-day threshold (GB): must be a number of GB above 0",
      serverCertPem: "Certificate file: choose the server authentication certificate: a PEM certificate with its private key, or a PFX file with its password",
    });
    // Zod's own issues, all of them (Client Settings).
    const settings = await call("PATCH", "/api/v1/clients/settings", { locationIntervalMinutes: 0, policyIntervalMinutes: "x", useCmg: "yes" });
    assert.equal(settings.status, 400);
    assert.deepEqual(Object.keys(problems(settings)).sort(), ["locationIntervalMinutes", "policyIntervalMinutes", "useCmg"]);
    assert.deepEqual(await site.services.cmgs.list(), [], "nothing created");
    assert.deepEqual((await call("GET", "/api/v1/accounts")).body, []);
  });

  it("reads and changes site settings with the same rules as the CLI", async () => {
    const list = await call("GET", "/api/v1/settings");
    assert.equal(list.status, 200);
    assert.ok(list.body.some((v: { key: string; value: string }) => v.key === "alert-evaluation-interval" && v.value === "15m"));
    const set = await call("PUT", "/api/v1/settings/alert-evaluation-interval", { value: "30s" });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.value, "30s");
    assert.equal(await site.services.settings.durationMs("alert-evaluation-interval"), 30_000);
    const bad = await call("PUT", "/api/v1/settings/alert-evaluation-interval", { value: "2y" });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.field, "alert-evaluation-interval");
    const misspelt = await call("PUT", "/api/v1/settings/alert-evaluation-interval", { value: "1m", valeu: "1m" });
    assert.equal(misspelt.status, 400);
    assert.equal(misspelt.body.error.field, "valeu");
    const unknown = await call("GET", "/api/v1/settings/no-such-setting");
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.error.field, "key");
    assert.equal((await call("DELETE", "/api/v1/settings/alert-evaluation-interval")).body.value, "15m");
    // Audited by its one line in AUDITED: the change, then the reset.
    const audit = (await call("GET", "/api/v1/audit?object=setting/")).body.items;
    assert.deepEqual(audit.map((e: { action: string }) => e.action), ["settings.reset", "settings.set"]);
    assert.equal(audit[1].before.value, "15m");
    assert.equal(audit[1].after.value, "30s");
  });

  it("serves its OpenAPI description", async () => {
    const r = await call("GET", "/api/v1/openapi.json", undefined, null);
    assert.equal(r.status, 200);
    assert.equal(r.body.openapi, "3.1.0");
    assert.ok(r.body.paths["/api/v1/servers/{fqdn}/proxy"].put.requestBody);
  });
});
