/**
 * Administration > Site Configuration > Sites, the primary site's Properties, tab Client Computer
 * Communication, in a real browser: both checkboxes as `opencmg site client-communication` shows
 * them, both cleared with OK, and the CLI, run in another process, agrees; a Read-only Analyst sees
 * them disabled with the reason. No serious or critical accessibility violation in the states visited.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import type { ClientCommunication } from "../../../src/site/services/sites.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { accessibilityFailures, launchBrowser, settle } from "../../helpers/browser.ts";

const PKI = "Use PKI client certificate (client authentication capability) when available";
const CRL = "Clients check the certificate revocation list (CRL) for site systems";
let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let adminToken: string;
let analystToken: string;

before(async () => {
  dataDir = join(tempDir("opencmg-console-commsec-"), "data");
  site = await openSite({ dataDir });
  adminToken = (await initSite(site, { code: "P01", name: "Console client communication" })).adminToken;
  analystToken = (await site.services.adminTokens.create("analyst", { role: "read-only-analyst" })).token;
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
});

/** `opencmg site client-communication --json` in another process. */
function cli(): Promise<ClientCommunication> {
  return binJson(["--data", dataDir, "site", "client-communication"]);
}

async function signedIn(token: string): Promise<Page> {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Sites", exact: true }).click();
  await page.getByRole("button", { name: "Properties of site P01" }).click();
  await page.getByRole("tab", { name: "Client Computer Communication" }).waitFor();
  return page;
}

it("the Client Computer Communication tab shows and saves both settings, which the CLI then shows; an analyst sees them disabled", async () => {
  const a11y: string[] = [];
  const check = async (page: Page, state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  const page = await signedIn(adminToken);
  const form = page.getByRole("form", { name: "Client Computer Communication" });
  const pki = form.getByLabel(PKI);
  const crl = form.getByLabel(CRL);
  await pki.waitFor();
  assert.deepEqual(await cli(), { usePkiClientCertificate: true, clientsCheckCrl: true });
  assert.equal(await pki.isChecked(), true);
  assert.equal(await crl.isChecked(), true);
  await check(page, "Client Computer Communication as the site has it");

  await pki.setChecked(false);
  await crl.setChecked(false);
  await form.getByRole("button", { name: "OK" }).click();
  await form.getByRole("status").waitFor();
  assert.deepEqual(await cli(), { usePkiClientCertificate: false, clientsCheckCrl: false });
  await check(page, "Client Computer Communication saved");

  const analyst = await signedIn(analystToken);
  const aForm = analyst.getByRole("form", { name: "Client Computer Communication" });
  await aForm.getByLabel(CRL).waitFor();
  for (const box of [aForm.getByLabel(PKI), aForm.getByLabel(CRL)]) {
    assert.equal(await box.isChecked(), false, "the analyst reads what the site has");
    assert.equal(await box.isDisabled(), true);
  }
  const ok = aForm.getByRole("button", { name: "OK" });
  assert.equal(await ok.isDisabled(), true);
  assert.match((await ok.getAttribute("title")) ?? "", /analyst is a Read-only Analyst: only a Full Administrator changes .*client computer communication\./);
  await check(analyst, "Client Computer Communication as a Read-only Analyst");
  assert.deepEqual(a11y, []);
});
