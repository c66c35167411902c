/**
 * A CMG's traffic and its alert, with real processes: `opencmg cmg start` (two instances),
 * `opencmg connection-point serve` and `opencmg site serve` (which evaluates the alerts), short
 * intervals set through `opencmg settings`, and a device downloading and uploading through the
 * CMG with its client certificate. The threshold is tiny (a fraction of a GB) so that the bytes
 * really relayed cross warning and then critical; stop-on-critical stops the CMG; a larger
 * threshold clears the alert. Each crossing raises one status message and sets the CMG's
 * component status. `cmg traffic`, `cmg show` and the admin API show the traffic per day,
 * instance, connection point and role kind, both directions.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:http";
import { after, before, it } from "node:test";
import { Agent, request } from "undici";
import type { StatusMessage } from "../../../src/site/model.ts";
import type { CmgView } from "../../../src/site/services/cmg-model.ts";
import type { CmgTrafficSummary } from "../../../src/site/services/cmg-traffic.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { StatusId } from "../../../src/site/status-ids.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { until } from "../../helpers/until.ts";

const SERVER = "cmg.contoso.test";
const MB = 1_000_000;
const data = tempDir();
const started: ChildProcess[] = [];
let pki: TestPki;
let backend: Server;
let mpId = "";
let supId = "";
let clientBase = 0;
let adminToken = "";
let agent: Agent;
/** Bytes of request bodies the stand-in roles received. */
let uploaded = 0;

const cli = (...args: string[]): string => execFileSync(process.execPath, [OPENCMG_BIN, "--data", data, ...args], { encoding: "utf8" });
const cliJson = <T>(...args: string[]): T => JSON.parse(cli(...args, "--json")) as T;
/** The site as the test reads it while the processes run (polling through the CLI would spawn a process per look). */
let reader: OpenedSite;
const messages = (id: number): Promise<StatusMessage[]> => reader.services.status.messages({ messageId: id });
const component = async () => (await reader.services.status.components(SERVER)).find((c) => c.component === "SMS_CLOUD_SERVICES_MANAGER");

/** Starts an `opencmg` process and resolves once its standard error matches `ready`. */
async function run(args: string[], ready: RegExp): Promise<{ child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, [OPENCMG_BIN, "--data", data, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  started.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  await until(`${args.join(" ")} to start (stderr so far: ${err})`, () => (ready.test(err) ? true : child.exitCode !== null ? assert.fail(`${args.join(" ")} exited ${child.exitCode}: ${err}`) : undefined));
  return { child, stderr: () => err };
}

/** Waits for the alert evaluation to run `n` more times (each one writes the component status). */
async function evaluations(n: number): Promise<void> {
  let last = (await component())?.updatedAt;
  for (let k = 0; k < n; k++) {
    last = await until("another alert evaluation", async () => {
      const at = (await component())?.updatedAt;
      return at !== undefined && at !== last ? at : undefined;
    });
  }
}

before(async () => {
  pki = await makeTestPki({ serverName: SERVER });
  backend = createServer((req, res) => {
    // The stand-in management point and software update point: /bytes/N answers N bytes; anything else reads the body and answers its size.
    const n = /\/bytes\/(\d+)/.exec(req.url ?? "");
    if (n) {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": n[1] });
      res.end(Buffer.alloc(Number(n[1]), 7));
      return;
    }
    let size = 0;
    req.on("data", (c: Buffer) => (size += c.length));
    req.on("end", () => {
      uploaded += size;
      res.end(JSON.stringify({ received: size }));
    });
  });
  await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
  const backendUrl = `http://127.0.0.1:${(backend.address() as { port: number }).port}`;

  const site = await openSite({ dataDir: data });
  try {
    adminToken = (await initSite(site, { code: "P01", name: "E2E" })).adminToken;
    clientBase = await freePortRange(2);
    await site.services.cmgs.create({
      name: "cmg1",
      serverCertPem: pki.server.certPem,
      serverKeyPem: pki.server.keyPem,
      instances: 2,
      trustedRoots: [pki.root.certPem],
      intermediates: [pki.intermediate.certPem],
      crlCheck: false,
      deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", clientPortBase: clientBase, tunnelPortBase: await freePortRange(2), metricsPortBase: 0 },
    });
    const { servers, roles } = site.services;
    await servers.add({ fqdn: "mp01.contoso.test" });
    mpId = String((await roles.add("mp01.contoso.test", "management-point", { allowCmgTraffic: true, internalUrl: backendUrl })).id);
    await servers.add({ fqdn: "sup01.contoso.test" });
    supId = String((await roles.add("sup01.contoso.test", "software-update-point", { allowCmgTraffic: true, internalUrl: backendUrl })).id);
    await servers.add({ fqdn: "cp01.contoso.test" });
    await roles.add("cp01.contoso.test", "cmg-connection-point", { cmgName: "cmg1" });
  } finally {
    await site.close();
  }
  reader = await openSite({ dataDir: data });
  agent = new Agent({ connect: { ca: [pki.root.certPem], cert: pki.client.certPem + pki.intermediate.certPem, key: pki.client.keyPem, servername: SERVER } });
});

after(async () => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await agent?.close();
  await reader?.close();
  await new Promise((r) => backend?.close(r));
});

it("counts traffic per instance, connection point and role kind, and raises the alert once per crossing, stops the CMG at critical, and clears", async () => {
  // Short intervals, through the settings a site administrator uses.
  cli("settings", "set", "alert-evaluation-interval", "1s");
  // 0.001 GB = 1 MB: warning at 50% (500 KB), critical at 90% (900 KB), and stop the CMG then.
  assert.match(cli("cmg", "update", "cmg1", "--traffic-alert-gb", "0.001", "--stop-on-critical"), /warning at 50%, critical at 90%, stop on critical/);

  const cmg = await run(["cmg", "start", "cmg1"], /Ctrl-C stops them/);
  await run(["connection-point", "serve", "--server", "cp01.contoso.test", "--report-interval", "1"], /Ctrl-C stops it/);
  const siteServer = await run(["site", "serve", "--listen", "127.0.0.1:0", "--insecure-http"], /serving the admin API on (\S+)/);
  const apiUrl = /serving the admin API on (\S+)/.exec(siteServer.stderr())![1]!;
  // Set while the connection point runs (at its 5-minute default): it applies without a restart,
  // or no report would come within the waits below.
  cli("settings", "set", "traffic-report-interval", "1s");

  const get = async (i: number, path: string, o: { method?: "POST"; body?: Buffer } = {}): Promise<number> => {
    const res = await until(`instance ${i} to relay`, async () => {
      const r = await request(`https://127.0.0.1:${clientBase + i}${path}`, { dispatcher: agent, method: o.method ?? "GET", body: o.body ?? null });
      if (r.statusCode === 200) return r;
      await r.body.dump();
      return undefined; // tunnels still coming up
    });
    return (await res.body.arrayBuffer()).byteLength;
  };

  // Below the warning level: nothing raised, the component is OK.
  assert.equal(await get(1, `/CCM_Proxy_MutualAuth/${supId}/upload`, { method: "POST", body: Buffer.alloc(200_000, 1) }), '{"received":200000}'.length);
  await until("the upload in the reports", async () => (await reader.services.cmgTraffic.summary("cmg1")).total.bytesFromClients >= 200_000);
  await evaluations(1);
  assert.equal((await component())?.status, "OK");
  assert.equal((await messages(StatusId.CMG_TRAFFIC_WARNING)).length, 0);

  // 600 KB to the device through instance 0: the warning level.
  assert.equal(await get(0, `/CCM_Proxy_MutualAuth/${mpId}/bytes/${0.6 * MB}`), 0.6 * MB);
  await until("the warning status message", async () => (await messages(StatusId.CMG_TRAFFIC_WARNING)).length > 0);
  await evaluations(2);
  const warnings = await messages(StatusId.CMG_TRAFFIC_WARNING);
  assert.equal(warnings.length, 1, "raised once, however many evaluations found it");
  assert.equal(warnings[0]!.severity, "warning");
  assert.equal(warnings[0]!.server, SERVER);
  assert.match(warnings[0]!.text, /CMG cmg1: outbound data transfer reached the warning level \(50%\)/);
  assert.equal((await component())?.status, "Warning");
  assert.equal((await messages(StatusId.CMG_TRAFFIC_CRITICAL)).length, 0);

  // 400 KB more: the critical level; the CMG is stopped, as its alert asks.
  assert.equal(await get(0, `/CCM_Proxy_MutualAuth/${mpId}/bytes/${0.4 * MB}`), 0.4 * MB);
  await until("the critical status message", async () => (await messages(StatusId.CMG_TRAFFIC_CRITICAL)).length > 0);
  // Stopped as `opencmg cmg stop` does: it stays stopped, and `cmg start` stops its instances.
  await until("the CMG to be stopped, as its alert asks", () => {
    const v = cliJson<CmgView>("cmg", "show", "cmg1");
    return v.runState === "stopped" && v.status === "Stopped" ? true : undefined;
  });
  await evaluations(2);
  assert.equal((await messages(StatusId.CMG_TRAFFIC_CRITICAL)).length, 1);
  assert.equal((await messages(StatusId.CMG_TRAFFIC_CRITICAL))[0]!.severity, "error");
  assert.equal((await messages(StatusId.CMG_TRAFFIC_WARNING)).length, 1);
  assert.match((await messages(StatusId.CMG_STOPPED_ON_CRITICAL))[0]?.text ?? "", /CMG cmg1: stopped because its outbound traffic reached the critical level/);
  assert.equal((await component())?.status, "Critical");

  // Traffic shown per day, instance, connection point and role kind, both directions.
  const t = cliJson<CmgTrafficSummary>("cmg", "traffic", "cmg1", "--days", "3");
  assert.equal(t.perDay.length, 3);
  assert.ok(t.outbound14Days >= MB, `outbound ${t.outbound14Days}`);
  assert.equal(t.perDay.at(-1)!.bytesToClients, t.total.bytesToClients, "all of it today");
  const kind = (k: string) => t.byRoleKind.find((x) => x.roleKind === k);
  assert.equal(kind("mp")?.bytesToClients, MB, "the management point's answers: the two downloads");
  assert.equal(kind("mp")?.requests, 2);
  assert.equal(kind("sup")?.bytesFromClients, 200_000, "the software update point's request bodies: the upload");
  assert.equal(kind("sup")?.requests, 1);
  assert.ok((kind("tunnel")?.bytesToClients ?? 0) > 0, "TLS and framing counted apart");
  const inst = (i: number) => t.byInstance.find((x) => x.instance === i);
  assert.ok(inst(0)!.bytesToClients >= MB && inst(0)!.requests === 2, JSON.stringify(inst(0)));
  assert.ok(inst(1)!.bytesFromClients >= 200_000 && inst(1)!.bytesToClients < 0.5 * MB && inst(1)!.requests === 1, JSON.stringify(inst(1)));
  assert.deepEqual(t.byConnectionPoint.map((c) => c.connectionPoint), ["cp01.contoso.test"]);
  assert.equal(t.byConnectionPoint[0]!.bytesToClients, t.total.bytesToClients);
  assert.equal(uploaded, 200_000);
  assert.match(cli("cmg", "show", "cmg1"), /outbound, 14 days\s+1\.\d+ MB to devices.*\n.*traffic alert\s+0\.001 GB over 14 days, warning at 50%, critical at 90%, stop on critical \(now \d+(\.\d)?%, last raised: critical\)/);
  const api = await request(`${apiUrl}/api/v1/cmgs/cmg1/traffic?days=3`, { headers: { authorization: `Bearer ${adminToken}` } });
  assert.equal(api.statusCode, 200);
  const fromApi = (await api.body.json()) as CmgTrafficSummary & { alert: { thresholdGb: number } };
  assert.deepEqual(fromApi.byRoleKind, t.byRoleKind, "the API serves the same");
  assert.equal(fromApi.alert.thresholdGb, 0.001);

  // A larger threshold (1 GB): the traffic is below the warning level now; cleared, once.
  cli("cmg", "update", "cmg1", "--traffic-alert-gb", "1");
  await until("the cleared status message", async () => (await messages(StatusId.CMG_TRAFFIC_CLEARED)).length > 0);
  await evaluations(2);
  const cleared = await messages(StatusId.CMG_TRAFFIC_CLEARED);
  assert.equal(cleared.length, 1);
  assert.equal(cleared[0]!.severity, "informational");
  assert.match(cleared[0]!.text, /back below the warning level \(50%\).*The critical alert is cleared/);
  assert.equal((await component())?.status, "OK");
  assert.equal((await messages(StatusId.CMG_TRAFFIC_CRITICAL)).length, 1, "no new critical");
});
