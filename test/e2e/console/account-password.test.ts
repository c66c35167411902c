/**
 * Administration > Security > Accounts > Set password in a real browser, as `opencmg account
 * set-password`: two typings that differ and an empty password refused beside their fields with
 * the fields' labels (nothing changed); then a new password and user name saved: the site opens
 * the account with the new password, `opencmg account list --json` in another process shows the
 * new user name, and the password is nowhere in the page. No serious or critical accessibility
 * violation in any state visited.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { accessibilityFailures, launchBrowser, screenshot, settle } from "../../helpers/browser.ts";

const ACCOUNT = "proxy-account";
const NEW_PASSWORD = "N3w-Pr0xy-S3cret!";
let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;

before(async () => {
  dataDir = join(tempDir("opencmg-console-account-password-"), "data");
  site = await openSite({ dataDir });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console account password" });
  await site.services.accounts.add(ACCOUNT, "CONTOSO\\svc-proxy", "0ld-S3cret");
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

/** `opencmg account list --json` in another process. */
function cliAccounts(): Promise<{ name: string; username: string }[]> {
  return binJson(["--data", dataDir, "account", "list"]);
}

async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

it("Set password refuses by field label, then changes the password and user name; the site and account list agree", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Accounts", exact: true }).click();
  await page.getByRole("button", { name: `Set password of ${ACCOUNT}` }).click();
  const dialog = page.getByRole("dialog", { name: `Set password: ${ACCOUNT}` });
  const username = dialog.getByLabel("User name", { exact: true });
  const password = dialog.getByLabel("New password", { exact: true });
  const confirm = dialog.getByLabel("Confirm password", { exact: true });
  assert.equal(await username.inputValue(), "CONTOSO\\svc-proxy");
  await check("Accounts, Set password dialog open");

  await password.fill(NEW_PASSWORD);
  await confirm.fill("something else");
  await dialog.getByRole("button", { name: "OK" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.match(await messageOf(confirm), /^Confirm password: must be the same as New password/);
  await check("Accounts, Set password with two typings that differ");

  await password.fill("");
  await confirm.fill("");
  await dialog.getByRole("button", { name: "OK" }).click();
  await page.waitForFunction(() => document.querySelector('input[type="password"][aria-invalid="true"]') !== null && document.querySelectorAll('[aria-invalid="true"]').length === 1);
  assert.match(await messageOf(password), /^New password: must not be empty/);
  assert.equal(await password.getAttribute("aria-invalid"), "true");
  await check("Accounts, Set password with an empty password the site refused");
  assert.equal((await site.services.accounts.credentials(ACCOUNT)).password, "0ld-S3cret", "nothing changed");

  await username.fill("CONTOSO\\svc-proxy2");
  await password.fill(NEW_PASSWORD);
  await confirm.fill(NEW_PASSWORD);
  await dialog.getByRole("button", { name: "OK" }).click();
  await dialog.waitFor({ state: "detached" });
  await page.getByText(`The password of ${ACCOUNT} is changed.`).waitFor();
  await page.getByRole("table", { name: "Accounts" }).getByText("CONTOSO\\svc-proxy2", { exact: true }).waitFor();
  await check("Accounts, password changed");
  await screenshot(page, "account-password-changed");
  assert.ok(!(await page.content()).includes(NEW_PASSWORD), "the password is not kept in the page");
  assert.deepEqual(await site.services.accounts.credentials(ACCOUNT), { username: "CONTOSO\\svc-proxy2", password: NEW_PASSWORD });
  assert.deepEqual((await cliAccounts()).map((a) => ({ name: a.name, username: a.username })), [{ name: ACCOUNT, username: "CONTOSO\\svc-proxy2" }]);
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});
