/**
 * A CMG's Properties in a real browser, for what only the command line could change before: the
 * trusted root and intermediate certificates (listed by subject; one added from a file, one
 * removed) and the Alerts tab (14-day threshold, its percentages, stop on critical; a refused
 * value shown beside its field with the field's label). `opencmg cmg show --json`, run in another
 * process, agrees with each change.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { createCa } from "../../../src/pki/issue.ts";
import type { CmgView } from "../../../src/site/services/cmg-model.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { accessibilityFailures, contentHiddenAfterDialog, launchBrowser, screenshot } from "../../helpers/browser.ts";

let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let pki: TestPki;
let secondRootFile: string;

before(async () => {
  const dir = tempDir("opencmg-console-cmg-properties-");
  dataDir = join(dir, "data");
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  const second = await createCa({ commonName: "Contoso Second Root CA" });
  secondRootFile = join(dir, "second-root.pem");
  writeFileSync(secondRootFile, second.certPem);
  site = await openSite({ dataDir });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console CMG properties" });
  await site.services.cmgs.create({ name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, trustedRoots: [pki.root.certPem], intermediates: [pki.intermediate.certPem], crlCheck: false, provider: "external", deploy: { metricsPortBase: 0 } });
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
});

/** `opencmg cmg show cmg1 --json` in another process. */
function cliShow(): Promise<CmgView & { deploy: { trafficAlert: unknown } }> {
  return binJson(["--data", dataDir, "cmg", "show", "cmg1"]);
}

async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

const openProperties = async () => {
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Cloud Management Gateway", exact: true }).first().click();
  await page.getByRole("button", { name: "Properties of cmg1", exact: true }).click();
  return page.getByRole("dialog", { name: "cmg1 Properties" });
};

it("the Trusted roots tab lists the CMG's CAs by subject, adds one from a file and removes one; cmg show agrees", async () => {
  const a11y: string[] = [];
  const dialog = await openProperties();
  await dialog.getByRole("tab", { name: "Trusted roots" }).click();
  const roots = dialog.getByRole("list", { name: "Trusted root certificates" });
  const intermediates = dialog.getByRole("list", { name: "Intermediate certificates" });
  assert.match((await roots.textContent()) ?? "", /OpenCMG Test Root CA/);
  assert.match((await intermediates.textContent()) ?? "", /OpenCMG Test Issuing CA/);
  await dialog.getByLabel("Add trusted root certificate files").setInputFiles(secondRootFile);
  await roots.getByText("CN=Contoso Second Root CA, added on OK").waitFor();
  await dialog.getByRole("button", { name: /^Remove .*OpenCMG Test Issuing CA/ }).click();
  await intermediates.getByText(/removed on OK/).waitFor();
  const f = await accessibilityFailures(page, "cmg1 Properties, Trusted roots tab with a root added and an intermediate removed, dialog open");
  if (f) a11y.push(f);
  await screenshot(page, "cmg-properties-trusted-roots");
  await dialog.getByRole("button", { name: "OK" }).click();
  await dialog.waitFor({ state: "detached" });
  // The dialog went away while open (its page removes it on save): the page is readable again.
  assert.equal(await contentHiddenAfterDialog(page), "");
  const shown = await cliShow();
  const subjects = shown.trustedRoots.map((c) => c.subject);
  assert.equal(subjects.length, 2, JSON.stringify(subjects));
  assert.ok(subjects.some((x) => x.includes("OpenCMG Test Root CA")) && subjects.some((x) => x.includes("Contoso Second Root CA")), JSON.stringify(subjects));
  assert.deepEqual(shown.intermediates, []);
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});

it("the Alerts tab sets the 14-day threshold and stop on critical; a refused value names its field's label; cmg show agrees", async () => {
  const a11y: string[] = [];
  const dialog = await openProperties();
  await dialog.getByRole("tab", { name: "Alerts" }).click();
  await dialog.getByLabel("Enable 14-day threshold for alerting").check();
  const threshold = dialog.getByLabel("14-day threshold (GB)");
  await threshold.fill("0");
  await dialog.getByRole("button", { name: "Save alerts" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.equal(await messageOf(threshold), "14-day threshold (GB): must be a number of GB above 0");
  let f = await accessibilityFailures(page, "cmg1 Properties, Alerts tab with a threshold the site refused, dialog open");
  if (f) a11y.push(f);
  assert.equal((await cliShow()).deploy.trafficAlert, null, "nothing saved");
  await threshold.fill("100");
  await dialog.getByLabel("Percentage of threshold for Warning alert").fill("60");
  await dialog.getByLabel("Percentage of threshold for Critical alert").fill("95");
  await dialog.getByLabel("Stop this service when it exceeds the critical threshold").check();
  await dialog.getByRole("button", { name: "Save alerts" }).click();
  await dialog.getByText("The alert is saved.").waitFor();
  f = await accessibilityFailures(page, "cmg1 Properties, Alerts tab saved, dialog open");
  if (f) a11y.push(f);
  await screenshot(page, "cmg-properties-alerts");
  assert.deepEqual((await cliShow()).deploy.trafficAlert, { thresholdGb: 100, warningPct: 60, criticalPct: 95, stopOnCritical: true });
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});
