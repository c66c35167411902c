/**
 * Administration > Security > Bulk Registration Tokens in a real browser, as `opencmg token
 * create-bulk|list-bulk|revoke-bulk`: a refused lifetime shown beside its field with the field's
 * label and nothing created; a token created with a lifetime and a maximum of devices, shown once
 * with Copy (the clipboard holds it; its ID is the token's), then gone from the page after Done and
 * after a reload; revoked from the list. `opencmg token list-bulk --json`, run in another process,
 * agrees with each step. No serious or critical accessibility violation in any state visited.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { accessibilityFailures, launchBrowser, screenshot, settle } from "../../helpers/browser.ts";

interface ListedBulk {
  id: string;
  state: string;
  maxUses: number | null;
  devices: number;
  expiresAt: string;
  createdAt: string;
}

let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;

before(async () => {
  dataDir = join(tempDir("opencmg-console-bulk-tokens-"), "data");
  site = await openSite({ dataDir });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console bulk tokens" });
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(server.consoleUrl).origin });
  page = await context.newPage();
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(adminToken);
  await page.getByRole("button", { name: "Sign in" }).click();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
});

/** `opencmg token list-bulk --json` in another process. */
function cliList(): Promise<ListedBulk[]> {
  return binJson(["--data", dataDir, "token", "list-bulk"]);
}

async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

it("creates a bulk token shown once and copyable, lists it without the token, and revokes it; token list-bulk agrees", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  const openPage = () => page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Bulk Registration Tokens", exact: true }).click();
  await openPage();
  const form = page.getByRole("form", { name: "Create Bulk Registration Token" });
  const lifetime = form.getByLabel("Lifetime (minutes)");
  const maxUses = form.getByLabel("Maximum number of devices");
  await page.getByText("No bulk registration token.").waitFor();
  await check("Bulk Registration Tokens, none yet");

  await lifetime.fill("0");
  await form.getByRole("button", { name: "Create" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.match(await messageOf(lifetime), /^Lifetime \(minutes\): must be /);
  assert.equal(await lifetime.getAttribute("aria-invalid"), "true");
  await check("Bulk Registration Tokens with a lifetime the site refused");
  assert.deepEqual(await cliList(), [], "nothing created");

  await lifetime.fill("90");
  await maxUses.fill("5");
  await form.getByRole("button", { name: "Create" }).click();
  const tokenField = page.getByLabel("Bulk registration token", { exact: true });
  await tokenField.waitFor();
  const token = await tokenField.inputValue();
  const listed = await cliList();
  assert.equal(listed.length, 1);
  const [made] = listed;
  assert.equal(made!.state, "active");
  assert.equal(made!.maxUses, 5);
  // The expiry is the token's, in whole seconds: 90 minutes after creation, give or take that second.
  assert.equal(Math.round((new Date(made!.expiresAt).getTime() - new Date(made!.createdAt).getTime()) / 60_000), 90);
  const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as { jti: string };
  assert.equal(claims.jti, made!.id, "the token shown is the one listed");
  await page.getByRole("button", { name: "Copy", exact: true }).click();
  await page.getByText("Copied.").waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
  const table = page.getByRole("table", { name: "Bulk registration tokens" });
  await table.getByRole("button", { name: `Revoke ${made!.id}` }).waitFor();
  assert.ok(!((await table.textContent()) ?? "").includes(token), "the list never holds the token");
  await check("Bulk Registration Tokens, a token just created and shown once");
  await screenshot(page, "bulk-token-created");

  await page.getByRole("button", { name: "Done", exact: true }).click();
  await tokenField.waitFor({ state: "detached" });
  assert.ok(!(await page.content()).includes(token), "not on the page after Done");
  await page.reload();
  await table.getByRole("button", { name: `Revoke ${made!.id}` }).waitFor();
  assert.ok(!(await page.content()).includes(token), "not on the page after a reload");

  await table.getByRole("button", { name: `Revoke ${made!.id}` }).click();
  await page.waitForFunction((id) => (document.querySelector(`button[aria-label="Revoke ${id}"]`) as HTMLButtonElement | null)?.disabled === true, made!.id);
  assert.equal((await cliList())[0]!.state, "revoked");
  assert.match((await table.textContent()) ?? "", /revoked/);
  await check("Bulk Registration Tokens, the token revoked");
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});
