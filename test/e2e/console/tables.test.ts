/**
 * The console's lists as an administrator reads them at 1280 px, in a real browser: on Servers,
 * Cloud Management Gateway, Clients, Component Status, Status Messages, Audit and Administrative
 * Users the columns do not
 * overlap and no text spills out of its cell; a cut cell shows its full text on hover (title) and
 * on focus; each list sorts by a column header (aria-sort), searches every column and filters (the
 * status messages by the site's own filters, tested in pages.test.ts); a
 * row's Properties button has its own name; a local CMG's environment does not read as an Azure
 * cloud and its status reason says what to do in the console's words.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { tempDir } from "../../helpers/databases.ts";
import { accessibilityFailures, launchBrowser, screenshot } from "../../helpers/browser.ts";

const LONG = "a-very-long-site-system-server-name-for-the-layout-check.branch-office.north.contoso.test";
const LONG_GROUP = "CONTOSO\\Cloud management gateway administrators of the north branch offices and their deputies";
const LONG_TEXT = `The component could not reach ${LONG} over HTTPS on port 443 after 5 attempts; see the component's log on that server for the reason of each attempt and the address tried`;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let token: string;

before(async () => {
  const dir = tempDir("opencmg-console-tables-");
  site = await openSite({ dataDir: join(dir, "data") });
  token = (await initSite(site, { code: "P01", name: "Console tables" })).adminToken;
  for (const fqdn of ["mp01.contoso.test", "cp01.contoso.test", LONG]) await site.services.servers.add({ fqdn });
  const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  await site.services.cmgs.create({ name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, trustedRoots: [pki.root.certPem], crlCheck: false, provider: "local", deploy: { metricsPortBase: 0 } });
  for (const [name, type] of [["PC-0003", "internet"], ["PC-0001", "intranet"], ["PC-0002", "internet"]] as const) await site.services.clients.requestRegistration({ name, connectionType: type });
  await site.services.clients.approve((await site.services.clients.list()).find((c) => c.name === "PC-0001")!.id);
  await site.services.status.setComponent("mp01.contoso.test", "SMS_MP_CONTROL_MANAGER", "OK", "answers location requests");
  await site.services.status.setComponent(LONG, "SMS_CLOUD_PROXYCONNECTOR", "Critical", LONG_TEXT);
  await site.services.status.raise({ messageId: 500, severity: "informational", component: "SMS_TEST", server: "mp01.contoso.test", text: "first message" });
  await site.services.status.raise({ messageId: 501, severity: "error", component: "SMS_CLOUD_PROXYCONNECTOR", server: LONG, text: LONG_TEXT });
  // Administrative users and tokens (and so audit entries of these changes too).
  await site.services.adminUsers.add({ kind: "group", value: LONG_GROUP, role: "full-administrator" });
  await site.services.adminUsers.add({ kind: "user", value: "alice@contoso.test", role: "read-only-analyst" });
  await site.services.adminTokens.create("automation-readonly", { role: "read-only-analyst" });
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
});

const nav = (label: string, nth = 0) => page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: label, exact: true }).nth(nth);

/** Cells that overlap their neighbour, or whose content spills out of them, named by row and column. */
async function layoutFaults(table: Locator): Promise<string[]> {
  return table.evaluate((t) => {
    const faults: string[] = [];
    for (const [r, tr] of [...t.querySelectorAll("tr")].entries()) {
      const cells = [...tr.querySelectorAll("th, td")] as HTMLElement[];
      for (const [c, cell] of cells.entries()) {
        const box = cell.getBoundingClientRect();
        const next = cells[c + 1]?.getBoundingClientRect();
        if (next && box.right > next.left + 0.5) faults.push(`row ${r} cell ${c} overlaps the next (${box.right} > ${next.left})`);
        if (cell.scrollWidth > cell.clientWidth + 1) faults.push(`row ${r} cell ${c} spills (${cell.scrollWidth} > ${cell.clientWidth}): ${cell.textContent?.slice(0, 40)}`);
        for (const el of cell.querySelectorAll("*")) {
          const b = el.getBoundingClientRect();
          if (b.width > 0 && (b.right > box.right + 0.5 || b.left < box.left - 0.5)) faults.push(`row ${r} cell ${c}: ${el.tagName} leaves the cell`);
        }
      }
    }
    if (t.getBoundingClientRect().right > document.documentElement.clientWidth) faults.push("the table is wider than the window");
    return faults;
  });
}

const columnTexts = (table: Locator, column: number) => table.locator("tbody tr").evaluateAll((trs, i) => trs.map((tr) => tr.querySelectorAll("td")[i]?.textContent ?? ""), column);

/** Sorting by a header (both ways), searching, and the layout, for one list. */
async function checkList(label: string, o: { sortColumn: string; index: number; search: string; found: number }): Promise<Locator> {
  const table = page.getByRole("table", { name: label, exact: true });
  await table.locator("tbody tr").first().waitFor();
  assert.deepEqual(await layoutFaults(table), [], `${label} at 1280 px`);
  const header = table.getByRole("columnheader", { name: o.sortColumn, exact: true });
  // A list may start sorted by this column: one or two clicks make it ascending.
  await header.getByRole("button").click();
  if ((await header.getAttribute("aria-sort")) !== "ascending") await header.getByRole("button").click();
  assert.equal(await header.getAttribute("aria-sort"), "ascending");
  const up = await columnTexts(table, o.index);
  assert.deepEqual(up, [...up].sort((a, b) => a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" })), `${label} sorted by ${o.sortColumn}`);
  await header.getByRole("button").click();
  assert.equal(await header.getAttribute("aria-sort"), "descending");
  assert.deepEqual(await columnTexts(table, o.index), [...up].reverse());
  const lower = label.charAt(0).toLowerCase() + label.slice(1);
  await page.getByRole("searchbox", { name: `Search ${lower}` }).fill(o.search);
  await page.waitForFunction(([l, n]) => document.querySelectorAll(`table[aria-label="${l}"] tbody tr`).length === n, [label, o.found] as const);
  await page.getByRole("searchbox", { name: `Search ${lower}` }).fill("");
  return table;
}

it("every list sorts, searches and filters, its columns never overlap at 1280 px, cut text shows in full on hover and focus", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };

  await nav("Servers and Site System Roles").click();
  const servers = await checkList("Site system servers", { sortColumn: "Name", index: 0, search: "branch-office", found: 1 });
  for (const fqdn of ["mp01.contoso.test", "cp01.contoso.test", LONG]) await servers.getByRole("button", { name: `Properties of ${fqdn}`, exact: true }).waitFor();
  await page.getByLabel("Filter by Site server").selectOption("No");
  assert.equal(await servers.locator("tbody tr").count(), 3);
  await check("Servers and Site System Roles, filtered by Site server");
  await page.getByLabel("Filter by Site server").selectOption("");

  await nav("Cloud Management Gateway").click();
  const cmgs = await checkList("Cloud management gateways", { sortColumn: "Name", index: 1, search: "cmg.contoso", found: 1 });
  const row = cmgs.locator("tbody tr").first();
  const texts = await row.locator("td").allTextContents();
  assert.ok(texts.includes("Local (the site server)"), JSON.stringify(texts));
  assert.ok(!texts.some((t) => /Azure/.test(t)), "a local CMG is in no Azure cloud");
  const reason = texts[4]!;
  assert.match(reason, /^no process runs the instances of cmg1: start the OpenCMG site service/);
  assert.doesNotMatch(reason, /opencmg |`|--[a-z]/);
  await page.getByLabel("Filter by Status").selectOption({ index: 1 });
  assert.equal(await cmgs.locator("tbody tr").count(), 1);
  await page.getByLabel("Filter by Status").selectOption("");
  await cmgs.getByRole("button", { name: "Properties of cmg1", exact: true }).click();
  await page.getByRole("dialog", { name: "cmg1 Properties" }).waitFor();
  await check("Cloud Management Gateway, Properties of cmg1 opened from its row, dialog open");
  await page.getByRole("button", { name: "Cancel" }).click();
  await screenshot(page, "cmg-list-table");

  await nav("Clients").click();
  const clients = await checkList("Clients", { sortColumn: "Name", index: 0, search: "PC-0002", found: 1 });
  await page.getByLabel("Filter by Approved").selectOption("Yes");
  assert.deepEqual(await columnTexts(clients, 0), ["PC-0001"]);
  await page.getByLabel("Filter by Approved").selectOption("");
  // The client ID is cut to one line: its full text on hover, and in full while it has focus.
  const id = clients.locator("tbody tr").first().locator("td").nth(1).locator("span[tabindex='0']");
  const full = (await id.textContent()) ?? "";
  assert.equal(await id.getAttribute("title"), full);
  await id.focus();
  assert.equal(await id.evaluate((e) => e.scrollWidth <= e.clientWidth + 1 && e.scrollHeight <= e.clientHeight + 1), true, "the focused cell shows all of its text");
  await check("Monitoring > Clients, a cut cell focused");

  await nav("Component Status").click();
  const comps = await checkList("Component status", { sortColumn: "Site System", index: 1, search: "PROXYCONNECTOR", found: 1 });
  await page.getByLabel("Filter by Status").selectOption("Critical");
  assert.deepEqual(await columnTexts(comps, 2), ["SMS_CLOUD_PROXYCONNECTOR"]);
  await check("Monitoring > Component Status, filtered by Status");

  await nav("Status Messages").click();
  const msgs = await checkList("Status messages", { sortColumn: "Message ID", index: 5, search: "first message", found: 1 });
  const cut = msgs.locator("tbody tr", { hasText: "SMS_CLOUD_PROXYCONNECTOR" }).locator("td").nth(6).locator("span[tabindex='0']");
  assert.equal(await cut.getAttribute("title"), LONG_TEXT);
  assert.equal(await cut.evaluate((e) => e.scrollWidth > e.clientWidth), true, "the description is cut at 1280 px");
  await cut.focus();
  assert.equal(await cut.evaluate((e) => e.scrollWidth <= e.clientWidth + 1), true, "in full while focused");
  await screenshot(page, "status-messages");
  await check("Monitoring > Status Messages, a cut description focused");

  // Audit: the page of entries sorts, searches and filters; before and after (JSON) stay in their cells.
  await nav("Audit").click();
  const audit = await checkList("Audit log", { sortColumn: "Action", index: 3, search: "cmgs.create", found: 1 });
  await page.getByLabel("Filter by Action").selectOption("servers.add");
  assert.deepEqual(await columnTexts(audit, 3), ["servers.add", "servers.add", "servers.add"]);
  assert.deepEqual(await layoutFaults(audit), [], "Audit log filtered at 1280 px");
  await screenshot(page, "audit-table");
  await check("Monitoring > Audit, filtered by Action");
  await page.getByLabel("Filter by Action").selectOption("");

  // Administrative Users: both lists.
  await nav("Administrative Users").click();
  const users = await checkList("Directory users and groups", { sortColumn: "Name or group", index: 1, search: "alice", found: 1 });
  await page.getByLabel("Filter by Kind").selectOption("Group");
  assert.deepEqual(await columnTexts(users, 1), [LONG_GROUP]);
  assert.deepEqual(await layoutFaults(users), [], "Directory users and groups filtered at 1280 px");
  await page.getByLabel("Filter by Kind").selectOption("");
  await checkList("Named admin tokens", { sortColumn: "Name", index: 0, search: "automation", found: 1 });
  await screenshot(page, "admin-users-tables");
  await check("Administration > Administrative Users, both lists");
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});
