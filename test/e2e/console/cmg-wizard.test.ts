/**
 * Document 004's procedure in the console, in a real browser: Create Cloud Management Gateway from
 * uploaded PEM files (General, Settings, Alerts, Summary; the certificate fills Service name and
 * Service FQDN; an error of the API shown beside its field on its page), then the CMG connection
 * point added under Servers and Site System Roles, and the Status column turning Ready by itself
 * once the instance runs and the connection point reaches it.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { gatewayLogs, startGatewayInstance, type GatewayInstance } from "../../../src/gateway/instance.ts";
import { loadStartupFile } from "../../../src/gateway/startup-file.ts";
import { writeCmgBundle } from "../../../src/cmg/bundle.ts";
import { analyzeCmg } from "../../../src/site/services/cmg-analyze.ts";
import { runConnectionPointRole, type RunningConnectionPoint } from "../../../src/roles/cmg-connection-point/role.ts";
import { connectionPointRoleDeps } from "../../../src/app/role-deps.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { tempDir } from "../../helpers/databases.ts";
import { createHash, X509Certificate } from "node:crypto";
import { accessibilityFailures, contentHiddenAfterDialog, launchBrowser, screenshot } from "../../helpers/browser.ts";

const CP = "cp01.contoso.test";
let site: OpenedSite;
let token: string;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let pki: TestPki;
let files: Record<"cert" | "key" | "root" | "intermediate", string>;
const instances: GatewayInstance[] = [];
let cp: RunningConnectionPoint | undefined;

before(async () => {
  const dir = tempDir("opencmg-console-cmg-");
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  files = { cert: join(dir, "cmg-server.pem"), key: join(dir, "cmg-server.key"), root: join(dir, "root-ca.pem"), intermediate: join(dir, "intermediate-ca.pem") };
  writeFileSync(files.cert, pki.server.certPem);
  writeFileSync(files.key, pki.server.keyPem, { mode: 0o600 });
  writeFileSync(files.root, pki.root.certPem);
  writeFileSync(files.intermediate, pki.intermediate.certPem);
  site = await openSite({ dataDir: join(dir, "data") });
  token = (await initSite(site, { code: "P01", name: "Console CMG test" })).adminToken;
  // A management point allowing CMG traffic, so the connection point has something to publish.
  await site.services.servers.add({ fqdn: "mp01.contoso.test" });
  await site.services.roles.add("mp01.contoso.test", "management-point", { allowCmgTraffic: true, internalUrl: "http://127.0.0.1:9" });
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
});

after(async () => {
  await cp?.stop();
  for (const i of instances) await i.stop({ graceMs: 100 });
  await browser?.close();
  await server?.close();
  await site?.close();
});

const nav = (label: string) => page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: label, exact: true });

/** The text of what a field's input is described by (Fluent's hint and validation message). */
async function describedBy(field: ReturnType<Page["getByLabel"]>): Promise<string> {
  const ids = ((await field.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}
/** The names of the files a file input holds. */
const chosenFiles = (label: string) => page.getByLabel(label, { exact: true }).evaluate((el) => Array.from((el as HTMLInputElement).files ?? [], (f) => f.name));

it("creates a CMG through the wizard from PEM files; it turns Ready once its connection point reaches the instance", async () => {
  const clientPort = await freePortRange(1);
  const tunnelPort = await freePortRange(1);
  // axe-core in each state this test visits, dialogs open; all reported together at the end.
  const a11y: string[] = [];
  const check = async (state: string) => {
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await nav("Cloud Management Gateway").first().click();
  await page.getByRole("button", { name: "Create Cloud Management Gateway" }).click();

  // General
  await page.getByRole("heading", { level: 2, name: "General" }).waitFor();
  await page.getByRole("button", { name: "Next" }).click();
  // Settings: the certificate file fills Service name and Service FQDN.
  await page.getByRole("heading", { level: 2, name: "Settings" }).waitFor();
  await page.getByLabel("Certificate file", { exact: true }).setInputFiles(files.cert);
  await page.waitForFunction(() => (document.querySelector("input[value='cmg.contoso.test']") as HTMLInputElement | null) !== null);
  assert.equal(await page.getByLabel("Service FQDN", { exact: true }).inputValue(), "cmg.contoso.test");
  assert.equal(await page.getByLabel("Service name", { exact: true }).inputValue(), "cmg");
  await page.getByLabel("Private key file").setInputFiles(files.key);
  await page.getByText("Private key loaded").waitFor();
  await page.getByLabel("Trusted root certificate files (at most 2)").setInputFiles(files.root);
  await page.getByText("root-ca.pem").waitFor();
  await page.getByLabel("Intermediate certificate files (at most 4)").setInputFiles(files.intermediate);
  await page.getByText("intermediate-ca.pem").waitFor();
  // The CA files are listed by their certificates' subjects; the certificate by its subject and thumbprint.
  const thumbprint = createHash("sha1").update(new X509Certificate(pki.server.certPem).raw).digest("hex").toUpperCase();
  assert.match(await describedBy(page.getByLabel("Trusted root certificate files (at most 2)")), /^CN=OpenCMG Test Root CA \(root-ca\.pem\)$/);
  assert.match(await describedBy(page.getByLabel("Intermediate certificate files (at most 4)")), /^CN=OpenCMG Test Issuing CA \(intermediate-ca\.pem\)$/);
  assert.equal(await describedBy(page.getByLabel("Certificate file", { exact: true })), `Chosen: cmg-server.pem: CN=cmg.contoso.test, thumbprint ${thumbprint}`);

  // Three fields the site refuses, all on this page: each refusal beside its field at once, in the wizard's words.
  await page.getByLabel("Service name", { exact: true }).fill("bad name!");
  await page.getByLabel("Region", { exact: true }).fill("west europe");
  await page.getByLabel("Client port of the first instance").fill("70000");
  for (const p of ["Alerts", "Summary"]) {
    await page.getByRole("button", { name: "Next" }).click();
    await page.getByRole("heading", { level: 2, name: p }).waitFor();
  }
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { level: 2, name: "Settings" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[aria-invalid="true"]').length >= 3);
  assert.match(await describedBy(page.getByLabel("Service name", { exact: true })), /^Service name: must be 1-63 letters, digits or hyphens/);
  assert.match(await describedBy(page.getByLabel("Region", { exact: true })), /^Region: must be 1-90 letters/);
  assert.match(await describedBy(page.getByLabel("Client port of the first instance")), /^Client port of the first instance: must leave room for 16 instances/);
  await screenshot(page, "cmg-wizard-three-refusals");
  await check("Create Cloud Management Gateway wizard, Settings page with three fields the site refused, dialog open");
  // After the refused Create (the page mounted anew) the file fields still show their files.
  assert.deepEqual(await chosenFiles("Certificate file"), ["cmg-server.pem"]);
  assert.deepEqual(await chosenFiles("Private key file"), ["cmg-server.key"]);
  assert.deepEqual(await chosenFiles("Trusted root certificate files (at most 2)"), ["root-ca.pem"]);
  assert.equal(await describedBy(page.getByLabel("Certificate file", { exact: true })).then((t) => t.startsWith(`Chosen: cmg-server.pem: CN=cmg.contoso.test, thumbprint ${thumbprint}`)), true);
  await page.getByLabel("Service name", { exact: true }).fill("cmg");
  await page.getByLabel("Region", { exact: true }).fill("local");
  // The test PKI publishes no CRL here.
  await page.getByLabel("Verify Client Certificate Revocation").uncheck();
  await page.getByLabel("Listen address").fill("127.0.0.1");
  await page.getByLabel("Public host name (default: the service FQDN)").fill("127.0.0.1");
  await page.getByLabel("Client port of the first instance").fill(String(clientPort));
  await page.getByLabel("Tunnel port of the first instance").fill(String(tunnelPort));
  await screenshot(page, "cmg-wizard-settings-filled");
  await check("Create Cloud Management Gateway wizard, Settings page filled from PEM files, dialog open");
  await page.getByRole("button", { name: "Next" }).click();
  // Alerts: a threshold the site refuses comes back beside its field, on its page.
  await page.getByRole("heading", { level: 2, name: "Alerts" }).waitFor();
  // A round trip (to Alerts and back) keeps the chosen files shown in their fields.
  await page.getByRole("button", { name: "Previous" }).click();
  await page.getByRole("heading", { level: 2, name: "Settings" }).waitFor();
  assert.deepEqual(await chosenFiles("Certificate file"), ["cmg-server.pem"]);
  assert.deepEqual(await chosenFiles("Intermediate certificate files (at most 4)"), ["intermediate-ca.pem"]);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Alerts" }).waitFor();
  await page.getByLabel("Enable 14-day threshold for alerting").check();
  await page.getByLabel("14-day threshold (GB)").fill("0");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Summary" }).waitFor();
  await screenshot(page, "cmg-wizard-summary");
  await check("Create Cloud Management Gateway wizard, Summary page, dialog open");
  const v = await page.evaluate(() => document.querySelector("dl")?.textContent ?? "");
  assert.match(v, /Service FQDNcmg\.contoso\.test/);
  assert.match(v, /Trusted root certificatesCN=OpenCMG Test Root CA \(root-ca\.pem\)/);
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("heading", { level: 2, name: "Alerts" }).waitFor();
  const threshold = page.getByLabel("14-day threshold (GB)");
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  // The site's rule beside the field, named by the field's label (not the API's path).
  assert.match(await describedBy(threshold), /^14-day threshold \(GB\): must be a number of GB above 0$/);
  await check("Create Cloud Management Gateway wizard, Alerts page with a threshold the site refused, dialog open");
  assert.deepEqual(await site.services.cmgs.list(), [], "nothing created");
  await page.getByLabel("14-day threshold (GB)").fill("100");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByText("The cloud management gateway cmg is created.").waitFor();
  // The wizard closed on its own after Create: nothing keeps the page hidden from assistive technology.
  assert.equal(await contentHiddenAfterDialog(page), "");

  const created = await site.services.cmgs.show("cmg");
  assert.equal(created.serviceFqdn, "cmg.contoso.test");
  assert.equal(created.trustedRoots.length, 1);
  assert.equal(created.intermediates.length, 1);
  assert.equal(created.crlCheck, false);
  assert.deepEqual(created.deploy.trafficAlert, { thresholdGb: 100, warningPct: 50, criticalPct: 90, stopOnCritical: false });
  assert.equal(await page.getByTestId("status-cmg").textContent(), "Provisioning");
  await screenshot(page, "cmg-list-provisioning");

  // The connection point, added as the documents say: Servers and Site System Roles.
  await nav("Servers and Site System Roles").click();
  await page.getByLabel("Create Site System Server: FQDN").fill(CP);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("button", { name: `Properties of ${CP}` }).click();
  await page.getByRole("tab", { name: "Site System Roles" }).click();
  await page.getByRole("combobox", { name: "System role" }).click();
  await page.getByRole("option", { name: "CMG connection point" }).click();
  // The CMG is a choice among the site's CMGs, not free text.
  await page.getByLabel("Cloud management gateway name").selectOption("cmg");
  await page.getByRole("button", { name: "Add role" }).click();
  await page.getByRole("cell", { name: "CMG connection point" }).waitFor();
  await check(`Properties of ${CP}, Site System Roles tab with the connection point role, dialog open`);

  // What the local provider's start does: the instance from the CMG's start-up bundle; then the connection point role.
  const bundle = await writeCmgBundle(site, await site.services.cmgs.show("cmg"));
  // Metrics off: the wizard left its metrics port at the default (9440), which may be another test's.
  for (const f of bundle.files) instances.push(await startGatewayInstance({ ...loadStartupFile(f), metrics: null }, { log: gatewayLogs(site.logs) }));
  cp = await runConnectionPointRole(connectionPointRoleDeps(site), CP, { healthIntervalMs: 300, pollMs: 200 });

  await nav("Cloud Management Gateway").first().click();
  await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));
  await page.waitForFunction(() => document.querySelector('[data-testid="status-cmg"]')?.textContent === "Ready", undefined, { timeout: 180_000 });
  assert.equal(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded), true, "the Status column changed without a reload");
  assert.equal((await site.services.cmgs.show("cmg")).status, "Ready");
  await page.getByRole("cell", { name: CP }).waitFor();
  await screenshot(page, "cmg-list-ready");

  // The connection analyzer: one row per check the site ran (AnalyzeCheck), its status beside it.
  await page.getByRole("checkbox", { name: "Select cmg" }).check();
  await page.getByRole("button", { name: "Connection analyzer" }).click();
  const results = page.getByRole("table", { name: "Connection analyzer results" });
  await results.waitFor({ timeout: 60_000 });
  const expected = (await analyzeCmg({ cmgs: site.services.cmgs }, "cmg")).checks;
  const rows = await results.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].slice(0, 3).map((td) => td.textContent ?? "")));
  assert.deepEqual(rows, expected.map((c) => [c.check, c.instance === undefined ? "" : String(c.instance), c.status]));
  assert.ok(expected.some((c) => c.status === "pass"), JSON.stringify(expected));
  await screenshot(page, "cmg-connection-analyzer");
  await check("Connection analyzer, results shown, dialog open");
  // A client certificate without its key: the analyzer's message beside the key's field.
  await page.getByLabel("Client certificate file (PEM, optional)").setInputFiles(files.cert);
  await page.getByRole("button", { name: "Analyze again" }).click();
  const keyField = page.getByLabel("Its private key file (PEM)");
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  const keyIds = ((await keyField.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  const keyMessage = (await Promise.all(keyIds.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
  assert.match(keyMessage, /^Its private key file \(PEM\): the client certificate and its key go together( |$)/);
  await check("Connection analyzer, a client certificate without its key refused, dialog open");
  await page.getByRole("button", { name: "Close" }).click();

  // Monitoring shows the instance and its tunnel from the connection point, and the 14-day traffic per role.
  await site.services.cmgTraffic.record("cmg", CP, [
    { instance: 0, roleKind: "mp", requests: 3, failed: 0, bytesToClients: 3000, bytesFromClients: 100 },
    { instance: 0, roleKind: "sup", requests: 1, failed: 0, bytesToClients: 2048, bytesFromClients: 10 },
  ]);
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Cloud Management Gateway" }).nth(1).click();
  await page.getByText(`${CP}: connected`).waitFor();
  const chart = page.getByRole("img", { name: /^Outbound traffic per day over the last 14 days, per role/ });
  assert.equal(await chart.getAttribute("aria-label"), "Outbound traffic per day over the last 14 days, per role: Management point, Software update point");
  assert.equal(await chart.locator("g").count(), 14, "a bar group per day");
  assert.match((await page.locator("figcaption").textContent()) ?? "", /Management point: 2\.9 KB.*Software update point: 2\.0 KB/);
  // Connected clients: those whose last contact came over the internet; the count follows without a reload.
  assert.match((await page.getByTestId("internet-clients").textContent()) ?? "", /: 0$/);
  await site.services.clients.requestRegistration({ name: "PC01", connectionType: "internet" });
  await site.services.clients.requestRegistration({ name: "PC02", connectionType: "intranet" });
  await site.services.status.raise({ messageId: 500, severity: "informational", component: "SMS_TEST", server: CP, text: "a change the live feed reports" });
  await page.waitForFunction(() => document.querySelector('[data-testid="internet-clients"]')?.textContent?.endsWith(": 1") === true);
  await screenshot(page, "monitoring-cmg");
  await check("Monitoring > Cloud Management Gateway, a connection point connected, traffic and clients shown");
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});

