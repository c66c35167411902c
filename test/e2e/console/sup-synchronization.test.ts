/**
 * Software Library > Software Updates > Software Update Synchronization in a real browser, as
 * `opencmg role set FQDN software-update-point --upstream-url`, `opencmg sup sync` and `opencmg sup
 * updates`: Synchronize Now without an upstream update source refused beside that field; a URL the
 * site refuses shown beside it and nothing saved; the catalog's URL on a local stand-in for the
 * internet saved; the proxy option refused beside it (the server has no proxy); Synchronize Now
 * fetches the catalog (the stand-in saw the request), says what it got, shows the last
 * synchronization and lists the updates. `opencmg role list` / `sup updates` / `status messages`,
 * run in another process, agree. The synchronization schedule of a second software update point:
 * an interval out of range refused beside Run every (hours) and nothing saved; 6 hours saved, and
 * the site server's schedule (its tick shortened; the clock is not waited on) synchronizes it from
 * the stand-in, the page showing the last and the next synchronization; turned off again. `sup
 * schedule` in another process agrees. A Read-only Analyst sees OK, Save schedule and Synchronize
 * Now disabled with the reason. No serious or critical accessibility violation in any state visited.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { serveBytes, startInternet, type Internet } from "../../helpers/internet.ts";
import { accessibilityFailures, launchBrowser, screenshot, settle } from "../../helpers/browser.ts";

const SUP = "sup01.contoso.com";
/** Synchronised only by the schedule. */
const SUP2 = "sup02.contoso.com";
const CATALOG = {
  version: 1,
  updates: [
    { id: "KB5050001", title: "2026-11 Cumulative Update for Windows 11", classification: "Security Updates", product: "Windows 11", releaseDate: "2026-11-10", files: [{ name: "a.cab", url: "http://download.windowsupdate.com/a.cab", size: 3, sha256: "0".repeat(64) }] },
    { id: "KB5050002", title: "2026-11 Servicing Stack Update for Windows Server 2025", classification: "Critical Updates", product: "Windows Server 2025", releaseDate: "2026-11-12", files: [] },
  ],
};

let net: Internet;
let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let analystToken: string;

before(async () => {
  net = await startInternet();
  net.route("/catalog.json", serveBytes(Buffer.from(JSON.stringify(CATALOG)), "application/json"));
  dataDir = join(tempDir("opencmg-console-sup-sync-"), "data");
  // Synchronisation reaches only the stand-in: its CA is trusted and its names resolve to it, nothing else.
  site = await openSite({ dataDir, egressCa: [net.ca.certPem], egressLookup: net.lookup });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console SUP synchronization" });
  await site.services.servers.add({ fqdn: SUP, siteServer: true });
  await site.services.roles.add(SUP, "software-update-point", {});
  await site.services.servers.add({ fqdn: SUP2 });
  await site.services.roles.add(SUP2, "software-update-point", { upstreamUrl: net.url("https", "/catalog.json", "update.opencmg.test") });
  analystToken = (await site.services.adminTokens.create("analyst", { role: "read-only-analyst" })).token;
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } }, supSyncSchedule: { tickMs: 200 } });
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
  await net?.stop();
});

interface ListedRole {
  kind: string;
  serverFqdn: string;
  settings: { upstreamUrl?: string; useProxyForSync: boolean };
}

/** The software update point's settings as `opencmg role list FQDN --json`, in another process, shows them. */
async function cliSupSettings(): Promise<ListedRole["settings"]> {
  const roles = await binJson<ListedRole[]>(["--data", dataDir, "role", "list", SUP]);
  return roles.find((r) => r.kind === "software-update-point")!.settings;
}

async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

it("saves the upstream update source, synchronizes from it and lists the updates; role list, sup updates and status messages agree", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Software Update Synchronization", exact: true }).click();
  const form = page.getByRole("form", { name: "Synchronization settings" });
  const upstream = form.getByLabel("Upstream update source (URL)");
  const useProxy = form.getByLabel("Use a proxy server when synchronizing software updates");
  const syncNow = page.getByRole("button", { name: "Synchronize Now" });
  await upstream.waitFor();
  await page.getByText("Last synchronization: never.").waitFor();
  await page.getByText("No software update: synchronize").waitFor();
  assert.equal(await upstream.inputValue(), "");
  assert.equal(await useProxy.isChecked(), false);
  await check("Software Update Synchronization, no upstream update source yet");

  await syncNow.click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.match(await messageOf(upstream), /^Upstream update source \(URL\): the software update point on sup01\.contoso\.com has no upstream update source/);
  await check("Synchronize Now refused: no upstream update source");

  await upstream.fill("ftp://update.opencmg.test/catalog.json");
  await form.getByRole("button", { name: "OK" }).click();
  await page.getByText(/^Upstream update source \(URL\): must be/).waitFor();
  assert.match(await messageOf(upstream), /^Upstream update source \(URL\): must be an http:\/\/ or https:\/\/ URL/);
  assert.equal((await cliSupSettings()).upstreamUrl, undefined, "nothing saved");
  await check("Software Update Synchronization with a URL the site refused");

  const catalogUrl = net.url("https", "/catalog.json", "update.opencmg.test");
  await upstream.fill(catalogUrl);
  await form.getByRole("button", { name: "OK" }).click();
  await page.getByText(`The synchronization settings of ${SUP} are saved.`).waitFor();
  assert.equal(await upstream.getAttribute("aria-invalid"), null);
  assert.deepEqual(await cliSupSettings(), { allowCmgTraffic: false, useProxyForSync: false, useProxyForAdr: false, upstreamUrl: catalogUrl });

  // The server has no proxy: the option to synchronize through it is refused beside it.
  await useProxy.check();
  await form.getByRole("button", { name: "OK" }).click();
  await page.getByText(/^Use a proxy server when synchronizing software updates: needs a proxy server/).waitFor();
  assert.match(await messageOf(useProxy), new RegExp(`^Use a proxy server when synchronizing software updates: needs a proxy server configured and enabled on ${SUP.replace(/\./g, "\\.")} first`));
  assert.equal((await cliSupSettings()).useProxyForSync, false, "nothing saved");
  await check("Software Update Synchronization with the proxy option refused");
  await useProxy.uncheck();

  const before = net.requests().filter((r) => r.path === "/catalog.json").length;
  await syncNow.click();
  await page.getByText(`Synchronized 2 updates (2 new) from ${catalogUrl} directly.`).waitFor();
  assert.equal(net.requests().filter((r) => r.path === "/catalog.json" && r.scheme === "https").length, before + 1, "the stand-in served the catalog once");
  const last = page.getByRole("region", { name: "Last synchronization" });
  await last.getByText("Last synchronization: succeeded").waitFor();
  await last.getByText("Software update synchronization completed: 2 updates, 2 new.").waitFor();
  const table = page.getByRole("table", { name: "Software updates" });
  await table.getByRole("cell", { name: "KB5050001", exact: true }).waitFor();
  await table.getByRole("cell", { name: "KB5050002", exact: true }).waitFor();
  await check("Software Update Synchronization after Synchronize Now");
  await screenshot(page, "sup-synchronization");

  const updates = await binJson<{ id: string; product: string }[]>(["--data", dataDir, "sup", "updates"]);
  assert.deepEqual(updates.map((u) => u.id).sort(), ["KB5050001", "KB5050002"]);
  const messages = await binJson<{ component: string; server: string; severity: string; text: string }[]>(["--data", dataDir, "status", "messages", "--component", "SMS_WSUS_SYNC_MANAGER"]);
  assert.deepEqual(messages.map((m) => [m.server, m.severity, m.text]), [[SUP, "informational", "Software update synchronization completed: 2 updates, 2 new."]]);
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});

interface Schedule {
  server: string;
  syncIntervalHours: number | null;
  lastSync: { time: string; succeeded: boolean; text: string } | null;
  nextSync: string | null;
}
const cliSchedule = (): Promise<Schedule> => binJson<Schedule>(["--data", dataDir, "sup", "schedule", SUP2]);

it("sets a schedule (out of range refused beside its field); the site server synchronizes on it from the stand-in and shows the next synchronization; sup schedule agrees", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.getByLabel("Software update point", { exact: true }).selectOption(SUP2);
  const form = page.getByRole("form", { name: "Synchronization schedule" });
  const enable = form.getByLabel("Enable synchronization on a schedule");
  const every = form.getByLabel("Run every (hours)");
  const save = form.getByRole("button", { name: "Save schedule" });
  const next = page.getByRole("region", { name: "Next synchronization" });
  const last = page.getByRole("region", { name: "Last synchronization" });
  await next.getByText("Next synchronization: none (no schedule; synchronizes only when asked).").waitFor();
  await last.getByText("Last synchronization: never.").waitFor();
  assert.equal(await enable.isChecked(), false, "off by default");
  const catalogBefore = net.requests().filter((r) => r.path === "/catalog.json").length;

  await enable.check();
  for (const [typed, rule] of [["0", /^Run every \(hours\): must be at least 1 hour/], ["721", /^Run every \(hours\): must be at most 720 hours/], ["six", /^Run every \(hours\): must be a number of hours/]] as const) {
    await every.fill(typed);
    await save.click();
    await form.getByText(rule).waitFor();
    assert.match(await messageOf(every), rule);
  }
  await check("Synchronization schedule refused: not a number of hours");
  assert.equal((await cliSchedule()).syncIntervalHours, null, "nothing saved");

  await every.fill("6");
  await save.click();
  await page.getByText(`The synchronization schedule of ${SUP2} is saved.`).waitFor();
  // Never synchronized, so due at once: the site server's next tick synchronizes it.
  await last.getByText("Last synchronization: succeeded").waitFor();
  await last.getByText("Software update synchronization completed: 2 updates, 0 new.").waitFor();
  const s = await cliSchedule();
  assert.equal(s.syncIntervalHours, 6);
  assert.equal(s.lastSync?.succeeded, true);
  assert.equal(s.nextSync, new Date(new Date(s.lastSync!.time).getTime() + 6 * 3600_000).toISOString());
  const shown = await page.evaluate((t) => new Date(t).toLocaleString(), s.nextSync!);
  await next.getByText(`Next synchronization: ${shown} (every 6 hour(s)).`).waitFor();
  assert.equal(net.requests().filter((r) => r.path === "/catalog.json").length, catalogBefore + 1, "the stand-in served the scheduled synchronization, once");
  const messages = await binJson<{ server: string; severity: string }[]>(["--data", dataDir, "status", "messages", "--component", "SMS_WSUS_SYNC_MANAGER"]);
  assert.deepEqual(messages.filter((m) => m.server === SUP2).map((m) => m.severity), ["informational"]);
  await check("Synchronization schedule every 6 hours, synchronized on it");
  await screenshot(page, "sup-synchronization-schedule");

  await enable.uncheck();
  await save.click();
  await next.getByText("Next synchronization: none (no schedule; synchronizes only when asked).").waitFor();
  assert.deepEqual({ ...(await cliSchedule()), lastSync: null }, { server: SUP2, syncIntervalHours: null, lastSync: null, nextSync: null });
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});

it("shows a Read-only Analyst OK, Save schedule and Synchronize Now disabled, with the reason", async () => {
  const analyst = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
  await analyst.goto(server.consoleUrl);
  await analyst.getByLabel("Admin token").fill(analystToken);
  await analyst.getByRole("button", { name: "Sign in" }).click();
  await analyst.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Software Update Synchronization", exact: true }).click();
  const syncNow = analyst.getByRole("button", { name: "Synchronize Now" });
  const ok = analyst.getByRole("form", { name: "Synchronization settings" }).getByRole("button", { name: "OK" });
  const saveSchedule = analyst.getByRole("form", { name: "Synchronization schedule" }).getByRole("button", { name: "Save schedule" });
  await syncNow.waitFor();
  for (const b of [syncNow, ok, saveSchedule]) {
    assert.equal(await b.isDisabled(), true);
    assert.match((await b.getAttribute("title")) ?? "", /Read-only Analyst: this role reads only; changes are turned off\./);
  }
  await settle(analyst);
  assert.equal(await accessibilityFailures(analyst, "Software Update Synchronization as a Read-only Analyst"), "");
  await analyst.context().close();
});
