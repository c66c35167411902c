/**
 * The console's pages against the real admin API in a real browser: Status Messages filtered and
 * paged by the site (a refused filter's message next to it), Clients approved, blocked and
 * unblocked, a site setting refused next to its field and then saved, and the Internet endpoints
 * check run through the service connection point's proxy (Squid) with each endpoint's stages, a CMG
 * created in the wizard from a PFX file (a wrong password refused beside its field); and
 * axe-core on each page as it is then, with its data, errors and results.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { selectEndpoints } from "../../../src/endpoints/catalog.ts";
import { onPort, type CheckTarget } from "../../../src/endpoints/checker.ts";
import { createCa, issueCert } from "../../../src/pki/issue.ts";
import { writePfx } from "../../../src/pki/pfx.ts";
import { tempDir } from "../../helpers/databases.ts";
import { DEFAULT_NAMES, startInternet, type Internet } from "../../helpers/internet.ts";
import { startSquid, type TestSquid } from "../../helpers/squid.ts";
import { accessibilityFailures, launchBrowser, screenshot } from "../../helpers/browser.ts";

const SCP = "scp01.contoso.test";
const SCP_HOSTS = [...new Set(selectEndpoints({ roles: ["service-connection-point"], cloud: "public" }).endpoints.filter((e) => !e.wildcard).map((e) => e.host))];
let net: Internet;
let squid: TestSquid;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;

before(async () => {
  net = await startInternet({ names: [...new Set([...DEFAULT_NAMES, ...SCP_HOSTS])] });
  net.route("/", (_req, res) => {
    res.writeHead(200, { "content-length": 0 });
    res.end();
  });
  squid = await startSquid({ hosts: net.hosts() });
  site = await openSite({ dataDir: tempDir("opencmg-console-pages-"), egressCa: [net.ca.certPem] });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console pages" });
  await site.services.servers.add({ fqdn: SCP });
  await site.services.proxies.set(SCP, { host: squid.host, port: squid.port });
  await site.services.roles.add(SCP, "service-connection-point", {});
  const mapTarget = (t: CheckTarget): CheckTarget => onPort(t, t.scheme === "https" ? net.httpsPort : net.httpPort);
  server = await startSiteServer({
    site,
    listen: { host: "127.0.0.1", port: 0 },
    transport: { kind: "http" },
    endpointCheck: false,
    onDemandCheck: { mapTarget, ca: [net.ca.certPem], stageTimeoutMs: 5000 },
    console: { live: { pollMs: 500 } },
  });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
  await nav("Sites").waitFor();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
  await squid?.stop();
  await net?.stop();
});

const nav = (label: string) => page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: label, exact: true });

/** The validation message Fluent's Field ties to a control (aria-describedby), or "". */
async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

async function assertAccessible(state: string): Promise<void> {
  const failures = await accessibilityFailures(page, state);
  assert.equal(failures, "", failures);
}

const rowCount = (table: string) => page.getByRole("table", { name: table }).locator("tbody tr").count();

it("Status Messages: the site filters and pages them; a filter it refuses shows its message next to that filter", async () => {
  for (let i = 0; i < 55; i++) await site.services.status.raise({ messageId: 4000 + (i % 2), severity: "informational", component: "SMS_TEST", server: SCP, text: `message ${i}` });
  await site.services.status.raise({ messageId: 11488, severity: "error", component: "SMS_SERVICE_CONNECTOR", server: SCP, text: "Failed to reach 1 internet endpoint(s)" });
  await nav("Status Messages").click();
  await page.getByRole("cell", { name: "Failed to reach 1 internet endpoint(s)" }).waitFor();
  assert.equal(await rowCount("Status messages"), 50, "a page of 50, newest first");
  await page.getByRole("button", { name: "Older messages" }).click();
  await page.getByRole("cell", { name: "message 0", exact: true }).waitFor();
  assert.equal(await rowCount("Status messages"), 6, "the rest on the next page");
  assert.equal(await page.getByRole("button", { name: "Older messages" }).isDisabled(), true);
  await page.getByRole("button", { name: "Newer messages" }).click();
  await page.getByRole("cell", { name: "Failed to reach 1 internet endpoint(s)" }).waitFor();

  await page.getByLabel("Message ID").fill("11488");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Status messages"] tbody tr').length === 1);
  assert.equal(await page.locator("tbody tr").first().getAttribute("data-message-id"), "11488");

  await page.getByLabel("Message ID").fill("eleven");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.match(await messageOf(page.getByLabel("Message ID")), /^Message ID: must be a message ID \(a whole number\)$/);
  await assertAccessible("Status Messages with a refused filter");
  await page.getByLabel("Message ID").fill("");
  await page.getByRole("combobox", { name: "Severity" }).click();
  await page.getByRole("option", { name: "Error" }).click();
  await page.getByRole("button", { name: "Apply filters" }).click();
  // The error goes with the bad filter once the site answers the new query.
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') === null);
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Status messages"] tbody tr').length === 1);
  assert.equal(await page.locator("tbody tr").first().getAttribute("data-message-id"), "11488", "the only error");
  await screenshot(page, "status-messages-filtered");
});

it("Status Messages: a device's message shows as the client's, with its ID, never as the site's", async () => {
  // The issue's attack: a device named like the site server, message 9471, dated 2099.
  const id = "GUID:0E4A2B6C-1D3F-4A5B-8C7D-9E0F1A2B3C4D";
  await site.services.status.raise({ messageId: 9471, severity: "error", component: "SMS_CLOUD_SERVICES_MANAGER", server: "site.opencmg.local", text: "Impersonated traffic alert", client: { id, claimedTime: "2099-01-01T00:00:00.000Z" } });
  await site.services.status.raise({ messageId: 9471, severity: "error", component: "SMS_CLOUD_SERVICES_MANAGER", server: "site.opencmg.local", text: "The site's own traffic alert" });
  await nav("Sites").click();
  await nav("Status Messages").click();
  const row = page.getByRole("row").filter({ hasText: "Impersonated traffic alert" });
  await row.waitFor();
  assert.equal(await row.getAttribute("data-source"), "client");
  assert.equal(await row.getByRole("cell").nth(2).textContent(), "Client");
  assert.equal(await row.getByRole("cell").nth(3).textContent(), `Client site.opencmg.local (${id})`);
  assert.notEqual(await row.getByRole("cell").nth(1).textContent(), new Date("2099-01-01T00:00:00.000Z").toLocaleString(), "shown at the time it arrived");
  const own = page.getByRole("row").filter({ hasText: "The site's own traffic alert" });
  assert.equal(await own.getAttribute("data-source"), "site");
  assert.equal(await own.getByRole("cell").nth(3).textContent(), "site.opencmg.local");

  await page.getByRole("combobox", { name: "Source" }).click();
  await page.getByRole("option", { name: "Clients" }).click();
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Status messages"] tbody tr').length === 1);
  assert.equal(await page.locator("tbody tr").first().getAttribute("data-source"), "client");
  await assertAccessible("Status Messages with a client's message");
});

it("Clients: filtered by connection type; approve, block and unblock as the site records them", async () => {
  const { client: pc01 } = await site.services.clients.requestRegistration({ name: "PC01", connectionType: "internet" });
  await site.services.clients.requestRegistration({ name: "PC02", connectionType: "intranet" });
  await nav("Clients").click();
  await page.getByRole("cell", { name: "PC02", exact: true }).waitFor();
  await page.getByRole("combobox", { name: "Connection type" }).click();
  await page.getByRole("option", { name: "Internet" }).click();
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Clients"] tbody tr').length === 1);
  assert.equal(await page.locator("tbody tr").first().getAttribute("data-client"), "PC01");

  await page.getByRole("button", { name: "Approve PC01" }).click();
  await page.getByText("PC01 is approved.").waitFor();
  assert.equal((await site.services.clients.get(pc01.id)).approved, true);
  await page.getByRole("button", { name: "Block PC01", exact: true }).click();
  await page.getByRole("button", { name: "Unblock PC01" }).waitFor();
  assert.equal((await site.services.clients.get(pc01.id)).blocked, true);
  await screenshot(page, "clients");
  await assertAccessible("Clients");
  await page.getByRole("button", { name: "Unblock PC01" }).click();
  await page.getByRole("button", { name: "Block PC01", exact: true }).waitFor();
  assert.equal((await site.services.clients.get(pc01.id)).blocked, false);
});

it("Sites: a site setting the site refuses shows its message next to it; a good one is saved", async () => {
  await nav("Sites").click();
  const field = page.getByLabel("endpoint-check-interval", { exact: true });
  await field.fill("soon");
  await page.getByRole("button", { name: "Save endpoint-check-interval" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.match(await messageOf(field), /^Endpoint check interval: must be a duration/);
  assert.equal((await site.services.settings.get("endpoint-check-interval")).isDefault, true, "nothing saved");
  await assertAccessible("Sites with a refused setting");
  await field.fill("2h");
  await page.getByRole("button", { name: "Save endpoint-check-interval" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') === null);
  assert.equal((await site.services.settings.get("endpoint-check-interval")).value, "2h");
});

it("Internet endpoints: the list, the exports, and a check run through the proxy with each endpoint's stages", async () => {
  await nav("Internet endpoints").click();
  await page.getByRole("table", { name: "Internet endpoints" }).waitFor();
  assert.ok((await rowCount("Internet endpoints")) > 0);
  const csv = await page.getByRole("link", { name: "Download csv" }).getAttribute("href");
  const answer = await page.evaluate(async (href) => {
    const r = await fetch(href!);
    return { status: r.status, type: r.headers.get("content-type") };
  }, csv);
  assert.deepEqual(answer, { status: 200, type: "text/csv; charset=utf-8" });

  await page.getByRole("button", { name: "Run check" }).click();
  await page.getByTestId("check-summary").waitFor({ timeout: 60_000 });
  const checks = await site.services.checks.list();
  assert.equal(checks.length, 1);
  const done = await site.services.checks.get(checks[0]!.id);
  assert.equal(done.state, "done");
  const report = (done.result as { report: { route: string; summary: Record<string, number>; results: { url: string; stages: { stage: string; result: string }[] }[] } }).report;
  // What the page says is the site's report: its route through Squid, its counts, each endpoint's stages.
  const summary = (await page.getByTestId("check-summary").textContent()) ?? "";
  assert.match(report.route, new RegExp(`proxy 127\\.0\\.0\\.1:${squid.port}`));
  assert.ok(summary.includes(`(${report.route}): ${Object.entries(report.summary).map(([k, v]) => `${k} ${v}`).join(", ")}`), summary);
  assert.ok(report.summary.pass! > 0, JSON.stringify(report.summary));
  assert.equal(await rowCount("Check results"), report.results.length);
  const passed = report.results.find((r) => r.stages.some((x) => x.stage === "tls" && x.result === "pass"))!;
  const shown = await page.getByRole("list", { name: `Stages of ${passed.url}` }).first().textContent();
  assert.equal(shown, passed.stages.map((x) => `${x.stage}: ${x.result}`).join(""));
  await screenshot(page, "internet-endpoints-check");
  await assertAccessible("Internet endpoints with a check's results");
});

it("Create Cloud Management Gateway from a PFX file: a wrong password comes back beside the PFX password; the right one creates it", async () => {
  const root = await createCa({ commonName: "PFX Test Root" });
  const cert = await issueCert({ issuer: root, commonName: "cmg2.contoso.test", dnsNames: ["cmg2.contoso.test"], usage: "server" });
  const pfxFile = join(tempDir("opencmg-console-pfx-"), "cmg2.pfx");
  writeFileSync(pfxFile, writePfx({ certPem: cert.certPem, keyPem: cert.keyPem, password: "Pfx-Pass-1" }), { mode: 0o600 });
  await nav("Cloud Management Gateway").first().click();
  await page.getByRole("button", { name: "Create Cloud Management Gateway" }).click();
  await page.getByRole("heading", { level: 2, name: "General" }).waitFor();
  await page.getByRole("combobox", { name: "Provider" }).click();
  await page.getByRole("option", { name: /^External/ }).click();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("Certificate file", { exact: true }).setInputFiles(pfxFile);
  await page.getByLabel("PFX password").fill("not-the-password");
  await page.getByLabel("Service name", { exact: true }).fill("cmg2");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Alerts" }).waitFor();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { level: 2, name: "Settings" }).waitFor();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.match(await messageOf(page.getByLabel("PFX password")), /^PFX password: the password does not open the PFX file$/);
  assert.deepEqual(await site.services.cmgs.list(), [], "nothing created");
  await assertAccessible("Wizard with a refused PFX password");
  await page.getByLabel("PFX password").fill("Pfx-Pass-1");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByText("The cloud management gateway cmg2 is created.").waitFor();
  const created = await site.services.cmgs.show("cmg2");
  assert.equal(created.serviceFqdn, "cmg2.contoso.test", "the service FQDN from the PFX's certificate");
  assert.equal(created.provider, "external");
});
