/**
 * Administration > Client Settings in a real browser: the default client settings as
 * `opencmg site clients settings` shows them; a refused interval shown beside its field with the
 * field's label and nothing saved; then the CMG for clients, always on the internet and both
 * intervals changed with OK, and `opencmg site clients settings --json`, run in another process,
 * agrees. No serious or critical accessibility violation in any state visited.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import type { ClientSettings } from "../../../src/site/services/clients.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { accessibilityFailures, launchBrowser, screenshot, settle } from "../../helpers/browser.ts";

let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;

before(async () => {
  dataDir = join(tempDir("opencmg-console-client-settings-"), "data");
  site = await openSite({ dataDir });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console client settings" });
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

/** `opencmg site clients settings --json` in another process. */
function cliSettings(): Promise<ClientSettings> {
  return binJson(["--data", dataDir, "site", "clients", "settings"]);
}

async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

it("Client Settings shows the site's settings, names a refused interval by its label, and saves what `site clients settings` then shows", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Client Settings", exact: true }).click();
  const form = page.getByRole("form", { name: "Client settings" });
  const useCmg = form.getByLabel("Enable clients to use a cloud management gateway");
  const always = form.getByLabel("Client is always on the internet (ClientAlwaysOnInternet)");
  const location = form.getByLabel("Location request interval (minutes)");
  const policy = form.getByLabel("Client policy polling interval (minutes)");
  await useCmg.waitFor();
  const before = await cliSettings();
  assert.equal(await useCmg.isChecked(), before.useCmg);
  assert.equal(await always.isChecked(), before.alwaysOnInternet);
  assert.equal(await location.inputValue(), String(before.locationIntervalMinutes));
  assert.equal(await policy.inputValue(), String(before.policyIntervalMinutes));
  await check("Client Settings as the site has them");

  // Both intervals refused: each beside its field at once, by its label.
  await location.fill("0");
  await policy.fill("0");
  await form.getByRole("button", { name: "OK" }).click();
  await page.waitForFunction(() => document.querySelectorAll('[aria-invalid="true"]').length >= 2);
  // The field's hint follows its message in what the input is described by.
  assert.match(await messageOf(policy), /^Client policy polling interval \(minutes\): must be from 1 to 10080 minutes 1 to 10080; the default is 60\.$/);
  assert.match(await messageOf(location), /^Location request interval \(minutes\): must be from 1 to 10080 minutes 1 to 10080; the default 1440/);
  assert.equal(await policy.getAttribute("aria-invalid"), "true");
  assert.equal(await location.getAttribute("aria-invalid"), "true");
  await check("Client Settings with both intervals the site refused");
  assert.deepEqual(await cliSettings(), before, "nothing saved");

  await useCmg.setChecked(!before.useCmg);
  await always.setChecked(!before.alwaysOnInternet);
  await location.fill("720");
  await policy.fill("30");
  await form.getByRole("button", { name: "OK" }).click();
  await page.getByText("The client settings are saved").waitFor();
  assert.equal(await policy.getAttribute("aria-invalid"), null);
  await check("Client Settings saved");
  await screenshot(page, "client-settings");
  assert.deepEqual(await cliSettings(), { useCmg: !before.useCmg, alwaysOnInternet: !before.alwaysOnInternet, locationIntervalMinutes: 720, policyIntervalMinutes: 30 });
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});
