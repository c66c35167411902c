/**
 * Administration > Updates and Servicing in a real browser, as `opencmg scp check-updates FQDN`:
 * Check for Updates has the service connection point fetch the product update feed (a local
 * stand-in for the internet) through its server's proxy (a real Squid with Basic authentication)
 * and shows the latest version, the number of releases, the feed's URL and the route; the stand-in
 * was asked once; `opencmg audit`, run in another process, records the check. A Read-only Analyst
 * sees Check for Updates disabled with the reason. No serious or critical accessibility violation.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import type { AuditEntry } from "../../../src/site/services/audit.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { serveBytes, startInternet, type Internet } from "../../helpers/internet.ts";
import { startSquid, type TestSquid } from "../../helpers/squid.ts";
import { accessibilityFailures, launchBrowser, screenshot, settle } from "../../helpers/browser.ts";

const SCP = "scp01.contoso.com";
const FEED = { product: "OpenCMG", latestVersion: "2611.1", releases: [{ version: "2611.1" }, { version: "2609.2" }, { version: "2607.1" }] };

let net: Internet;
let squid: TestSquid;
let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let analystToken: string;
let feedUrl: string;

before(async () => {
  net = await startInternet();
  net.route("/feed.json", serveBytes(Buffer.from(JSON.stringify(FEED)), "application/json"));
  squid = await startSquid({ hosts: net.hosts(), auth: { username: "svc-proxy", password: "Feed-Pass-1" } });
  dataDir = join(tempDir("opencmg-console-updates-servicing-"), "data");
  // The check reaches only the stand-in: its CA is trusted and its names resolve to it, nothing else.
  site = await openSite({ dataDir, egressCa: [net.ca.certPem], egressLookup: net.lookup });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console updates and servicing" });
  feedUrl = net.url("https", "/feed.json", "go.microsoft.com");
  const { servers, roles, accounts, proxies } = site.services;
  await servers.add({ fqdn: SCP, siteServer: true });
  await roles.add(SCP, "service-connection-point", { updateFeedUrl: feedUrl });
  await accounts.add("CONTOSO\\svc-proxy", "svc-proxy", "Feed-Pass-1");
  await proxies.set(SCP, { host: squid.host, port: squid.port, account: "CONTOSO\\svc-proxy" });
  analystToken = (await site.services.adminTokens.create("analyst", { role: "read-only-analyst" })).token;
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
  await squid?.stop();
  await net?.stop();
});

it("Check for Updates shows the feed's latest version and releases, through the proxy; the stand-in was asked once; the audit log records it", async () => {
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Updates and Servicing", exact: true }).click();
  assert.equal(await page.getByLabel("Service connection point", { exact: true }).inputValue(), SCP);
  const checkNow = page.getByRole("button", { name: "Check for Updates" });
  await checkNow.waitFor();
  const asked = () => net.requests().filter((r) => r.path === "/feed.json").length;
  assert.equal(asked(), 0);

  await checkNow.click();
  await page.getByText(`Latest version 2611.1 (3 releases) from ${feedUrl} through proxy 127.0.0.1:${squid.port}.`).waitFor();
  assert.equal(net.requests().filter((r) => r.path === "/feed.json" && r.scheme === "https").length, 1, "the stand-in served the feed once");
  assert.equal(asked(), 1);

  const audit = await binJson<AuditEntry[]>(["--data", dataDir, "audit"]);
  const checks = audit.filter((a) => a.action === "scp.checkUpdates");
  assert.equal(checks.length, 1);
  assert.equal(checks[0]!.object, `server/${SCP}/role/service-connection-point`);
  assert.deepEqual(checks[0]!.after, { latestVersion: "2611.1", releases: 3, route: `through proxy 127.0.0.1:${squid.port}` });

  await settle(page);
  assert.equal(await accessibilityFailures(page, "Updates and Servicing after Check for Updates"), "");
  await screenshot(page, "updates-servicing");
});

it("shows a Read-only Analyst Check for Updates disabled, with the reason", async () => {
  const analyst = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await analyst.goto(server.consoleUrl);
  await analyst.getByLabel("Admin token").fill(analystToken);
  await analyst.getByRole("button", { name: "Sign in" }).click();
  await analyst.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Updates and Servicing", exact: true }).click();
  const checkNow = analyst.getByRole("button", { name: "Check for Updates" });
  await checkNow.waitFor();
  assert.equal(await checkNow.isDisabled(), true);
  assert.match((await checkNow.getAttribute("title")) ?? "", /Read-only Analyst: this role reads only; changes are turned off\./);
  await analyst.context().close();
});
