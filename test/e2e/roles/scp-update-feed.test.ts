/**
 * The service connection point reaches the product update feed through its server's proxy (a real
 * Squid with Basic authentication), and the directory discovery features go out through that same
 * server's proxy whatever server asks.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { NetError } from "../../../src/errors.ts";
import { parseLines } from "../../../src/logs/cmtrace.ts";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { tempDir } from "../../helpers/databases.ts";
import { serveBytes, startInternet, type Internet } from "../../helpers/internet.ts";
import { startSquid, type TestSquid } from "../../helpers/squid.ts";
import { checkUpdateFeed } from "../../../src/roles/scp/update-feed.ts";
import { LOG_FILES } from "../../../src/logs/files.ts";

let net: Internet;
let squid: TestSquid;
let site: OpenedSite;
const SCP = "scp01.contoso.com";

before(async () => {
  net = await startInternet();
  squid = await startSquid({ hosts: net.hosts(), auth: { username: "svc-proxy", password: "Feed-Pass-1" } });
  net.route("/feed.json", serveBytes(Buffer.from(JSON.stringify({ product: "OpenCMG", latestVersion: "2611.1", releases: [{ version: "2611.1" }, { version: "2609.2" }] })), "application/json"));
  site = await openSite({ dataDir: tempDir(), egressCa: [net.ca.certPem], egressLookup: net.lookup });
  await initSite(site, { code: "P01", name: "SCP" });
  const { servers, roles, accounts, proxies } = site.services;
  await servers.add({ fqdn: SCP, siteServer: true });
  await servers.add({ fqdn: "dc-sync.contoso.com" });
  await roles.add(SCP, "service-connection-point", { updateFeedUrl: net.url("https", "/feed.json", "go.microsoft.com") });
  await accounts.add("CONTOSO\\svc-proxy", "svc-proxy", "Feed-Pass-1");
  await proxies.set(SCP, { host: squid.host, port: squid.port, account: "CONTOSO\\svc-proxy" });
});
after(async () => {
  await site.close();
  await squid.stop();
  await net.stop();
});

const deps = () => ({ roles: site.services.roles, status: site.services.status, egress: site.egress, logs: site.logs });

it("checks the product update feed through the server's proxy with the proxy account", async () => {
  const r = await checkUpdateFeed(deps(), SCP);
  assert.equal(r.latestVersion, "2611.1");
  assert.equal(r.releases, 2);
  await site.egress.close();
  const entries = await squid.waitForEntries((e) => e.some((x) => x.method === "CONNECT" && x.url.startsWith("go.microsoft.com")));
  assert.equal(entries.find((x) => x.method === "CONNECT" && x.url.startsWith("go.microsoft.com"))?.user, "svc-proxy");
  const log = parseLines(readFileSync(join(site.paths.logs, "dmpdownloader.log"), "utf8")).map((l) => l.text);
  assert.ok(log.some((t) => t.includes(`through proxy 127.0.0.1:${squid.port}`)));
});

it("directory discovery from another server goes out through the service connection point's proxy", async () => {
  const { egress, decision } = await site.egress.for("dc-sync.contoso.com", "directory-user-discovery", site.logs.component(LOG_FILES.adsysdis));
  assert.ok(decision.use === "proxy" && decision.proxyServer === SCP);
  const res = await egress.request(net.url("https", "/feed.json", "go.microsoft.com"), { method: "GET" });
  assert.equal(res.statusCode, 200);
  await res.body.dump();
});

it("a wrong feed host fails with 12007 at the target, logged, with a status message", async () => {
  await site.services.roles.set(SCP, "service-connection-point", { updateFeedUrl: "https://feed.nothing.invalid/feed.json" });
  await assert.rejects(checkUpdateFeed(deps(), SCP), (e: unknown) => e instanceof NetError && e.code === 12007 && e.hop === "target");
  const log = parseLines(readFileSync(join(site.paths.logs, "dmpdownloader.log"), "utf8")).map((l) => l.text);
  assert.ok(log.some((t) => /Error = 12007\./.test(t)));
  const msgs = await site.services.status.messages({ component: "SMS_DMP_DOWNLOADER" });
  assert.equal(msgs.at(-1)?.severity, "error");
});
