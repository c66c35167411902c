/**
 * The CMG as the site runs it: `cmg create` settings, the instances' start-up bundle, the
 * connection point role reading the site (URL map, trusted roots, backends), a device with a
 * client certificate reaching a management point, and the CMG's status turning Ready.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, it } from "node:test";
import { Agent, request } from "undici";
import { gatewayLogs, startGatewayInstance, type GatewayInstance } from "../../../src/gateway/instance.ts";
import { loadStartupFile } from "../../../src/gateway/startup-file.ts";
import { ValidationError } from "../../../src/errors.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { tempDir } from "../../helpers/databases.ts";
import { writeCmgBundle } from "../../../src/cmg/bundle.ts";
import { runConnectionPointRole, type RunningConnectionPoint } from "../../../src/roles/cmg-connection-point/role.ts";
import { connectionPointRoleDeps } from "../../../src/app/role-deps.ts";

let site: OpenedSite;
let pki: TestPki;
let backend: Server;
let backendPort: number;
let clientBase: number;
const seen: { url: string; headers: Record<string, unknown> }[] = [];
const instances: GatewayInstance[] = [];
let cp: RunningConnectionPoint | undefined;

before(async () => {
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  site = await openSite({ dataDir: tempDir() });
  await initSite(site, { code: "P01", name: "E2E" });
  backend = createServer((req, res) => {
    seen.push({ url: req.url ?? "", headers: req.headers });
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ path: req.url, thumbprint: req.headers["x-opencmg-client-thumbprint"] ?? null }));
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  backendPort = (backend.address() as { port: number }).port;
});

after(async () => {
  await cp?.stop();
  for (const i of instances) await i.stop({ graceMs: 100 });
  await new Promise((r) => backend.close(r));
  await site.close();
});

it("cmg create refuses bad settings with the field named", async () => {
  const base = { name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem };
  const refusals: [Record<string, unknown>, string][] = [
    [{ instances: 17 }, "instances"],
    [{ instances: 0 }, "instances"],
    [{ trustedRoots: [pki.root.certPem, pki.root2.certPem, pki.untrustedRoot.certPem] }, "trustedRoots"],
    [{ trustedRoots: [pki.client.certPem] }, "trustedRoots[0]"],
    [{ intermediates: Array(5).fill(pki.intermediate.certPem) }, "intermediates"],
    [{ serverKeyPem: pki.client.keyPem }, "serverKey"],
    [{ serverCertPem: pki.expiredClient.certPem, serverKeyPem: pki.expiredClient.keyPem }, "serverCert"],
    [{ cloud: "mars" }, "cloud"],
    [{ provider: "azure" }, "provider"],
  ];
  for (const [patch, field] of refusals) {
    await assert.rejects(site.services.cmgs.create({ ...base, ...patch } as never), (e: unknown) => e instanceof ValidationError && e.field === field, field);
  }
  assert.deepEqual(await site.services.cmgs.list(), [], "nothing half-written");
});

it("a device reaches the management point through the site's CMG; the CMG turns Ready", async () => {
  const { servers, roles, cmgs } = site.services;
  clientBase = await freePortRange(2);
  const tunnelBase = await freePortRange(2);
  const created = await cmgs.create({
    name: "cmg1",
    serverCertPem: pki.server.certPem,
    serverKeyPem: pki.server.keyPem,
    instances: 2,
    trustedRoots: [pki.root.certPem],
    intermediates: [pki.intermediate.certPem],
    crlCheck: false,
    deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: clientBase, tunnelPortBase: tunnelBase, metricsPortBase: 0 },
  });
  assert.equal(created.status, "Provisioning");
  assert.equal(created.serviceFqdn, "cmg.contoso.test");
  assert.equal(created.instances.length, 2);
  assert.equal(created.instances[1]!.clientUrl, `https://127.0.0.1:${clientBase + 1}`);

  await servers.add({ fqdn: "mp01.contoso.test" });
  const mp = await roles.add("mp01.contoso.test", "management-point", { allowCmgTraffic: true, internalUrl: `http://127.0.0.1:${backendPort}` });
  await servers.add({ fqdn: "cp01.contoso.test" });
  await roles.add("cp01.contoso.test", "cmg-connection-point", { cmgName: "CMG1" });

  const bundle = await writeCmgBundle(site, await cmgs.show("cmg1"));
  for (const f of bundle.files) instances.push(await startGatewayInstance(loadStartupFile(f), { log: gatewayLogs(site.logs) }));
  cp = await runConnectionPointRole(connectionPointRoleDeps(site), "cp01.contoso.test", { healthIntervalMs: 300, pollMs: 200 });
  await cp.cp.waitConnected({ timeoutMs: 20_000 });

  const agent = new Agent({ connect: { ca: [pki.root.certPem], cert: pki.client.certPem + pki.intermediate.certPem, key: pki.client.keyPem, servername: "cmg.contoso.test" } });
  for (const port of [clientBase, clientBase + 1]) {
    const res = await request(`https://127.0.0.1:${port}/CCM_Proxy_MutualAuth/${mp.id}/ccm_system/request?x=1`, { dispatcher: agent, headers: { "x-opencmg-client-thumbprint": "FORGED" } });
    assert.equal(res.statusCode, 200);
    const body = (await res.body.json()) as { path: string; thumbprint: string };
    assert.equal(body.path, "/ccm_system/request?x=1");
    assert.equal(body.thumbprint, pki.client.thumbprint, "the gateway replaced the forged identity with the authenticated one");
  }
  const untrusted = new Agent({ connect: { ca: [pki.root.certPem], cert: pki.untrustedClient.certPem, key: pki.untrustedClient.keyPem, servername: "cmg.contoso.test" } });
  const refused = await request(`https://127.0.0.1:${clientBase}/CCM_Proxy_MutualAuth/${mp.id}/x`, { dispatcher: untrusted });
  assert.equal(refused.statusCode, 403);
  await refused.body.dump();

  // Health reports reach the site: every instance connected -> Ready.
  // Waits for the condition; the bound only keeps a broken run from hanging the suite.
  let view = await cmgs.show("cmg1");
  for (const end = Date.now() + 60_000; view.status !== "Ready" && Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 200));
    view = await cmgs.show("cmg1");
  }
  assert.equal(view.status, "Ready", view.statusReason);
  const comp = (await site.services.status.components("cp01.contoso.test")).find((c) => c.component === "SMS_CLOUD_PROXYCONNECTOR");
  assert.equal(comp?.status, "OK");

  // Turning CMG traffic off at the site reaches the gateway: 403 there, nothing sent on-premises.
  await roles.set("mp01.contoso.test", "management-point", { allowCmgTraffic: false });
  await cp.refresh();
  const before = seen.length;
  let status = 0;
  for (const end = Date.now() + 60_000; Date.now() < end; ) {
    const r = await request(`https://127.0.0.1:${clientBase}/CCM_Proxy_MutualAuth/${mp.id}/after`, { dispatcher: agent });
    status = r.statusCode;
    await r.body.dump();
    if (status === 403) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 403);
  const lastAfter = seen.slice(before).length;
  const r2 = await request(`https://127.0.0.1:${clientBase}/CCM_Proxy_MutualAuth/${mp.id}/after`, { dispatcher: agent });
  assert.equal(r2.statusCode, 403);
  await r2.body.dump();
  assert.equal(seen.slice(before).length, lastAfter, "a refused request never reaches the management point");
  await agent.close();
  await untrusted.close();
});
