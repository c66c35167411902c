/**
 * The Create Cloud Management Gateway wizard's metrics port and stop-on-critical fields in a real
 * browser: a metrics port the site refuses takes the wizard back to Settings with the message
 * beside the field and its label; the Kubernetes provider (pods use their own metrics port) shows
 * no metrics fields; a CMG created with a metrics port and address and "Stop this service when it
 * exceeds the critical threshold" is what `opencmg cmg show --json`, run in another process,
 * shows. No serious or critical accessibility violation in any state visited.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { accessibilityFailures, launchBrowser, screenshot, settle } from "../../helpers/browser.ts";

let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let files: { cert: string; key: string; root: string };

before(async () => {
  const dir = tempDir("opencmg-console-cmg-wizard-metrics-");
  dataDir = join(dir, "data");
  const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  files = { cert: join(dir, "cmg-server.pem"), key: join(dir, "cmg-server.key"), root: join(dir, "root-ca.pem") };
  writeFileSync(files.cert, pki.server.certPem);
  writeFileSync(files.key, pki.server.keyPem, { mode: 0o600 });
  writeFileSync(files.root, pki.root.certPem);
  site = await openSite({ dataDir });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console wizard metrics" });
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

interface Shown {
  deploy: { metricsPortBase: number; metricsHost?: string; trafficAlert: unknown };
}

/** `opencmg cmg show cmg --json` in another process. */
function cliShow(): Promise<Shown> {
  return binJson(["--data", dataDir, "cmg", "show", "cmg"]);
}

async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

const chooseProvider = async (name: RegExp) => {
  await page.getByRole("combobox", { name: "Provider" }).click();
  await page.getByRole("option", { name }).click();
};

it("the wizard sets the metrics port and stop on critical; a refused port is named by its label; cmg show agrees", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Cloud Management Gateway", exact: true }).first().click();
  await page.getByRole("button", { name: "Create Cloud Management Gateway" }).click();
  await page.getByRole("heading", { level: 2, name: "General" }).waitFor();
  const metricsPort = page.getByLabel("Metrics port of the first instance (0: none)");
  const metricsHost = page.getByLabel("Metrics bind address");

  // Kubernetes: pods serve metrics on their own port, so the wizard asks for none.
  await chooseProvider(/^Kubernetes/);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByLabel("Kubeconfig path").waitFor();
  assert.equal(await metricsPort.count(), 0, "no metrics port for the Kubernetes provider");
  await page.getByRole("button", { name: "Previous" }).click();

  await chooseProvider(/^External/);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Settings" }).waitFor();
  await page.getByLabel("Certificate file", { exact: true }).setInputFiles(files.cert);
  await page.waitForFunction(() => (document.querySelector("input[value='cmg.contoso.test']") as HTMLInputElement | null) !== null);
  await page.getByLabel("Private key file").setInputFiles(files.key);
  await page.getByText("Private key loaded").waitFor();
  await page.getByLabel("Trusted root certificate files (at most 2)").setInputFiles(files.root);
  await page.getByText("root-ca.pem").waitFor();
  await page.getByLabel("Verify Client Certificate Revocation").uncheck();
  assert.equal(await metricsPort.inputValue(), "9440", "the command line's default");
  await metricsPort.fill("70000");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Alerts" }).waitFor();
  await page.getByLabel("Enable 14-day threshold for alerting").check();
  await page.getByLabel("14-day threshold (GB)").fill("100");
  await page.getByLabel("Stop this service when it exceeds the critical threshold").check();
  await check("Create Cloud Management Gateway wizard, Alerts page with stop on critical, dialog open");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Summary" }).waitFor();
  assert.match((await page.getByRole("dialog").locator("dl").textContent()) ?? "", /critical at 90%, the service stops at critical/);
  await page.getByRole("button", { name: "Create" }).click();

  // The site refuses the port: back on Settings, the message beside the field, with its label.
  await page.getByRole("heading", { level: 2, name: "Settings" }).waitFor();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.match(await messageOf(metricsPort), /^Metrics port of the first instance \(0: none\): /);
  assert.equal(await metricsPort.getAttribute("aria-invalid"), "true");
  await check("Create Cloud Management Gateway wizard, Settings page with a metrics port the site refused, dialog open");
  assert.deepEqual(await site.services.cmgs.list(), [], "nothing created");

  await metricsPort.fill("9500");
  await metricsHost.fill("0.0.0.0");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Summary" }).waitFor();
  assert.match((await page.getByRole("dialog").locator("dl").textContent()) ?? "", /Metrics0\.0\.0\.0:9500/);
  await screenshot(page, "cmg-wizard-metrics-summary");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByText("The cloud management gateway cmg is created.").waitFor();
  const shown = await cliShow();
  assert.equal(shown.deploy.metricsPortBase, 9500);
  assert.equal(shown.deploy.metricsHost, "0.0.0.0");
  assert.deepEqual(shown.deploy.trafficAlert, { thresholdGb: 100, warningPct: 50, criticalPct: 90, stopOnCritical: true });
  await check("Cloud Management Gateway list after the wizard created cmg");
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});
