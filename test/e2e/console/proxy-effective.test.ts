/**
 * Servers and Site System Roles > Properties > Proxy, "Effective route for ROLE", in a real
 * browser: the route a role or feature on the server takes (direct, through the server's proxy,
 * no internet access) and why, as `opencmg proxy effective FQDN ROLE --json`, run in another
 * process, answers; asked again when OK saves a proxy. No serious or critical accessibility
 * violation in any state visited.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import type { ProxyDecision } from "../../../src/proxy/rules.ts";
import { tempDir } from "../../helpers/databases.ts";
import { runBinAsync } from "../../helpers/bin.ts";
import { accessibilityFailures, launchBrowser, screenshot, settle } from "../../helpers/browser.ts";

const SUP = "sup01.contoso.test";
let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;

before(async () => {
  dataDir = join(tempDir("opencmg-console-proxy-effective-"), "data");
  site = await openSite({ dataDir });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console effective route" });
  await site.services.servers.add({ fqdn: SUP });
  await site.services.roles.add(SUP, "software-update-point", {});
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

/** `opencmg proxy effective SUP SUBJECT --json` in another process: its exit code, output and error. */
async function cliRun(subject: string): Promise<{ code: number | null; out: string; err: string }> {
  const r = await runBinAsync(["--data", dataDir, "proxy", "effective", SUP, subject, "--json"]);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

async function cliEffective(subject: string): Promise<ProxyDecision> {
  const r = await cliRun(subject);
  if (r.code !== 0) throw new Error(`proxy effective exited ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as ProxyDecision;
}

/** The route the page shows for `name`, once it shows one whose reason is `reason`. */
async function shown(name: string, reason: string): Promise<string> {
  const route = page.getByRole("definition").filter({ hasText: reason });
  const list = page.locator(`dl[aria-label="Effective route for ${name}"]`);
  await list.filter({ has: route }).waitFor();
  return (await list.locator("dd").first().textContent()) ?? "";
}

it("the Proxy tab shows the effective route for a role and a feature, as proxy effective answers, and again after OK", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Servers and Site System Roles", exact: true }).click();
  await page.getByRole("button", { name: `Properties of ${SUP}` }).click();
  await page.getByRole("tab", { name: "Proxy" }).click();
  await page.getByRole("heading", { name: "Effective route for Software update point" }).waitFor();

  let cli = await cliEffective("software-update-point");
  assert.equal(cli.use, "direct");
  assert.equal(await shown("Software update point", cli.reason), "Direct (no proxy)");
  await check("Proxy tab, effective route of the software update point without a proxy");

  await page.getByLabel("Use a proxy server when synchronizing information from the internet").check();
  await page.getByLabel("Proxy server name", { exact: true }).fill("proxy.contoso.test");
  await page.getByLabel("Port", { exact: true }).fill("8080");
  await page.getByRole("button", { name: "OK" }).click();
  await page.getByText("The proxy server configuration is saved.").waitFor();
  cli = await cliEffective("software-update-point");
  assert.equal(cli.use, "proxy");
  assert.equal(await shown("Software update point", cli.reason), `Proxy proxy.contoso.test:8080 (the proxy configuration of ${SUP})`);
  await check("Proxy tab, effective route of the software update point through the saved proxy");
  await screenshot(page, "proxy-effective");

  // A role the server does not have: the site's refusal beside the field, with its label, as the command line says it.
  const subjectField = page.getByLabel("Role or feature");
  await subjectField.selectOption("management-point");
  const refused = await cliRun("management-point");
  assert.notEqual(refused.code, 0);
  const why = /role: (.+)$/m.exec(refused.err)?.[1] ?? "";
  assert.match(why, /none is installed there/);
  await page.waitForFunction(() => document.querySelector('select[aria-invalid="true"]') !== null);
  const ids = ((await subjectField.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  const message = (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
  assert.equal(message, `Role or feature: ${why}`);
  await page.getByRole("heading", { name: "Effective route for Management point" }).waitFor();
  assert.equal(await page.locator('dl[aria-label^="Effective route"]').count(), 0, "no route shown for a refused role");
  await check("Proxy tab, effective route asked for a role the server does not have");

  await page.getByLabel("Role or feature").selectOption("software-update-sync");
  const sync = await cliEffective("software-update-sync");
  const expected = sync.use === "proxy" ? `Proxy ${sync.host}:${sync.port} (the proxy configuration of ${sync.proxyServer})` : sync.use === "direct" ? "Direct (no proxy)" : "No internet access";
  assert.equal(await shown("Software update synchronization", sync.reason), expected);
  await check("Proxy tab, effective route of software update synchronization");
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});
