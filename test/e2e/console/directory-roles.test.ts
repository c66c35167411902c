/**
 * Directory sign-in and security roles in a real browser (Debian's chromium) against a real site
 * server and a real OpenID provider on loopback (authorization code flow, PKCE required, client
 * secret): a directory administrator signs in, changes something, and the Audit page names them;
 * an analyst (by a group claim) finds every change button disabled with the reason, and the API
 * refuses a forced change with 403; an Infrastructure Administrator's token cannot create tokens.
 * axe-core runs on every state visited.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { tempDir } from "../../helpers/databases.ts";
import { launchBrowser, screenshot } from "../../helpers/browser.ts";
import { A11yLog, assertChangeDisabled, assertEveryGuardedControlDisabled, directorySignIn as signIn, forcedChange, loopbackContext, nav } from "../../helpers/console.ts";
import { ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, startAdminDirectory, type TestAdminDirectory } from "../../helpers/oidc-admin-provider.ts";

let site: OpenedSite;
let server: RunningSiteServer;
let directory: TestAdminDirectory;
let browser: Browser;
let infraToken: string;
const a11y = new A11yLog();

before(async () => {
  site = await openSite({ dataDir: tempDir("opencmg-console-roles-") });
  await initSite(site, { code: "P01", name: "Roles test site" });
  await site.services.servers.add({ fqdn: "srv01.contoso.test" });
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  const redirectUri = new URL("/api/v1/session/directory/callback", server.consoleUrl).toString();
  directory = await startAdminDirectory({
    redirectUri,
    accounts: { alice: { name: "alice@contoso.test", groups: ["staff"] }, bob: { name: "bob@contoso.test", groups: ["staff", "opencmg-analysts"] }, carol: { name: "carol@contoso.test", groups: ["staff"] } },
  });
  const s = site.services;
  await s.settings.set("admin-oidc-issuer", directory.issuer);
  await s.settings.set("admin-oidc-client-id", ADMIN_CLIENT_ID);
  await s.settings.set("admin-oidc-client-secret", ADMIN_CLIENT_SECRET);
  await s.adminUsers.add({ kind: "user", value: "alice@contoso.test", role: "full-administrator" });
  await s.adminUsers.add({ kind: "group", value: "opencmg-analysts", role: "read-only-analyst" });
  infraToken = (await s.adminTokens.create("infra-ops", { role: "infrastructure-administrator" })).token;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await directory?.close();
  await server?.close();
  await site?.close();
});

async function newPage(): Promise<Page> {
  return (await loopbackContext(browser, { width: 1280, height: 900 })).newPage();
}

const check = (page: Page, state: string) => a11y.check(page, state);

/** Signs in at the console with the directory, the sign-in page checked with axe-core first. */
const directorySignIn = (page: Page, login: string) => signIn(page, server.consoleUrl, login, (p) => check(p, "sign-in page with directory sign-in"));

it("a directory administrator signs in with the directory (PKCE, client secret), changes something, and the Audit page names them", async () => {
  const page = await newPage();
  await directorySignIn(page, "alice");
  await page.getByText("alice@contoso.test (Full Administrator)").waitFor();
  await nav(page, "Accounts").click();
  await page.getByLabel("Account name").fill("CONTOSO\\svc-alice");
  await page.getByLabel("User name").fill("svc-alice");
  await page.getByLabel("Password").fill("a secret password");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByRole("cell", { name: "CONTOSO\\svc-alice", exact: true }).waitFor();
  await check(page, "Accounts, signed in with the directory");

  await nav(page, "Audit").click();
  await page.getByRole("table", { name: "Audit log" }).waitFor();
  await check(page, "Audit page, unfiltered");
  await page.getByLabel("Who", { exact: true }).fill("alice@contoso.test");
  await page.getByLabel("Action", { exact: true }).fill("accounts");
  await page.getByRole("button", { name: "Apply filters" }).click();
  const row = page.getByRole("row").filter({ hasText: "accounts.add" });
  await row.waitFor();
  assert.match((await row.textContent()) ?? "", /alice@contoso\.test.*console.*accounts\.add.*account\/CONTOSO\\svc-alice/);
  assert.doesNotMatch((await row.textContent()) ?? "", /a secret password/);
  // The table is readable at 1280 px: no column runs out of the page.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px at 1280px`);
  await check(page, "Audit page, filtered by who and action");
  await page.getByLabel("Who", { exact: true }).fill("nobody@contoso.test");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.getByText("No changes match these filters.").waitFor();
  await check(page, "Audit page, nothing matches");
  await screenshot(page, "audit");

  const entry = (await site.services.audit.list({ action: "accounts.add" })).items[0]!;
  assert.equal(entry.actor, "alice@contoso.test");
  assert.equal(entry.via, "console");
});

it("an analyst (by the groups claim) finds every change button disabled with the reason; the API refuses a forced change with 403", async () => {
  const page = await newPage();
  await directorySignIn(page, "bob");
  await page.getByText("bob@contoso.test (Read-only Analyst)").waitFor();
  const pages: [string, string[]][] = [
    ["Accounts", ["Create", "Delete CONTOSO\\svc-alice"]],
    ["Servers and Site System Roles", ["Add"]],
    ["Cloud Management Gateway", ["Create Cloud Management Gateway"]],
    ["Administrative Users", ["Add", "Remove opencmg-analysts"]],
    ["Internet endpoints", ["Run check"]],
    ["Sites", []],
  ];
  for (const [label, names] of pages) {
    await nav(page, label).first().click();
    await page.getByRole("heading", { level: 1 }).filter({ hasText: label === "Servers and Site System Roles" ? "Servers" : label === "Internet endpoints" ? "endpoints" : label.split(" ")[0]! }).first().waitFor();
    await page.getByRole("note").first().waitFor();
    for (const name of names) await assertChangeDisabled(page, page.getByRole("button", { name, exact: true }).first(), `${label}: ${name}`, /bob@contoso\.test is a Read-only Analyst/);
    // Every control that changes the site on this page is disabled.
    await assertEveryGuardedControlDisabled(page, label);
    await check(page, `${label} as a Read-only Analyst`);
  }
  for (const [method, path, body] of [
    ["POST", "/api/v1/accounts", { name: "CONTOSO\\svc-bob", username: "bob", password: "x" }],
    ["POST", "/api/v1/servers", { fqdn: "srv02.contoso.test" }],
    ["POST", "/api/v1/admin-users", { kind: "user", value: "bob@contoso.test", role: "full-administrator" }],
  ] as const) {
    assert.deepEqual(await forcedChange(page, method, path, body), { status: 403, code: "ROLE_FORBIDDEN" }, `${method} ${path}`);
  }
  assert.equal((await site.services.accounts.list()).some((a) => a.name === "CONTOSO\\svc-bob"), false);
  await screenshot(page, "analyst-accounts");
});

it("someone the directory knows but who has no role gets no session, and the sign-in page says why", async () => {
  const page = await newPage();
  await page.goto(server.consoleUrl);
  await page.getByRole("link", { name: "Sign in with the directory" }).click();
  await page.locator('input[name="login"]').fill("carol");
  await page.locator('input[name="password"]').fill("any password");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("button", { name: "Continue" }).click();
  await page.getByRole("alert").filter({ hasText: "carol@contoso.test signed in with the directory but has no security role" }).waitFor();
  await check(page, "sign-in page after a refused directory sign-in");
  assert.equal((await page.context().cookies()).some((c) => c.name === "opencmg_session"), false);
});

it("a token with Infrastructure Administrator changes servers but cannot create tokens or give roles", async () => {
  const page = await newPage();
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(infraToken);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByText("infra-ops (Infrastructure Administrator)").waitFor();
  await nav(page, "Accounts").click();
  assert.equal(await page.getByRole("button", { name: "Create", exact: true }).isDisabled(), false);
  await nav(page, "Administrative Users").click();
  const add = page.getByRole("button", { name: "Add", exact: true });
  await add.waitFor();
  assert.equal(await add.isDisabled(), true);
  assert.match((await add.getAttribute("title")) ?? "", /only a Full Administrator changes tokens/);
  await check(page, "Administrative Users as an Infrastructure Administrator");
  assert.deepEqual(await forcedChange(page, "POST", "/api/v1/admin-tokens", { name: "escalate", role: "full-administrator" }), { status: 403, code: "ROLE_FORBIDDEN" });
  const bearer = await fetch(new URL("/api/v1/admin-tokens", server.url), { method: "POST", headers: { authorization: `Bearer ${infraToken}`, "content-type": "application/json" }, body: JSON.stringify({ name: "escalate2" }) });
  assert.equal(bearer.status, 403);
  assert.equal(((await bearer.json()) as { error: { code: string } }).error.code, "ROLE_FORBIDDEN");
  assert.deepEqual((await site.services.adminTokens.list()).map((t) => t.name).sort(), ["admin", "infra-ops"]);
  a11y.assertNone();
});
