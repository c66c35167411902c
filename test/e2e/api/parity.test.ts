/**
 * The admin API does what the CLI does, against a real site: CMGs created from uploaded PEM and
 * PFX, clients, endpoint exports as downloads, the site's connectivity check started and read,
 * software update sync and automatic deployment rules through a loopback internet, paged status
 * messages; strict bodies, one error shape, and an OpenAPI document that validates and lists
 * every route fastify registered.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import SwaggerParser from "@apidevtools/swagger-parser";
import { buildAdminApi, registeredRoutes } from "../../../src/api/server.ts";
import { siteOperations } from "../../../src/app/operations.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { selectEndpoints } from "../../../src/endpoints/catalog.ts";
import { onPort, type CheckTarget } from "../../../src/endpoints/checker.ts";
import { createCa, issueCert } from "../../../src/pki/issue.ts";
import { writePfx } from "../../../src/pki/pfx.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { apiClient, type ApiAnswer } from "../../helpers/api.ts";
import { tempDir } from "../../helpers/databases.ts";
import { DEFAULT_NAMES, serveBytes, startInternet, type Internet } from "../../helpers/internet.ts";
import { startSquid } from "../../helpers/squid.ts";
import { until } from "../../helpers/until.ts";

const SCP = "scp01.contoso.com";
const SUP = "sup01.contoso.com";
/** Every concrete host the service connection point needs (wildcards are not testable). */
const SCP_HOSTS = [...new Set(selectEndpoints({ roles: ["service-connection-point"], cloud: "public" }).endpoints.filter((e) => !e.wildcard).map((e) => e.host))];
const payload = Buffer.from("update payload ".repeat(500));

let net: Internet;
let site: OpenedSite & { adminToken: string };
let server: RunningSiteServer;
let call: (method: string, path: string, body?: unknown, token?: string | null) => Promise<ApiAnswer>;

before(async () => {
  net = await startInternet({ names: [...new Set([...DEFAULT_NAMES, ...SCP_HOSTS])] });
  net.route("/", (_req, res) => {
    res.writeHead(200, { "content-length": 0 });
    res.end();
  });
  net.route("/fwlink/", (_req, res) => {
    res.writeHead(302, { location: "https://go.microsoft.com/", "content-length": 0 });
    res.end();
  });
  net.route("/content/kb1.cab", serveBytes(payload));
  const catalog = {
    version: 1,
    updates: [{ id: "KB5001", title: "2026-11 Cumulative Update", classification: "Security Updates", product: "Windows 11", releaseDate: "2026-11-10", files: [{ name: "kb1.cab", url: net.url("https", "/content/kb1.cab", "download.windowsupdate.com"), size: payload.length, sha256: createHash("sha256").update(payload).digest("hex") }] }],
  };
  net.route("/catalog.json", serveBytes(Buffer.from(JSON.stringify(catalog)), "application/json"));

  const opened = await openSite({ dataDir: tempDir(), egressCa: [net.ca.certPem], egressLookup: net.lookup });
  const { adminToken } = await initSite(opened, { code: "P01", name: "API parity" });
  site = Object.assign(opened, { adminToken });
  const mapTarget = (t: CheckTarget): CheckTarget => onPort(t, t.scheme === "https" ? net.httpsPort : net.httpPort);
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, onDemandCheck: { mapTarget, ca: [net.ca.certPem], stageTimeoutMs: 5000 } });
  call = apiClient(server.url, adminToken);
});

after(async () => {
  await server?.close();
  await site?.close();
  await net?.stop();
});

describe("errors and strict bodies", () => {
  it("an unknown or misspelt field is a 400 naming it, in bodies, nested objects and queries", async () => {
    assert.equal((await call("POST", "/api/v1/servers", { fqdn: SUP })).status, 201);
    assert.equal((await call("POST", `/api/v1/servers/${SUP}/roles`, { role: "software-update-point", upstreamUrl: net.url("https", "/catalog.json", "update.opencmg.test") })).status, 201);
    const typo = await call("PATCH", `/api/v1/servers/${SUP}/roles/software-update-point`, { useProxyForSynk: true });
    assert.equal(typo.status, 400);
    assert.deepEqual(typo.body.error, {
      kind: "validation",
      code: "VALIDATION",
      message: typo.body.error.message,
      field: "useProxyForSynk",
      rule: "is not a known field",
      errors: [{ field: "useProxyForSynk", rule: "is not a known field", message: "Use proxy for synk: is not a known field" }],
    });
    assert.match(typo.body.error.message, /useProxyForSynk/);
    const settings = await call("PATCH", "/api/v1/clients/settings", { useCMG: true });
    assert.equal(settings.status, 400);
    assert.equal(settings.body.error.field, "useCMG");
    const nested = await call("POST", "/api/v1/cmgs", { name: "x", serverCertPem: "a", serverKeyPem: "b", deploy: { clientPort: 443 } });
    assert.equal(nested.body.error.field, "deploy.clientPort");
    const noBody = await call("POST", `/api/v1/clients/${encodeURIComponent("GUID:00000000-0000-0000-0000-000000000001")}/approve`, { approvd: true });
    assert.equal(noBody.status, 400);
    assert.equal(noBody.body.error.field, "approvd");
    const query = await call("GET", "/api/v1/status/messages?severty=error");
    assert.equal(query.status, 400);
    assert.equal(query.body.error.field, "severty");
  });

  it("every error has one shape: unknown routes and objects are 404s, a bad type names its field", async () => {
    const route = await call("GET", "/api/v1/no-such-thing");
    assert.equal(route.status, 404);
    assert.equal(route.body.error.code, "ROUTE_NOT_FOUND");
    assert.equal(route.body.error.kind, "not_found");
    const object = await call("GET", "/api/v1/cmgs/nope");
    assert.equal(object.status, 404);
    assert.deepEqual(Object.keys(object.body), ["error"]);
    assert.equal(object.body.error.code, "NOT_FOUND");
    assert.equal(object.body.error.field, "name");
    const type = await call("POST", "/api/v1/admin-tokens", { name: "x", readOnly: "yes" });
    assert.equal(type.status, 400);
    assert.equal(type.body.error.field, "readOnly");
  });
});

describe("the OpenAPI document", () => {
  it("validates (OpenAPI 3.1) and describes exactly the routes fastify registered, with bodies and responses", async () => {
    const doc = (await call("GET", "/api/v1/openapi.json", undefined, null)).body;
    await SwaggerParser.validate(structuredClone(doc));
    const app = await buildAdminApi({ site, operations: (actor) => siteOperations(site, actor) });
    await app.ready();
    const registered = registeredRoutes(app).map((r) => `${r.method} ${r.url.replace(/:([a-zA-Z]+)/g, "{$1}")}`).sort();
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    assert.deepEqual(documented, registered);
    await app.close();
    assert.ok(registered.length > 40);
    const create = doc.paths["/api/v1/cmgs"].post;
    assert.equal(create.requestBody.content["application/json"].schema.additionalProperties, false);
    assert.ok(create.requestBody.content["application/json"].schema.properties.serverPfx);
    // A named shape: the answer refers to it, components/schemas holds it.
    assert.equal(create.responses["201"].content["application/json"].schema.$ref, "#/components/schemas/Cmg");
    assert.ok(doc.components.schemas.Cmg.properties.serviceFqdn);
    assert.deepEqual(doc.components.schemas.Cmg.properties.status.enum, ["Provisioning", "Ready", "Degraded", "Error", "Stopping", "Stopped", "Starting", "Deleting"]);
    assert.ok(doc.paths["/api/v1/endpoints/export"].get.responses["200"].content["text/csv; charset=utf-8"]);
    assert.ok(doc.paths["/api/v1/status/messages"].get.parameters.some((p: { name: string }) => p.name === "cursor"));
  });
});

describe("CMGs", () => {
  it("creates a CMG from an uploaded PEM pair and from a PFX (base64, password); the key is never returned or audited", async () => {
    const root = await createCa({ commonName: "Clients Root" });
    const pem = await issueCert({ issuer: root, commonName: "cmg1.contoso.test", dnsNames: ["cmg1.contoso.test"], usage: "server" });
    const r1 = await call("POST", "/api/v1/cmgs", { name: "cmg1", serverCertPem: pem.certPem, serverKeyPem: pem.keyPem, trustedRoots: [root.certPem], instances: 2, deploy: { clientPortBase: 20443 } });
    assert.equal(r1.status, 201, r1.text);
    assert.equal(r1.body.serviceFqdn, "cmg1.contoso.test");
    assert.equal(r1.body.instanceCount, 2);
    assert.equal(r1.body.status, "Provisioning");
    assert.ok(!r1.text.includes("PRIVATE KEY"));

    const pfxCert = await issueCert({ issuer: root, commonName: "cmg2.contoso.test", dnsNames: ["cmg2.contoso.test"], usage: "server" });
    const pfx = writePfx({ certPem: pfxCert.certPem, keyPem: pfxCert.keyPem, password: "Pfx-Pass-1" });
    const wrong = await call("POST", "/api/v1/cmgs", { name: "cmg2", serverPfx: pfx.toString("base64"), pfxPassword: "nope" });
    assert.equal(wrong.status, 400);
    const noPassword = await call("POST", "/api/v1/cmgs", { name: "cmg2", serverPfx: pfx.toString("base64") });
    assert.equal(noPassword.body.error.field, "pfxPassword");
    const r2 = await call("POST", "/api/v1/cmgs", { name: "cmg2", serverPfx: pfx.toString("base64"), pfxPassword: "Pfx-Pass-1" });
    assert.equal(r2.status, 201, r2.text);
    assert.equal(r2.body.serverCertificate.thumbprint.length > 0, true);
    assert.equal(r2.body.serviceFqdn, "cmg2.contoso.test");

    const list = await call("GET", "/api/v1/cmgs");
    assert.deepEqual(list.body.map((c: { name: string }) => c.name), ["cmg1", "cmg2"]);
    assert.equal((await call("GET", "/api/v1/cmgs/CMG1")).body.name, "cmg1");
    const audit = await call("GET", "/api/v1/audit?object=cmg/");
    assert.deepEqual(audit.body.items.map((e: { action: string }) => e.action), ["cmgs.create", "cmgs.create"]);
    assert.ok(!audit.text.includes("PRIVATE KEY") && !audit.text.includes("Pfx-Pass-1"));
  });
});

describe("clients", () => {
  it("lists with filters and approves a client that registered without a certificate", async () => {
    const pending = await site.services.clients.requestRegistration({ name: "PC-002", connectionType: "internet" });
    await site.services.clients.registerWithCertificate({ name: "PC-001", thumbprint: "A".repeat(40), subject: "CN=PC-001", connectionType: "intranet" });
    assert.deepEqual((await call("GET", "/api/v1/clients?approved=false")).body.map((c: { name: string }) => c.name), ["PC-002"]);
    assert.deepEqual((await call("GET", "/api/v1/clients?connectionType=intranet")).body.map((c: { name: string }) => c.name), ["PC-001"]);
    assert.equal((await call("GET", "/api/v1/clients?connectionType=vpn")).body.error.field, "connectionType");
    const approved = await call("POST", `/api/v1/clients/${encodeURIComponent(pending.client.id)}/approve`);
    assert.equal(approved.status, 200);
    assert.equal(approved.body.approved, true);
    assert.deepEqual((await call("GET", "/api/v1/clients?approved=false")).body, []);
    const audit = (await call("GET", `/api/v1/audit?object=client/`)).body.items[0];
    assert.equal(audit.action, "clients.approve");
    assert.equal(audit.before.approved, false);
    assert.equal(audit.after.approved, true);
  });
});

describe("internet endpoints", () => {
  const get = (q: string) => call("GET", `/api/v1/endpoints/export?${q}`);
  it("exports text, json, csv, squid and pac as downloads with their content types", async () => {
    const csv = await get("format=csv&role=service-connection-point");
    assert.equal(csv.status, 200);
    assert.equal(csv.headers.get("content-type"), "text/csv; charset=utf-8");
    assert.match(csv.headers.get("content-disposition") ?? "", /attachment; filename="opencmg-endpoints.csv"/);
    assert.match(csv.text, /^id,section,address/);
    const json = await get("format=json&role=service-connection-point&cloud=public");
    assert.match(json.headers.get("content-type") ?? "", /^application\/json/);
    assert.ok(json.body.endpoints.length > 0);
    const squid = await get("format=squid&role=software-update-point");
    assert.match(squid.text, /^acl /m);
    const text = await get("role=software-update-point");
    assert.match(text.headers.get("content-type") ?? "", /^text\/plain/);
    assert.match(text.text, /^ENDPOINT/);
    const pac = await get("format=pac&proxy=proxy.contoso.com:8080&feature=cmg");
    assert.equal(pac.headers.get("content-type"), "application/x-ns-proxy-autoconfig");
    assert.match(pac.text, /FindProxyForURL/);
    assert.equal((await get("format=pac")).body.error.field, "proxy");
    assert.equal((await get("format=xml")).body.error.field, "format");
    const listed = await call("GET", "/api/v1/endpoints?role=service-connection-point&cloud=public");
    assert.deepEqual([...new Set(listed.body.endpoints.filter((e: { wildcard: boolean }) => !e.wildcard).map((e: { host: string }) => e.host))].sort(), [...SCP_HOSTS].sort());
  });

  it("starts the site's connectivity check (202, running) through the SCP's proxy and reads every endpoint's stages when it is done", async () => {
    // A site of its own: the check covers every role and CMG the site uses, and this one has only its SCP.
    const squid = await startSquid({ hosts: net.hosts() });
    const own = await openSite({ dataDir: tempDir(), egressCa: [net.ca.certPem] });
    const { adminToken } = await initSite(own, { code: "P02", name: "Check site" });
    const mapTarget = (t: CheckTarget): CheckTarget => onPort(t, t.scheme === "https" ? net.httpsPort : net.httpPort);
    const ownServer = await startSiteServer({ site: own, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, onDemandCheck: { mapTarget, ca: [net.ca.certPem], stageTimeoutMs: 5000 } });
    try {
      const c = apiClient(ownServer.url, adminToken);
      const refused = await c("POST", "/api/v1/endpoints/checks", {});
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error.field, "site");
      assert.equal((await c("POST", "/api/v1/servers", { fqdn: SCP })).status, 201);
      assert.equal((await c("PUT", `/api/v1/servers/${SCP}/proxy`, { host: squid.host, port: squid.port })).status, 200);
      assert.equal((await c("POST", `/api/v1/servers/${SCP}/roles`, { role: "service-connection-point" })).status, 201);
      const started = await c("POST", "/api/v1/endpoints/checks", {});
      assert.equal(started.status, 202, started.text);
      assert.equal(started.body.server, SCP);
      assert.equal(started.body.requestedBy, "admin");
      const id = started.body.id as number;
      const done = await until("the check ends", async () => {
        const r = (await c("GET", `/api/v1/endpoints/checks/${id}`)).body;
        return r.state !== "running" && r;
      });
      assert.equal(done.state, "done", JSON.stringify(done.error));
      const failing = done.result.report.results.filter((r: { result: string }) => r.result === "fail").map((r: { url: string; message: string }) => `${r.url}: ${r.message}`);
      assert.equal(done.result.component, "OK", JSON.stringify(failing));
      assert.equal(done.result.report.ok, true);
      assert.match(done.result.report.route, /proxy/);
      const results = done.result.report.results as { url: string; result: string; stages: { stage: string }[] }[];
      assert.ok(results.length > 0);
      assert.ok(results.filter((r) => r.result === "pass" || r.result === "fail").every((r) => r.stages.length > 0));
      assert.ok(results.some((r) => r.result === "pass" && r.stages.some((s) => s.stage === "tls")));
      assert.deepEqual((await c("GET", "/api/v1/endpoints/checks")).body.map((x: { id: number }) => x.id), [id]);
      assert.equal((await c("GET", "/api/v1/endpoints/checks/999")).status, 404);
      const components = (await c("GET", `/api/v1/status/components?server=${SCP}`)).body;
      assert.equal(components.find((x: { component: string }) => x.component === "SMS_SERVICE_CONNECTOR").status, "OK");
      assert.equal((await c("GET", "/api/v1/audit?limit=1")).body.items[0].action, "checks.start");

      // Through one server's proxy (`check --server`): its roles' endpoints, nothing recorded as status.
      assert.equal((await c("POST", "/api/v1/endpoints/checks", { servr: SCP })).body.error.field, "servr");
      assert.equal((await c("POST", "/api/v1/endpoints/checks", { server: "nope.contoso.com" })).status, 404);
      const byServer = await c("POST", "/api/v1/endpoints/checks", { server: SCP });
      assert.equal(byServer.status, 202, byServer.text);
      assert.deepEqual(byServer.body.request, { kind: "server", server: SCP });
      const second = await until("the server's check ends", async () => {
        const r = (await c("GET", `/api/v1/endpoints/checks/${byServer.body.id}`)).body;
        return r.state !== "running" && r;
      });
      assert.equal(second.state, "done", JSON.stringify(second.error));
      assert.match(second.result.route, new RegExp(`proxy 127\\.0\\.0\\.1:${squid.port}`));
      assert.equal(second.result.report.ok, true);
      assert.ok(second.result.report.results.some((r: { result: string }) => r.result === "pass"));
      assert.equal(second.result.transition, undefined);
    } finally {
      await ownServer.close();
      await own.close();
      await squid.stop();
    }
  });
});

describe("software updates", () => {
  it("synchronises, lists the updates, creates and runs an automatic deployment rule, reads its results; each run is audited", async () => {
    const sync = await call("POST", `/api/v1/servers/${SUP}/software-update-point/sync`, {});
    assert.equal(sync.status, 200, sync.text);
    assert.equal(sync.body.updates, 1);
    assert.deepEqual((await call("GET", "/api/v1/updates")).body.map((u: { id: string }) => u.id), ["KB5001"]);
    const rule = await call("POST", "/api/v1/adrs", { name: "Patch Tuesday", server: SUP, products: ["Windows 11"] });
    assert.equal(rule.status, 201, rule.text);
    const run = await call("POST", `/api/v1/adrs/${encodeURIComponent("Patch Tuesday")}/run`, {});
    assert.equal(run.status, 200, run.text);
    assert.equal(run.body.failed, 0);
    assert.equal(run.body.files[0].status, "downloaded");
    const results = await call("GET", `/api/v1/adrs/${encodeURIComponent("Patch Tuesday")}/results`);
    assert.equal(results.body[0].bytes, payload.length);
    const actions = (await call("GET", "/api/v1/audit?limit=5")).body.items.map((e: { action: string }) => e.action);
    assert.deepEqual(actions.slice(0, 3), ["adrs.run", "adrs.add", "sup.sync"]);
  });
});

describe("status messages", () => {
  it("pages newest first (limit + cursor) and filters by component, severity, message ID and time", async () => {
    const raise = (messageId: number, severity: "informational" | "warning" | "error", component: string, time: string) =>
      site.services.status.raise({ messageId, severity, component, server: "srv01.contoso.com", text: `m${messageId}`, time });
    // Yesterday (UTC): recent enough that the site server's own status message retention (30 days
    // by default) never deletes them while the test runs, as it did fixed dates once they aged.
    const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const next = new Date(Date.now()).toISOString().slice(0, 10);
    await raise(7001, "informational", "TEST_A", `${day}T10:00:00.000Z`);
    await raise(7002, "warning", "TEST_A", `${day}T11:00:00.000Z`);
    await raise(7003, "error", "TEST_B", `${day}T12:00:00.000Z`);
    await raise(7004, "error", "TEST_A", `${day}T13:00:00.000Z`);
    const ids = (r: ApiAnswer) => r.body.items.map((m: { messageId: number }) => m.messageId);
    assert.deepEqual(ids(await call("GET", "/api/v1/status/messages?component=TEST_A")), [7004, 7002, 7001]);
    assert.deepEqual(ids(await call("GET", `/api/v1/status/messages?severity=error&since=${day}T00:00:00Z&until=${next}T00:00:00Z`)), [7004, 7003]);
    assert.deepEqual(ids(await call("GET", "/api/v1/status/messages?messageId=7002")), [7002]);
    assert.deepEqual(ids(await call("GET", `/api/v1/status/messages?component=TEST_A&since=${day}T10:30:00Z&until=${day}T12:30:00Z`)), [7002]);
    const first = await call("GET", "/api/v1/status/messages?component=TEST_A&limit=2");
    assert.deepEqual(ids(first), [7004, 7002]);
    assert.equal(typeof first.body.nextCursor, "number");
    const second = await call("GET", `/api/v1/status/messages?component=TEST_A&limit=2&cursor=${first.body.nextCursor}`);
    assert.deepEqual(ids(second), [7001]);
    assert.equal(second.body.nextCursor, null);
    assert.equal((await call("GET", "/api/v1/status/messages?since=yesterday")).body.error.field, "since");
    assert.equal((await call("GET", "/api/v1/status/messages?limit=0")).body.error.field, "limit");
  });
});
