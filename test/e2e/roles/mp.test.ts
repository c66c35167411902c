/**
 * The management point with real parts: HTTPS on loopback with certificates from the test PKI,
 * the site on SQLite and PostgreSQL, a stand-in CMG relaying with a connection point certificate.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, before, beforeEach, it } from "node:test";
import { Agent, request } from "undici";
import { forEachDatabase } from "../../helpers/databases.ts";
import { Header } from "../../../src/wire/tunnel/protocol.ts";
import { parseLines } from "../../../src/logs/cmtrace.ts";
import type { IssuedCert } from "../../../src/pki/issue.ts";
import { ClientsService } from "../../../src/site/services/clients.ts";
import { cmgInternetMps, internetMpUrl } from "../../../src/roles/mp/internet-mps.ts";
import { MP_PATHS, type LocationAnswer, type PolicyAnswer, type RegisterAnswer, type StatusUploadAnswer } from "../../../src/wire/mp.ts";
import { startManagementPoint, type ManagementPoint } from "../../../src/roles/mp/server.ts";
import { makeMpPki, MP_FQDN, openMpSite, startStandinCmg, startTestMp, type MpPki, type MpSite } from "../../helpers/mp-testkit.ts";
import { managementPointDeps } from "../../../src/app/role-deps.ts";

interface CallOptions {
  cert?: IssuedCert | undefined;
  body?: unknown;
  raw?: string | Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  method?: "GET" | "POST" | "PUT";
  token?: string;
}

let pki: MpPki;
before(async () => {
  pki = await makeMpPki();
});

async function call<T = any>(base: string, path: string, o: CallOptions = {}): Promise<{ status: number; json: T }> {
  const agent = new Agent({ connect: { ca: [pki.caPem], ...(o.cert ? { cert: o.cert.certPem, key: o.cert.keyPem } : {}) } });
  try {
    const body = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
    const headers: Record<string, string> = { ...(body !== undefined ? { "content-type": o.contentType ?? "application/json" } : {}), ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    const r = await request(base + path, { dispatcher: agent, method: o.method ?? (body === undefined ? "GET" : "POST"), headers, body });
    const text = await r.body.text();
    return { status: r.statusCode, json: (text ? JSON.parse(text) : undefined) as T };
  } finally {
    await agent.close();
  }
}

const status = (id: string, extra: Record<string, unknown> = {}) => ({ type: "status", id, messageId: 10002, severity: "informational", component: "CCMExec", text: `message ${id}`, time: new Date().toISOString(), ...extra });

function logText(s: MpSite, file: string): string {
  try {
    return parseLines(readFileSync(join(s.site.paths.logs, file), "utf8"))
      .map((l) => l.text)
      .join("\n");
  } catch {
    return "";
  }
}

forEachDatabase("management point", (db) => {
  let s: MpSite;
  let mp: ManagementPoint;
  let clients: ClientsService;
  const internet = { list: [] as { url: string; cmg: string }[] };

  beforeEach(async () => {
    s = await openMpSite(db);
    internet.list = [];
    mp = await startTestMp(s, pki, { internetMps: async () => internet.list, maxBodyBytes: 64 * 1024 });
    clients = new ClientsService(s.site.ctx);
  });
  afterEach(async () => {
    await mp.close();
    await s.site.close();
  });

  it("registers a client by its certificate and serves it location, policy and status upload", async () => {
    internet.list = [{ url: internetMpUrl("https://cmg.contoso.test", mp.roleId), cmg: "cmg1" }];
    assert.equal((await call(mp.url, MP_PATHS.ping)).status, 200);
    const reg = await call<RegisterAnswer>(mp.url, MP_PATHS.register, { cert: pki.client, body: { name: "PC-001", thumbprint: pki.client.thumbprint } });
    assert.equal(reg.status, 200, JSON.stringify(reg.json));
    assert.match(reg.json.clientId, /^GUID:[0-9A-F-]{36}$/);
    assert.equal(reg.json.approved, true);
    assert.equal(reg.json.token, undefined);
    // The same certificate registers as the same client.
    const again = await call<RegisterAnswer>(mp.url, MP_PATHS.register, { cert: pki.client, body: { name: "PC-001" } });
    assert.equal(again.json.clientId, reg.json.clientId);

    const loc = await call<LocationAnswer>(mp.url, MP_PATHS.location, { cert: pki.client });
    assert.equal(loc.status, 200);
    assert.deepEqual(loc.json, {
      siteCode: "P01",
      locationIntervalMinutes: 1440,
      mps: [
        { type: "Intranet", url: `https://127.0.0.1:${s.port}`, fqdn: MP_FQDN },
        { type: "Internet", url: `https://cmg.contoso.test/CCM_Proxy_MutualAuth/${mp.roleId}`, cmg: "cmg1" },
      ],
    });
    const pol = await call<PolicyAnswer>(mp.url, MP_PATHS.policy, { cert: pki.client });
    assert.deepEqual(pol.json, { clientId: reg.json.clientId, settings: { locationIntervalMinutes: 1440, policyIntervalMinutes: 60, useCmg: true, alwaysOnInternet: false, usePkiClientCertificate: true, clientsCheckCrl: true } });

    const up = await call<StatusUploadAnswer>(mp.url, MP_PATHS.status, { cert: pki.client, body: { messages: [status("m-1"), status("m-2", { severity: "warning" })] } });
    assert.deepEqual(up.json, { acknowledged: ["m-1", "m-2"], duplicates: 0 });
    const msgs = await s.site.services.status.messages({ clientId: reg.json.clientId });
    assert.deepEqual(
      msgs.map((m) => [m.messageId, m.severity, m.server, m.text, m.properties.uploadId]),
      [
        [10002, "informational", "PC-001", "message m-1", "m-1"],
        [10002, "warning", "PC-001", "message m-2", "m-2"],
      ],
    );
    const [c] = await clients.list();
    assert.equal(c!.connectionType, "intranet");
    assert.equal(c!.thumbprint, pki.client.thumbprint);
    assert.ok(c!.lastContactAt);
    assert.match(logText(s, "MP_RegistrationManager.log"), /Registered client GUID:.* \(PC-001\) with certificate/);
    assert.match(logText(s, "MP_Location.log"), /Location request from GUID:.*1 intranet and 1 internet/);
    assert.match(logText(s, "MP_Policy.log"), /Policy request from GUID:/);
    assert.match(logText(s, "MP_Status.log"), /Received 2 status message\(s\).*2 new, 0 already held/);
    assert.match(logText(s, "mpcontrol.log"), /Management point mp01.contoso.test \(role \d+, site P01\) serving https:\/\/127.0.0.1:/);
  });

  it("status upload is idempotent by message ID: a retried batch is stored once", async () => {
    const reg = await call<RegisterAnswer>(mp.url, MP_PATHS.register, { cert: pki.client, body: { name: "PC-001" } });
    const batch = { messages: [status("a"), status("b"), status("c")] };
    assert.deepEqual((await call(mp.url, MP_PATHS.status, { cert: pki.client, body: batch })).json, { acknowledged: ["a", "b", "c"], duplicates: 0 });
    const retry = { messages: [status("b"), status("c"), status("d")] };
    assert.deepEqual((await call(mp.url, MP_PATHS.status, { cert: pki.client, body: retry })).json, { acknowledged: ["b", "c", "d"], duplicates: 2 });
    const msgs = await s.site.services.status.messages({ clientId: reg.json.clientId });
    assert.deepEqual(msgs.map((m) => m.properties.uploadId), ["a", "b", "c", "d"]);
    // Another client may use the same message IDs: they are its own.
    const reg2 = await call<RegisterAnswer>(mp.url, MP_PATHS.register, { cert: pki.client2, body: { name: "PC-002" } });
    assert.deepEqual((await call(mp.url, MP_PATHS.status, { cert: pki.client2, body: batch })).json.duplicates, 0);
    assert.equal((await s.site.services.status.messages({ clientId: reg2.json.clientId })).length, 3);
  });

  it("a registration request without certificate waits for the site's approval", async () => {
    const reg = await call<RegisterAnswer>(mp.url, MP_PATHS.register, { body: { name: "PC-NOCERT" } });
    assert.equal(reg.status, 200);
    assert.equal(reg.json.approved, false);
    assert.ok(reg.json.token);
    const token = reg.json.token!;
    // Location works while pending (the client learns its MPs); policy and uploads do not.
    assert.equal((await call(mp.url, MP_PATHS.location, { token })).status, 200);
    const pol = await call(mp.url, MP_PATHS.policy, { token });
    assert.equal(pol.status, 403);
    assert.equal(pol.json.error, "awaiting_approval");
    assert.match(pol.json.message, /opencmg site clients approve GUID:/);
    const up = await call(mp.url, MP_PATHS.status, { token, body: { messages: [status("x")] } });
    assert.equal(up.json.error, "awaiting_approval");
    assert.equal((await s.site.services.status.messages({ clientId: reg.json.clientId })).length, 0);

    await clients.approve(reg.json.clientId.toLowerCase());
    assert.equal((await call(mp.url, MP_PATHS.policy, { token })).status, 200);
    assert.equal((await call(mp.url, MP_PATHS.status, { token, body: { messages: [status("x")] } })).status, 200);
    // An unknown token, or nothing at all, is not a client.
    assert.equal((await call(mp.url, MP_PATHS.policy, { token: "A".repeat(43) })).json.error, "client_identity_required");
    assert.equal((await call(mp.url, MP_PATHS.policy)).json.error, "client_identity_required");
  });

  it("a flood of registrations without a certificate is refused with 429 and Retry-After; certificate registrations go on", async () => {
    await mp.close();
    mp = await startTestMp(s, pki, { internetMps: async () => internet.list, registrationLimits: { perSourceBurst: 3, perSourcePerMinute: 1, maxPending: 1000 } });
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await call(mp.url, MP_PATHS.register, { body: { name: `FLOOD-${i}` } }));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 429, 429, 429, 429, 429]);
    assert.equal(answers[3]!.json.error, "too_many_registrations");
    assert.equal((await clients.list()).length, 3, "refused requests add no client");
    assert.equal((await call(mp.url, MP_PATHS.register, { cert: pki.client, body: { name: "PC-CERT" } })).status, 200);
    assert.match(logText(s, "MP_RegistrationManager.log"), /429 too_many_registrations: too many registrations without a certificate from 127\.0\.0\.1/);
  });

  it("caps the registrations that await approval, and a refusal never echoes a huge value", async () => {
    await mp.close();
    mp = await startTestMp(s, pki, { internetMps: async () => internet.list, registrationLimits: { maxPending: 2 } });
    assert.equal((await call(mp.url, MP_PATHS.register, { body: { name: "P1" } })).status, 200);
    assert.equal((await call(mp.url, MP_PATHS.register, { body: { name: "P2" } })).status, 200);
    const third = await call(mp.url, MP_PATHS.register, { body: { name: "P3" } });
    assert.equal(third.status, 429);
    assert.match(third.json.message, /await an administrator's approval/);
    const huge = "A".repeat(1024 * 1024 - 100);
    const bad = await call(mp.url, MP_PATHS.register, { cert: pki.client, body: { name: huge } });
    assert.equal(bad.status, 400);
    assert.ok(JSON.stringify(bad.json).length < 2048, `answer of ${JSON.stringify(bad.json).length} characters`);
    assert.ok(logText(s, "MP_RegistrationManager.log").length < 64 * 1024);
  });

  it("trusts the client identity relayed by a connection point, and records the client as internet", async () => {
    const cmg = await startStandinCmg({ target: () => mp.url, pki });
    try {
      const base = cmg.mpUrl(mp.roleId);
      const reg = await call<RegisterAnswer>(base, MP_PATHS.register, { cert: pki.client, body: { name: "PC-001", thumbprint: pki.client.thumbprint } });
      assert.equal(reg.status, 200, JSON.stringify(reg.json));
      assert.equal(reg.json.connectionType, "internet");
      // A client cannot smuggle an identity through the gateway: the relay drops its headers.
      const pol = await call(base, MP_PATHS.policy, { cert: pki.client2, headers: { [Header.clientThumbprint]: pki.client.thumbprint } });
      assert.equal(pol.json.error, "not_registered");
      const up = await call<StatusUploadAnswer>(base, MP_PATHS.status, { cert: pki.client, body: { messages: [status("via-cmg")] } });
      assert.equal(up.status, 200);
      const c = await clients.get(reg.json.clientId);
      assert.equal(c.connectionType, "internet");
      assert.match(logText(s, "MP_RegistrationManager.log"), /internet via connection point opencmg-cp:cp01.contoso.test/);
    } finally {
      await cmg.stop();
    }
  });

  it("refuses forged identity headers from anyone but a connection point, logs it, changes nothing", async () => {
    const reg = await call<RegisterAnswer>(mp.url, MP_PATHS.register, { cert: pki.client, body: { name: "PC-001" } });
    const before = { clients: (await clients.list()).length, messages: (await s.site.services.status.messages()).length, contact: (await clients.get(reg.json.clientId)).lastContactAt };
    const forged = { [Header.clientAuth]: "mtls", [Header.clientThumbprint]: pki.client.thumbprint, [Header.clientSubject]: "CN=PC-001", [Header.clientSans]: "" };
    const attempts: [string, IssuedCert | undefined][] = [
      ["no certificate", undefined],
      ["a client certificate", pki.client2],
      ["a site CA certificate not named as a connection point", pki.tunnelClient],
      ["a connection point name from another CA", pki.fakeConnectionPoint],
    ];
    for (const [what, cert] of attempts) {
      for (const [path, body] of [
        [MP_PATHS.status, { messages: [status("forged")] }],
        [MP_PATHS.register, { name: "EVIL" }],
        [MP_PATHS.policy, undefined],
      ] as const) {
        const r = await call(mp.url, path, { cert, headers: forged, body });
        assert.equal(r.status, 403, `${what} ${path}`);
        assert.equal(r.json.error, "forged_identity", `${what} ${path}`);
      }
    }
    // One identity header alone is enough to be refused.
    assert.equal((await call(mp.url, MP_PATHS.policy, { cert: pki.client, headers: { [Header.clientThumbprint]: pki.client2.thumbprint } })).json.error, "forged_identity");
    assert.equal((await clients.list()).length, before.clients);
    assert.equal((await s.site.services.status.messages()).length, before.messages);
    assert.equal((await clients.get(reg.json.clientId)).lastContactAt, before.contact);
    assert.match(logText(s, "MP_Status.log"), /403 forged_identity: client identity headers are accepted only from a CMG connection point/);
    assert.match(logText(s, "MP_RegistrationManager.log"), /403 forged_identity/);
    // A connection point relaying without an identity is refused too.
    const bare = await call(mp.url, MP_PATHS.policy, { cert: pki.connectionPoint });
    assert.equal(bare.json.error, "client_identity_required");
    // ...and the MP still serves everyone else.
    assert.equal((await call(mp.url, MP_PATHS.policy, { cert: pki.client })).status, 200);
  });

  it("bad input gets a 4xx with a clear reason, is logged, changes nothing, and the MP keeps serving", async () => {
    const reg = await call<RegisterAnswer>(mp.url, MP_PATHS.register, { cert: pki.client, body: { name: "PC-001" } });
    const countMessages = async () => (await s.site.services.status.messages()).length;
    const before = { clients: (await clients.list()).length, messages: await countMessages() };
    const cases: [string, CallOptions, string, number, string, RegExp][] = [
      ["malformed JSON", { cert: pki.client, raw: '{"messages": [' }, MP_PATHS.status, 400, "malformed_json", /not valid JSON/],
      ["unknown message type", { cert: pki.client, body: { messages: [status("ok-1"), { ...status("inv"), type: "inventory" }] } }, MP_PATHS.status, 400, "unknown_message_type", /messages.1.type: unknown message type "inventory"/],
      ["invalid message", { cert: pki.client, body: { messages: [status("ok-2"), status("bad", { severity: "fatal" })] } }, MP_PATHS.status, 400, "invalid_request", /messages.1.severity: must be informational, warning or error/],
      ["empty batch", { cert: pki.client, body: { messages: [] } }, MP_PATHS.status, 400, "invalid_request", /messages: must hold at least one message/],
      ["oversized body", { cert: pki.client, raw: JSON.stringify({ messages: [status("big", { text: "x".repeat(8000) })], pad: "y".repeat(200_000) }) }, MP_PATHS.status, 413, "body_too_large", /over the 65536-byte limit/],
      ["not JSON", { cert: pki.client, raw: "messages=1", contentType: "application/x-www-form-urlencoded" }, MP_PATHS.status, 415, "unsupported_media_type", /must be application\/json/],
      ["registration for a certificate it did not see", { cert: pki.client2, body: { name: "PC-002", thumbprint: pki.client.thumbprint } }, MP_PATHS.register, 400, "certificate_not_seen", /registration is for certificate .* but this connection presented/],
      ["registration naming a certificate, without one", { body: { name: "PC-003", thumbprint: pki.client.thumbprint } }, MP_PATHS.register, 400, "certificate_not_seen", /presented no client certificate/],
      ["bad computer name", { cert: pki.client2, body: { name: "bad name!" } }, MP_PATHS.register, 400, "invalid_request", /name: must be a computer name/],
      ["untrusted client certificate", { cert: pki.untrustedClient, body: { name: "PC-UNTRUSTED" } }, MP_PATHS.register, 403, "untrusted_certificate", /not trusted: untrusted_chain/],
      ["expired client certificate", { cert: pki.expiredClient, body: { name: "PC-EXPIRED" } }, MP_PATHS.register, 403, "untrusted_certificate", /not trusted: expired/],
      ["unregistered certificate", { cert: pki.client2 }, MP_PATHS.policy, 403, "not_registered", /register first/],
      ["unknown endpoint", { cert: pki.client }, "/SMS_MP/v1/nothing", 404, "unknown_endpoint", /not a management point endpoint/],
      ["wrong method", { cert: pki.client, method: "PUT", body: {} }, MP_PATHS.policy, 405, "method_not_allowed", /takes GET/],
    ];
    for (const [what, o, path, code, reason, message] of cases) {
      const r = await call(mp.url, path, o);
      assert.equal(r.status, code, `${what}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error, reason, what);
      assert.match(r.json.message, message, what);
      // The MP keeps serving the good client between bad requests.
      assert.equal((await call(mp.url, MP_PATHS.ping)).status, 200, `after ${what}`);
    }
    assert.equal((await clients.list()).length, before.clients);
    assert.equal(await countMessages(), before.messages);
    const statusLog = logText(s, "MP_Status.log");
    for (const reason of ["malformed_json", "unknown_message_type", "body_too_large", "unsupported_media_type"]) assert.match(statusLog, new RegExp(`Refused POST /SMS_MP/v1/status from 127.0.0.1:\\d+ .*: \\d{3} ${reason}`));
    const regLog = logText(s, "MP_RegistrationManager.log");
    for (const reason of ["certificate_not_seen", "untrusted_certificate"]) assert.match(regLog, new RegExp(reason));
    assert.match(logText(s, "mpcontrol.log"), /404 unknown_endpoint/);
    const up = await call(mp.url, MP_PATHS.status, { cert: pki.client, body: { messages: [status("fine")] } });
    assert.equal(up.status, 200);
    assert.equal((await s.site.services.status.messages({ clientId: reg.json.clientId })).length, 1);
  });

  it("refuses to start without its role, or with client trust that cannot end a chain", async () => {
    const base = { deps: managementPointDeps(s.site), listen: { host: "127.0.0.1", port: 0 }, tls: { certPem: pki.mpServer.certPem, keyPem: pki.mpServer.keyPem, caPem: pki.caPem } };
    await assert.rejects(startManagementPoint({ ...base, serverFqdn: "nowhere.contoso.test" }), /server: site system server nowhere.contoso.test does not exist/);
    await s.site.services.servers.add({ fqdn: "plain.contoso.test" });
    await assert.rejects(startManagementPoint({ ...base, serverFqdn: "plain.contoso.test" }), /the management-point role on plain.contoso.test \(opencmg role add plain.contoso.test management-point\)/);
    await assert.rejects(startManagementPoint({ ...base, serverFqdn: MP_FQDN, trustedClientRoots: [pki.client.certPem] }), /trustedClientRoots: .* is not a CA certificate/);
    await assert.rejects(startManagementPoint({ ...base, serverFqdn: MP_FQDN, trustedClientRoots: [pki.intermediate.certPem] }), /trustedClientRoots: must hold at least one root CA/);
  });

  it("clients whose settings turn CMG use off get no internet management point", async () => {
    internet.list = [{ url: internetMpUrl("https://cmg.contoso.test", mp.roleId), cmg: "cmg1" }];
    await call(mp.url, MP_PATHS.register, { cert: pki.client, body: { name: "PC-001" } });
    assert.equal((await call<LocationAnswer>(mp.url, MP_PATHS.location, { cert: pki.client })).json.mps.length, 2);
    await clients.setSettings({ useCmg: false, locationIntervalMinutes: 60 });
    const loc = await call<LocationAnswer>(mp.url, MP_PATHS.location, { cert: pki.client });
    assert.deepEqual(loc.json.mps.map((m) => m.type), ["Intranet"]);
    assert.equal(loc.json.locationIntervalMinutes, 60);
    assert.equal((await call<PolicyAnswer>(mp.url, MP_PATHS.policy, { cert: pki.client })).json.settings.useCmg, false);
  });
});

it("cmgInternetMps lists each Ready CMG with every MP that allows CMG traffic", () => {
  const roles = [
    { id: 7, kind: "management-point", serverFqdn: "mp1", settings: { allowCmgTraffic: true } },
    { id: 8, kind: "management-point", serverFqdn: "mp2", settings: { allowCmgTraffic: false } },
    { id: 9, kind: "software-update-point", serverFqdn: "sup", settings: { allowCmgTraffic: true, useProxyForSync: false, useProxyForAdr: false } },
  ] as const;
  const cmgs = [
    { name: "cmg1", status: "Ready", instances: [{ clientUrl: "https://cmg1.contoso.com" }, { clientUrl: "https://cmg1.contoso.com" }] },
    { name: "cmg2", status: "Provisioning", instances: [{ clientUrl: "https://cmg2.contoso.com" }] },
  ];
  assert.deepEqual(cmgInternetMps(cmgs, roles as any), [{ url: "https://cmg1.contoso.com/CCM_Proxy_MutualAuth/7", cmg: "cmg1" }]);
});

