// The connection point against real gateway instances: settings pushed on change, defence in
// depth, backends, traffic and health reports, the instance list reconciled, and tunnels refused
// when either side's certificate is wrong.
import assert from "node:assert/strict";
import http2 from "node:http2";
import https from "node:https";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { startCmgHarness, until, type CmgHarness } from "../../test/helpers/cmg-harness.ts";
import { admitted } from "../../test/helpers/settings-signer.ts";
import { createCa, issueCert } from "../pki/issue.ts";
import { nullLog } from "../logs/cmtrace.ts";
import { startConnectionPoint } from "./connection-point.ts";

const quietLogs = { connector: nullLog, service: nullLog };

describe("connection point: settings, backends, reports", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 2, connectionPoints: 1, connector: { trafficIntervalMs: 100, healthIntervalMs: 100 } });
    await h.waitReady();
  });
  after(() => h.close());

  it("pushes changed settings to every instance, which apply them and confirm", async () => {
    const cp = h.connectionPoints[0]!;
    const next = { ...h.settings, revision: 5, urlMap: { ...h.settings.urlMap, [h.roles.mp]: { kind: "mp" as const, allowCmgTraffic: false } } };
    cp.update({ settings: h.sign(next) });
    await until("both instances at revision 5", () => h.instances.every((i) => i!.status().settingsRevision === 5));
    // Both instances by name: an every() over no instances at all would hold at once.
    await until("the confirmations", () => JSON.stringify(cp.health().instances.map((i) => i.revisionInForce)) === "[5,5]");
    for (const i of [0, 1]) {
      const r = await h.request(i, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client });
      assert.equal(r.status, 403);
      assert.equal(JSON.parse(r.body.toString()).error, "role_not_allowed");
    }
    assert.ok(h.logLines("cp0", "CMGService.log").some((l) => /applied settings revision 5/.test(l.text)));
    assert.ok(h.logLines("gw1", "CMGService.log").some((l) => /Settings revision 5 applied from cp1.opencmg.test/.test(l.text)));
    cp.update({ settings: h.sign({ ...next, revision: 6, urlMap: h.settings.urlMap }) });
    await until("revision 6", () => h.instances.every((i) => i!.status().settingsRevision === 6));
    assert.equal((await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client })).status, 200);
  });

  it("refuses invalid settings before pushing them (at most 2 trusted roots)", () => {
    const cp = h.connectionPoints[0]!;
    const roots = [h.pki.root.certPem, h.pki.root2.certPem, h.pki.untrustedRoot.certPem];
    assert.throws(() => cp.update({ settings: h.sign({ ...h.settings, revision: 7, trustedRoots: roots }) }), { name: "ValidationError", field: "settings.trustedRoots" });
    assert.throws(() => cp.update({ settings: h.sign({ ...h.settings, revision: 7, trustedRoots: [h.pki.client.certPem] }) }), {
      name: "ValidationError",
      rule: "must be a CA certificate",
    });
  });

  it("answers 502 no_backend for a role without an internal URL, and forwards again once it has one", async () => {
    const cp = h.connectionPoints[0]!;
    cp.update({ backends: { [h.roles.mp]: h.backend.url } });
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.sup}/x`, { cert: h.pki.client });
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body.toString()).error, "no_backend");
    assert.equal(r.headers["opencmg-error"], undefined, "tunnel-internal headers stay inside");
    assert.ok(h.logLines("cp0", "SMS_Cloud_ProxyConnector.log").some((l) => /refused: 502 no_backend/.test(l.text)));
    cp.update({ backends: { [h.roles.mp]: h.backend.url, [h.roles.sup]: `${h.backend.url}/sup` } });
    assert.equal((await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.sup}/x`, { cert: h.pki.client })).status, 200);
  });

  it("answers 502 with the error code when the backend is down", async () => {
    const cp = h.connectionPoints[0]!;
    cp.update({ backends: { [h.roles.mp]: "http://127.0.0.1:1" } });
    const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/x`, { cert: h.pki.client, h2: true });
    assert.equal(r.status, 502);
    assert.equal(JSON.parse(r.body.toString()).error, "backend_unreachable");
    assert.ok(h.logLines("gw0", "CMGHttpHandler.log").some((l) => /answered 502 backend_unreachable \(12029\)/.test(l.text)));
    assert.ok(h.logLines("cp0", "SMS_Cloud_ProxyConnector.log").some((l) => /127\.0\.0\.1:1.*\(12029\)/.test(l.text)));
    cp.update({ backends: { [h.roles.mp]: h.backend.url, [h.roles.sup]: `${h.backend.url}/sup` } });
  });

  it("forwards to an HTTPS backend whose certificate the site CA issued", async () => {
    const cert = await issueCert({ issuer: h.pki.siteCa, commonName: "mp1.opencmg.test", ipAddresses: ["127.0.0.1"], usage: "server" });
    const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      req.resume();
      res.end(JSON.stringify({ tls: true, url: req.url, thumbprint: req.headers["x-opencmg-client-thumbprint"] }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const cp = h.connectionPoints[0]!;
    try {
      cp.update({ backends: { [h.roles.mp]: `https://127.0.0.1:${(server.address() as AddressInfo).port}/base/`, [h.roles.sup]: `${h.backend.url}/sup` } });
      const r = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/SMS_MP/.sms_aut?MPLIST`, { cert: h.pki.client, h2: true });
      assert.equal(r.status, 200);
      assert.deepEqual(JSON.parse(r.body.toString()), { tls: true, url: "/base/SMS_MP/.sms_aut?MPLIST", thumbprint: h.pki.client.thumbprint });
    } finally {
      cp.update({ backends: { [h.roles.mp]: h.backend.url, [h.roles.sup]: `${h.backend.url}/sup` } });
      server.close();
      server.closeAllConnections();
    }
  });

  it("reports traffic (requests, bytes, per role, per instance and role kind both ways) and health through its callbacks", async () => {
    const already = h.traffic[0]!.length;
    for (let k = 0; k < 3; k++) await h.request(1, `/CCM_Proxy_MutualAuth/${h.roles.sup}/bytes/100000`, { cert: h.pki.client });
    const upload = await h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.mp}/upload`, { cert: h.pki.client, method: "POST", body: Buffer.alloc(50_000, 1) });
    assert.equal(upload.status, 200);
    const reports = () => h.traffic[0]!.slice(already);
    const sum = (f: (t: (typeof h.traffic)[0][0]) => number) => reports().reduce((n, t) => n + f(t), 0);
    const gw = (i: number) => `127.0.0.1:${h.ports[i]!.tunnel}`;
    const kind = (i: number, k: string, f: "bytesToClients" | "bytesFromClients" | "requests") => sum((t) => t.byInstance[gw(i)]?.byKind[k]?.[f] ?? 0);
    await until("traffic reports with the downloads and the upload", () => sum((t) => t.byRole[h.roles.sup]?.requests ?? 0) >= 3 && sum((t) => t.bytesToGateway) > 300_000 && kind(0, "mp", "bytesFromClients") >= 50_000);
    assert.ok(sum((t) => t.requests) >= 4);
    // The downloads went through instance 1 as software update point traffic, the upload through
    // instance 0 to the management point (earlier tests' small requests may share these reports).
    assert.ok(kind(1, "sup", "requests") >= 3);
    assert.ok(kind(1, "sup", "bytesToClients") >= 300_000, "the bodies of the three answers");
    assert.ok(kind(0, "sup", "bytesToClients") < 300_000, "not counted on the other instance");
    assert.ok(kind(0, "mp", "requests") >= 1);
    assert.ok(kind(0, "mp", "bytesFromClients") >= 50_000, "the upload's body");
    assert.ok(kind(1, "mp", "bytesFromClients") < 50_000, "not counted on the other instance");
    // The tunnels' wire bytes are at least the bodies they carried, TLS and framing on top.
    assert.ok(sum((t) => t.byInstance[gw(1)]?.bytesToGateway ?? 0) > 300_000);
    assert.ok(sum((t) => t.byInstance[gw(0)]?.bytesFromGateway ?? 0) > 50_000);
    const last = h.health[0]!.at(-1)!;
    assert.equal(last.status, "ok");
    assert.equal(last.instances.length, 2);
    assert.ok(last.instances.every((i) => i.connected === 2 && i.instance?.startsWith("cmg1-")));
  });

  it("stops the backend's response when the device goes away mid-download, and counts it as cancelled", async () => {
    const cp = h.connectionPoints[0]!;
    const cancelled = async (): Promise<number> => (await cp.metrics.requests.get()).values.find((v) => v.labels.result === "cancelled")?.value ?? 0;
    const before = { closed: h.backend.closedEarly, cancelled: await cancelled() };
    const session = http2.connect(`https://127.0.0.1:${h.ports[0]!.client}`, { ca: h.pki.root.certPem, cert: h.pki.client.certPem, key: h.pki.client.keyPem, servername: "cmg.opencmg.test" });
    session.on("error", () => {});
    // 1 GiB: far more than every window and buffer on the way, so the backend is still writing.
    const stream = session.request({ ":path": `/CCM_Proxy_MutualAuth/${h.roles.mp}/bytes/${1024 ** 3}` });
    stream.on("error", () => {});
    await new Promise<void>((resolve) => stream.once("data", () => resolve()));
    session.destroy();
    await until("the backend to see its response cut off", () => h.backend.closedEarly > before.closed);
    await until("the connection point to count it cancelled", async () => (await cancelled()) > before.cancelled);
    assert.equal(await cancelled(), before.cancelled + 1);
  });

  it("defends in depth: refuses a role the gateway let through but its own settings do not allow", async () => {
    // A second connection point with newer settings that open the closed role: the instances take
    // them (newest revision wins), but cp1, still at the old revision, refuses that role itself.
    // cp2 is not in the instances' start-up trust: the site's newer settings it brings admit it.
    h.tunnelCerts[1] = await issueCert({ issuer: h.pki.siteCa, commonName: "opencmg-cp:cp2.opencmg.test", usage: "client" });
    const newer = { ...h.settings, revision: 100, connectionPoints: [...h.settings.connectionPoints, admitted(h.tunnelCerts[1])], urlMap: { ...h.settings.urlMap, [h.roles.closed]: { kind: "mp" as const, allowCmgTraffic: true } } };
    const cp2 = await h.startConnectionPoint(1, { settings: h.sign(newer) });
    h.connectionPoints[0]!.update({ settings: h.sign({ ...h.settings, revision: 6 }) });
    await cp2.waitConnected({ perInstance: 2 });
    await until("revision 100 in force", () => h.instances.every((i) => i!.status().settingsRevision === 100));
    const results = await Promise.all(
      Array.from({ length: 16 }, () => h.request(0, `/CCM_Proxy_MutualAuth/${h.roles.closed}/x`, { cert: h.pki.client, h2: true })),
    );
    const refused = results.filter((r) => r.status === 403);
    assert.ok(refused.length > 0, "some requests went through cp1");
    assert.ok(refused.every((r) => JSON.parse(r.body.toString()).error === "role_not_allowed"));
    assert.ok(h.logLines("cp0", "SMS_Cloud_ProxyConnector.log").some((l) => /refused: 403 role_not_allowed/.test(l.text)));
    // cp1 learns what the instances enforce, and says its own settings are behind.
    await until("cp1 to learn revision 100", () => JSON.stringify(h.connectionPoints[0]!.health().instances.map((i) => i.revisionInForce)) === "[100,100]");
    assert.equal(h.connectionPoints[0]!.health().status, "warning");
    assert.match(h.connectionPoints[0]!.health().message, /enforces settings revision 100, this connection point has 6/);
    await h.stopConnectionPoint(1);
  });

  it("reconciles the instance list: tunnels to a removed instance close, a new list is dialled", async () => {
    const cp = h.connectionPoints[0]!;
    cp.update({ instances: [{ host: "127.0.0.1", port: h.ports[0]!.tunnel }] });
    await until("instance 1 without tunnels from cp1", () => !("cp1.opencmg.test" in h.instances[1]!.status().connectionPoints));
    assert.equal(cp.health().instances.length, 1);
    cp.update({ instances: h.ports.map((p) => ({ host: "127.0.0.1", port: p.tunnel })) });
    await cp.waitConnected({ perInstance: 2 });
    await h.waitReady();
  });
});

describe("connection point: tunnel authentication", () => {
  let h: CmgHarness;
  before(async () => {
    h = await startCmgHarness({ instances: 1, connectionPoints: 0 });
  });
  after(() => h.close());

  it("is refused by the instance with a tunnel certificate not issued by the site CA", async () => {
    const otherCa = await createCa({ commonName: "Some Other CA" });
    const rogue = await issueCert({ issuer: otherCa, commonName: "rogue", usage: "client" });
    const cp = await startConnectionPoint({
      name: "rogue",
      instances: [{ host: "127.0.0.1", port: h.ports[0]!.tunnel }],
      tls: { certPem: rogue.certPem, keyPem: rogue.keyPem, siteCaPem: h.pki.siteCa.certPem },
      settings: h.sign(),
      backends: {},
      log: quietLogs,
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
    });
    try {
      await until("a TLS failure", () => cp.health().instances[0]!.lastError !== null);
      assert.equal(cp.health().status, "critical");
      assert.equal(cp.health().instances[0]!.lastError!.code, 12175);
      const text = await h.instances[0]!.metrics.registry.getSingleMetricAsString("opencmg_gateway_tls_handshake_failures_total");
      assert.match(text, /listener="tunnel"[^}]*\} [1-9]/);
      assert.equal(h.instances[0]!.status().tunnels.length, 0);
    } finally {
      await cp.stop();
    }
  });

  it("refuses an instance whose tunnel certificate the site CA did not issue, and a listener that does not speak the tunnel protocol", async () => {
    const otherCa = await createCa({ commonName: "Some Other CA" });
    const fake = await issueCert({ issuer: otherCa, commonName: "fake", ipAddresses: ["127.0.0.1"], usage: "server" });
    const siteIssued = await issueCert({ issuer: h.pki.siteCa, commonName: "plain", ipAddresses: ["127.0.0.1"], usage: "server" });
    const servers = [
      tls.createServer({ cert: fake.certPem, key: fake.keyPem, ALPNProtocols: ["opencmg/1"] }),
      // Site-issued certificate, but an ordinary HTTP/2 server (ALPN h2): not a tunnel listener.
      http2.createSecureServer({ cert: siteIssued.certPem, key: siteIssued.keyPem }),
    ];
    for (const s of servers) {
      s.on("tlsClientError", () => {});
      await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    }
    const cp = await startConnectionPoint({
      name: "cp",
      instances: servers.map((s) => ({ host: "127.0.0.1", port: (s.address() as AddressInfo).port })),
      tls: { certPem: h.tunnelCerts[0]?.certPem ?? h.pki.tunnelClient.certPem, keyPem: h.tunnelCerts[0]?.keyPem ?? h.pki.tunnelClient.keyPem, siteCaPem: h.pki.siteCa.certPem },
      settings: h.sign(),
      backends: {},
      log: quietLogs,
      reconnect: { minDelayMs: 20, maxDelayMs: 100 },
    });
    try {
      await until("both refused", () => cp.health().instances.filter((i) => i.lastError !== null).length === 2);
      assert.deepEqual(
        cp.health().instances.map((i) => ({ port: i.port, connected: i.connected, code: i.lastError?.code })),
        servers.map((s) => ({ port: (s.address() as AddressInfo).port, connected: 0, code: 12175 })),
        JSON.stringify(cp.health().instances.map((i) => i.lastError?.message)),
      );
    } finally {
      await cp.stop();
      for (const s of servers) s.close();
    }
  });
});
