/**
 * The administration console in a real browser (Debian's chromium through playwright-core) against
 * a real site server: sign-in and the session cookie, the Proxy tab of document 003 with a new
 * account (and `opencmg proxy show` in another process agreeing), a field's error from the API shown
 * next to the field, a component turning Critical and back without a reload, and axe-core on every
 * page. Screenshots of the main pages go to test-artifacts/console/.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, it } from "node:test";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { tempDir } from "../../helpers/databases.ts";
import { OPENCMG_BIN } from "../../helpers/bin.ts";
import { accessibilityFailures, contentHiddenAfterDialog, launchBrowser, screenshot } from "../../helpers/browser.ts";

const SUP = "sup01.contoso.test";
let dataDir: string;
let site: OpenedSite;
let token: string;
let server: RunningSiteServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;

before(async () => {
  dataDir = tempDir("opencmg-console-");
  site = await openSite({ dataDir });
  token = (await initSite(site, { code: "P01", name: "Console test site" })).adminToken;
  await site.services.servers.add({ fqdn: SUP });
  await site.services.roles.add(SUP, "software-update-point", {});
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  browser = await launchBrowser();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
});

const nav = (label: string) => page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: label, exact: true });

/** The validation message Fluent's Field ties to a control (aria-describedby), or "". */
async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  const texts = await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()));
  return texts.join(" ");
}

it("serves the console with a strict Content-Security-Policy and no inline script", async () => {
  const res = await fetch(server.consoleUrl);
  assert.equal(res.status, 200);
  const csp = res.headers.get("content-security-policy") ?? "";
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /frame-ancestors 'none'/);
  const html = await res.text();
  assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/, "every script is a file");
  const deep = await fetch(new URL("/monitoring/component-status", server.consoleUrl));
  assert.equal(deep.status, 200, "a page's URL opens the console");
  assert.equal((await fetch(new URL("/api/v1/nothing-here", server.consoleUrl), { headers: { authorization: `Bearer ${token}` } })).status, 404);
});

it("signs in with the admin token: a wrong one is refused next to the field; the session cookie is HttpOnly, Secure and SameSite=Strict", async () => {
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill("not-the-token");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("this is not a valid admin token").waitFor();
  assert.match(await messageOf(page.getByLabel("Admin token")), /not a valid admin token/);
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await nav("Sites").waitFor();
  const cookie = (await context.cookies()).find((c) => c.name === "opencmg_session");
  assert.ok(cookie, "session cookie set");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.secure, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.ok(!cookie.value.includes(token), "the cookie is not the token");

  // A change with the cookie but without the session's CSRF header is refused, and nothing changes.
  const refused = await page.evaluate(async () => {
    const r = await fetch("/api/v1/servers", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ fqdn: "csrf.contoso.test" }) });
    return r.status;
  });
  assert.equal(refused, 403);
  assert.ok(!(await site.services.servers.list()).some((s) => s.fqdn === "csrf.contoso.test"));
  // Reads work with the cookie alone.
  const read = await page.evaluate(async () => (await fetch("/api/v1/servers")).status);
  assert.equal(read, 200);
});

it("Servers and Site System Roles > Properties > Proxy: a proxy with a new account and the software update point's options; opencmg proxy show agrees", async () => {
  await nav("Servers and Site System Roles").click();
  await page.getByRole("button", { name: `Properties of ${SUP}` }).click();
  await page.getByRole("tab", { name: "Proxy" }).click();
  await page.getByLabel("Use a proxy server when synchronizing information from the internet").check();
  await page.getByLabel("Proxy server name", { exact: true }).fill("proxy.contoso.test");
  assert.equal(await page.getByLabel("Port", { exact: true }).inputValue(), "80", "port 80 by default");
  // A bad proxy server name and a bad port: the site's rules beside both fields at once, in the tab's words.
  await page.getByLabel("Proxy server name", { exact: true }).fill("http://proxy.contoso.test");
  await page.getByLabel("Port", { exact: true }).fill("99999");
  await page.getByRole("button", { name: "OK" }).click();
  await page.waitForFunction(() => document.querySelectorAll('[aria-invalid="true"]').length >= 2);
  assert.match(await messageOf(page.getByLabel("Port", { exact: true })), /^Port: must be from 1 to 65535$/);
  assert.match(await messageOf(page.getByLabel("Proxy server name", { exact: true })), /^Proxy server name: must be a host name or FQDN, not a URL( The host name|$)/);
  const a11y = await accessibilityFailures(page, "Proxy tab with two fields the site refused");
  assert.equal(a11y, "", a11y);
  assert.equal(await site.services.proxies.show(SUP), null, "nothing saved");

  await page.getByLabel("Proxy server name", { exact: true }).fill("proxy.contoso.test");
  await page.getByLabel("Port", { exact: true }).fill("8080");
  await page.getByLabel("Use credentials to connect to the proxy server").check();
  await page.getByRole("radio", { name: "New Account" }).check();
  await page.getByLabel("User name", { exact: true }).fill("CONTOSO\\svc-proxy");
  await page.getByLabel("Password", { exact: true }).fill("Pr0xy-S3cret!");
  await page.getByLabel("Use a proxy server when synchronizing software updates").check();
  await page.getByRole("button", { name: "OK" }).click();
  await page.getByText("The proxy server configuration is saved.").waitFor();
  await screenshot(page, "proxy-tab");
  assert.ok(!(await page.content()).includes("Pr0xy-S3cret!"), "the password is not kept in the page");

  const show = spawnSync(process.execPath, [OPENCMG_BIN, "--data", dataDir, "proxy", "show", SUP, "--json"], { encoding: "utf8", timeout: 60_000 });
  assert.equal(show.status, 0, show.stderr);
  assert.deepEqual(JSON.parse(show.stdout), { server: SUP, enabled: true, host: "proxy.contoso.test", port: 8080, account: "CONTOSO\\svc-proxy" });
  const sup = (await site.services.roles.list(SUP)).find((r) => r.kind === "software-update-point");
  assert.equal(sup?.kind === "software-update-point" && sup.settings.useProxyForSync, true);
  assert.equal(sup?.kind === "software-update-point" && sup.settings.useProxyForAdr, false);
});

it("Accounts: three fields the site refuses are shown beside their fields at once, by their labels; nothing is created", async () => {
  await nav("Accounts").click();
  await page.getByRole("heading", { level: 1, name: "Accounts" }).waitFor();
  const name = page.getByLabel("Account name", { exact: true });
  const username = page.getByLabel("User name", { exact: true });
  const password = page.getByLabel("Password", { exact: true });
  await name.fill(" padded ");
  await username.fill("");
  await password.fill("");
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.waitForFunction(() => document.querySelectorAll('[aria-invalid="true"]').length >= 3);
  assert.equal(await messageOf(name), "Account name: must not start or end with spaces");
  assert.equal(await messageOf(username), "User name: must not be empty");
  assert.equal(await messageOf(password), "Password: must not be empty");
  for (const f of [name, username, password]) assert.equal(await f.getAttribute("aria-invalid"), "true");
  await screenshot(page, "accounts-three-refusals");
  const a11y = await accessibilityFailures(page, "Accounts with three fields the site refused");
  assert.equal(a11y, "", a11y);
  assert.ok(!(await site.services.accounts.list()).some((a) => a.name.includes("padded")), "nothing created");
});

it("Component Status follows a component turning Critical and back without a reload", async () => {
  await site.services.status.setComponent(SUP, "SMS_WSUS_SYNC_MANAGER", "OK", "synchronized");
  await nav("Component Status").click();
  const badge = page.getByTestId(`component-${SUP}-SMS_WSUS_SYNC_MANAGER`);
  await badge.waitFor();
  assert.equal(await badge.textContent(), "OK");
  await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));
  await site.services.status.setComponent(SUP, "SMS_WSUS_SYNC_MANAGER", "Critical", "synchronization failed: 12007");
  await page.waitForFunction((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent === "Critical", `component-${SUP}-SMS_WSUS_SYNC_MANAGER`);
  await page.getByText("synchronization failed: 12007").waitFor();
  await screenshot(page, "component-status");
  await site.services.status.setComponent(SUP, "SMS_WSUS_SYNC_MANAGER", "OK", "synchronized again");
  await page.waitForFunction((id) => document.querySelector(`[data-testid="${id}"]`)?.textContent === "OK", `component-${SUP}-SMS_WSUS_SYNC_MANAGER`);
  assert.equal(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded), true, "the page was not reloaded");
});

it("every page passes the accessibility check (axe-core) and works from the keyboard", async () => {
  // Under the console's own Content-Security-Policy: axe goes in through the DevTools protocol.
  await page.goto(server.consoleUrl);
  await site.services.status.raise({ messageId: 11488, severity: "error", component: "SMS_SERVICE_CONNECTOR", server: SUP, text: "Failed to reach 1 internet endpoint(s)" });
  const pages: [string, string][] = [
    ["Sites", "sites"],
    ["Servers and Site System Roles", "servers"],
    ["Accounts", "accounts"],
    ["Cloud Management Gateway", "cloud-management-gateway"],
    ["Component Status", "component-status"],
    ["Status Messages", "status-messages"],
    ["Clients", "clients"],
    ["Internet endpoints", "internet-endpoints"],
  ];
  const failures: string[] = [];
  const check = async (state: string) => {
    const f = await accessibilityFailures(page, state);
    if (f) failures.push(f);
  };
  for (const [label, shot] of pages) {
    await nav(label).first().click();
    await page.getByRole("heading", { level: 1, name: label }).waitFor();
    await page.waitForFunction(() => !document.querySelector('[role="progressbar"]'));
    await check(`${label} page, loaded`);
    await screenshot(page, shot);
  }
  // The Monitoring workspace's CMG node has the same label as the Administration one.
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Cloud Management Gateway" }).nth(1).click();
  await page.waitForURL(/monitoring\/cloud-management-gateway/);
  await check("Monitoring > Cloud Management Gateway, loaded");
  // The Proxy tab and the wizard's pages, each with its dialog open.
  await nav("Servers and Site System Roles").click();
  await page.getByRole("button", { name: `Properties of ${SUP}` }).click();
  await page.getByRole("tab", { name: "Proxy" }).click();
  await page.getByLabel("Proxy server name", { exact: true }).waitFor();
  await check(`Properties of ${SUP}, Proxy tab, dialog open`);
  await page.keyboard.press("Escape");
  await page.getByRole("dialog").waitFor({ state: "detached" });
  await nav("Cloud Management Gateway").first().click();
  await page.getByRole("button", { name: "Create Cloud Management Gateway" }).click();
  const visited: string[] = [];
  for (const step of ["General", "Settings", "Alerts"]) {
    await page.getByRole("heading", { level: 2, name: step }).waitFor();
    await check(`Create Cloud Management Gateway wizard, ${step} page, dialog open`);
    visited.push(step);
    if (step === "General") await screenshot(page, "cmg-wizard-general");
    if (step === "Settings") {
      await screenshot(page, "cmg-wizard-settings");
      break;
    }
    await page.getByRole("button", { name: "Next" }).click();
  }
  assert.deepEqual(visited, ["General", "Settings"], "the wizard's pages were all checked");
  await page.keyboard.press("Escape");
  assert.deepEqual(failures, [], failures.join("\n\n"));

  // Keyboard: Tab reaches the navigation's links and Enter opens a page.
  await page.goto(new URL("/administration/sites", server.consoleUrl).href);
  await nav("Sites").waitFor();
  let reached = "";
  for (let i = 0; i < 20 && reached !== "Accounts"; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement?.textContent ?? "");
  }
  assert.equal(reached, "Accounts");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { level: 1, name: "Accounts" }).waitFor();
  assert.ok(page.url().endsWith("/administration/accounts"));
});

it("signs out: the session ends at the server too", async () => {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("Admin token").waitFor();
  const status = await page.evaluate(async () => (await fetch("/api/v1/servers")).status);
  assert.equal(status, 401);
});

it("a dialog removed while open (the session ends under it) leaves the sign-in page readable: no aria-hidden left on the app", async () => {
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await nav("Accounts").click();
  await page.getByRole("button", { name: /^Set password of / }).first().click();
  const dialog = page.getByRole("dialog", { name: /^Set password: / });
  await dialog.waitFor();
  await dialog.getByLabel("New password", { exact: true }).fill("An0ther-S3cret!");
  await dialog.getByLabel("Confirm password", { exact: true }).fill("An0ther-S3cret!");
  // The session is gone (as when it expires): OK answers 401 and the console shows sign-in instead of the page and its dialog.
  await context.clearCookies();
  await dialog.getByRole("button", { name: "OK" }).click();
  await page.getByLabel("Admin token").waitFor();
  assert.equal(await contentHiddenAfterDialog(page, "form"), "");
  const a11y = await accessibilityFailures(page, "Sign-in after the session ended under an open dialog");
  assert.equal(a11y, "", a11y);
  // And the console works again from there.
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await nav("Accounts").click();
  await page.getByRole("heading", { level: 1, name: "Accounts" }).waitFor();
  assert.equal(await contentHiddenAfterDialog(page), "");
});
