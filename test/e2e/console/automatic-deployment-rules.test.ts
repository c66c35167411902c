/**
 * Software Library > Software Updates > Automatic Deployment Rules in a real browser, as `opencmg
 * adr add|list|run|results`, with updates synchronized from a local stand-in for the internet: a
 * rule without a name, and one without any filter, refused beside the field the site names and
 * nothing created; a rule created and listed; Run Now downloads the matching update's content from
 * the stand-in (it served the file; the library holds its bytes) and shows each file's result;
 * Results shows what the site recorded. `opencmg adr list` / `adr results`, run in another
 * process, agree. A Read-only Analyst sees Create, Run Now, Edit, Disable and Delete disabled with
 * the reason. Then the rule's lifecycle, as `opencmg adr edit|disable|enable|delete`: an edit that
 * leaves no filter refused beside Products; the rule renamed, given a title filter and "run after
 * any synchronization"; disabled (Run Now turned off; `adr run` in another process refused);
 * enabled; Delete asks first (Cancel keeps it), then deletes it with its recorded results. No
 * serious or critical accessibility violation in any state visited.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Locator, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { supSyncDeps } from "../../../src/app/role-deps.ts";
import { syncSoftwareUpdates } from "../../../src/roles/sup/sync.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson, runBinAsync } from "../../helpers/bin.ts";
import { serveBytes, startInternet, type Internet } from "../../helpers/internet.ts";
import { accessibilityFailures, launchBrowser, screenshot, settle } from "../../helpers/browser.ts";

const SUP = "sup01.contoso.com";
const RULE = "Patch Tuesday Windows 11";
const win11 = Buffer.from("windows 11 cumulative update ".repeat(2000));
const server2025 = Buffer.from("server 2025 servicing stack ".repeat(500));
const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

let net: Internet;
let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let analystToken: string;

before(async () => {
  net = await startInternet();
  net.route("/content/win11.cab", serveBytes(win11));
  net.route("/content/srv2025.cab", serveBytes(server2025));
  const file = (name: string, body: Buffer) => ({ name, url: net.url("http", `/content/${name}`, "download.windowsupdate.com"), size: body.length, sha256: sha(body) });
  const catalog = {
    version: 1,
    updates: [
      { id: "KB5050001", title: "2026-11 Cumulative Update for Windows 11", classification: "Security Updates", product: "Windows 11", releaseDate: "2026-11-10", files: [file("win11.cab", win11)] },
      { id: "KB5050002", title: "2026-11 Servicing Stack Update for Windows Server 2025", classification: "Critical Updates", product: "Windows Server 2025", releaseDate: "2026-11-12", files: [file("srv2025.cab", server2025)] },
    ],
  };
  net.route("/catalog.json", serveBytes(Buffer.from(JSON.stringify(catalog)), "application/json"));
  dataDir = join(tempDir("opencmg-console-adrs-"), "data");
  // Downloads reach only the stand-in: its CA is trusted and its names resolve to it, nothing else.
  site = await openSite({ dataDir, egressCa: [net.ca.certPem], egressLookup: net.lookup });
  const { adminToken } = await initSite(site, { code: "P01", name: "Console automatic deployment rules" });
  await site.services.servers.add({ fqdn: SUP, siteServer: true });
  await site.services.roles.add(SUP, "software-update-point", { upstreamUrl: net.url("https", "/catalog.json", "update.opencmg.test") });
  await syncSoftwareUpdates(supSyncDeps(site), SUP);
  analystToken = (await site.services.adminTokens.create("analyst", { role: "read-only-analyst" })).token;
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
  await net?.stop();
});

interface ListedAdr {
  name: string;
  server: string;
  products: string[];
  classifications: string[];
  titleContains: string | null;
  enabled: boolean;
  runAfterSync: boolean;
}
interface RecordedFile {
  updateId: string;
  file: string;
  status: string;
  bytes: number;
}

const cliList = (): Promise<ListedAdr[]> => binJson(["--data", dataDir, "adr", "list"]);

async function messageOf(control: Locator): Promise<string> {
  const ids = ((await control.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
  return (await Promise.all(ids.map((id) => page.locator(`[id="${id}"]`).textContent()))).join(" ");
}

function libraryFiles(): Buffer[] {
  const walk = (d: string): string[] => (existsSync(d) ? readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)])) : []);
  return walk(site.paths.content).map((f) => readFileSync(f));
}

it("creates a rule, runs it (the matching update's content downloaded from the stand-in) and shows its results; adr list and adr results agree", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Automatic Deployment Rules", exact: true }).click();
  const form = page.getByRole("form", { name: "Create Automatic Deployment Rule" });
  const name = form.getByLabel("Name", { exact: true });
  const products = form.getByLabel("Products (comma-separated)");
  const classifications = form.getByLabel("Update classifications (comma-separated)");
  await page.getByText("No automatic deployment rule.").waitFor();
  assert.equal(await form.getByLabel("Software update point", { exact: true }).inputValue(), SUP);
  await check("Automatic Deployment Rules, none yet");

  await products.fill("Windows 11");
  await form.getByRole("button", { name: "Create" }).click();
  await page.getByText(/^Name: must not be empty/).waitFor();
  assert.equal(await name.getAttribute("aria-invalid"), "true");

  await name.fill(RULE);
  await products.fill("");
  await form.getByRole("button", { name: "Create" }).click();
  await page.getByText(/^Products \(comma-separated\): a rule needs at least one product, classification or title filter/).waitFor();
  assert.match(await messageOf(products), /^Products \(comma-separated\): a rule needs at least one product/);
  assert.equal(await name.getAttribute("aria-invalid"), null);
  await check("Create Automatic Deployment Rule refused: no filter");
  assert.deepEqual(await cliList(), [], "nothing created");

  await products.fill("Windows 11");
  await classifications.fill("Security Updates, Critical Updates");
  await form.getByRole("button", { name: "Create" }).click();
  await page.getByText(`Created automatic deployment rule ${RULE}.`).waitFor();
  const table = page.getByRole("table", { name: "Automatic deployment rules" });
  await table.getByRole("cell", { name: RULE, exact: true }).waitFor();
  assert.deepEqual(
    (await cliList()).map((a) => ({ name: a.name, server: a.server, products: a.products, classifications: a.classifications, titleContains: a.titleContains })),
    [{ name: RULE, server: SUP, products: ["Windows 11"], classifications: ["Security Updates", "Critical Updates"], titleContains: null }],
  );

  await page.getByRole("button", { name: `Run Now ${RULE}` }).click();
  const results = page.getByRole("region", { name: `Results of ${RULE}` });
  await results.getByText("Updates matched: 1. 1 of 1 files in the content library.").waitFor();
  const downloads = results.getByRole("table", { name: `Downloads of ${RULE}` });
  await downloads.getByRole("cell", { name: "win11.cab", exact: true }).waitFor();
  await downloads.getByRole("cell", { name: "downloaded", exact: true }).waitFor();
  assert.equal(net.requests().filter((r) => r.path === "/content/win11.cab").length, 1, "the stand-in served the matching update's file");
  assert.equal(net.requests().filter((r) => r.path === "/content/srv2025.cab").length, 0, "the other update is not the rule's");
  assert.deepEqual(libraryFiles(), [win11]);
  await check("Automatic Deployment Rules after Run Now");
  await screenshot(page, "automatic-deployment-rules");

  const recorded = await binJson<RecordedFile[]>(["--data", dataDir, "adr", "results", RULE]);
  assert.deepEqual(recorded.map((f) => [f.updateId, f.file, f.status, f.bytes]), [["KB5050001", "win11.cab", "downloaded", win11.length]]);

  // Results (after a reload of the page) shows what the site recorded.
  await page.reload();
  await page.getByRole("button", { name: `Results of ${RULE}` }).click();
  await page.getByRole("region", { name: `Results of ${RULE}` }).getByText(`Recorded results of ${RULE}`).waitFor();
  await page.getByRole("region", { name: `Results of ${RULE}` }).getByRole("cell", { name: "win11.cab", exact: true }).waitFor();
  await check("Automatic Deployment Rules, recorded results");
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});

it("shows a Read-only Analyst Create, Run Now, Edit, Disable and Delete disabled, with the reason", async () => {
  const analyst = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
  await analyst.goto(server.consoleUrl);
  await analyst.getByLabel("Admin token").fill(analystToken);
  await analyst.getByRole("button", { name: "Sign in" }).click();
  await analyst.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Automatic Deployment Rules", exact: true }).click();
  const run = analyst.getByRole("button", { name: `Run Now ${RULE}` });
  const create = analyst.getByRole("form", { name: "Create Automatic Deployment Rule" }).getByRole("button", { name: "Create" });
  await run.waitFor();
  const lifecycle = ["Edit", "Disable", "Delete"].map((v) => analyst.getByRole("button", { name: `${v} ${RULE}` }));
  for (const b of [run, create, ...lifecycle]) {
    assert.equal(await b.isDisabled(), true);
    assert.match((await b.getAttribute("title")) ?? "", /Read-only Analyst: this role reads only; changes are turned off\./);
  }
  assert.equal(await analyst.getByRole("button", { name: `Results of ${RULE}` }).isDisabled(), false, "reading the results is not a change");
  await settle(analyst);
  assert.equal(await accessibilityFailures(analyst, "Automatic Deployment Rules as a Read-only Analyst"), "");
  await analyst.context().close();
});

it("edits the rule (a refusal beside its field first), disables and enables it, and deletes it after a confirmation; adr list, run and results agree", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    await settle(page);
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  const RENAMED = `${RULE} (monthly)`;
  await page.reload();
  const table = page.getByRole("table", { name: "Automatic deployment rules" });
  await table.getByRole("cell", { name: RULE, exact: true }).waitFor();

  await page.getByRole("button", { name: `Edit ${RULE}` }).click();
  const edit = page.getByRole("form", { name: `Edit ${RULE}` });
  const products = edit.getByLabel("Products (comma-separated)");
  assert.equal(await products.inputValue(), "Windows 11");
  assert.equal(await edit.getByLabel("Update classifications (comma-separated)").inputValue(), "Security Updates, Critical Updates");
  await products.fill("");
  await edit.getByLabel("Update classifications (comma-separated)").fill("");
  await edit.getByRole("button", { name: "OK" }).click();
  await edit.getByText(/^Products \(comma-separated\): a rule needs at least one product/).waitFor();
  assert.match(await messageOf(products), /^Products \(comma-separated\): a rule needs at least one product, classification or title filter/);
  await check("Edit automatic deployment rule refused: no filter left");
  assert.deepEqual((await cliList()).map((a) => [a.name, a.products]), [[RULE, ["Windows 11"]]], "nothing changed");

  await products.fill("Windows 11");
  await edit.getByLabel("Name", { exact: true }).fill(RENAMED);
  await edit.getByLabel("Title contains").fill("Cumulative");
  await edit.getByLabel("Run the rule after any software update point synchronization").check();
  await edit.getByRole("button", { name: "OK" }).click();
  await page.getByText(`Saved automatic deployment rule ${RENAMED}.`).waitFor();
  await table.getByRole("cell", { name: RENAMED, exact: true }).waitFor();
  assert.deepEqual(
    (await cliList()).map((a) => ({ name: a.name, products: a.products, classifications: a.classifications, titleContains: a.titleContains, enabled: a.enabled, runAfterSync: a.runAfterSync })),
    [{ name: RENAMED, products: ["Windows 11"], classifications: [], titleContains: "Cumulative", enabled: true, runAfterSync: true }],
  );

  await page.getByRole("button", { name: `Disable ${RENAMED}` }).click();
  await page.getByText(`Disabled automatic deployment rule ${RENAMED}.`).waitFor();
  await page.getByRole("button", { name: `Enable ${RENAMED}` }).waitFor();
  assert.equal(await page.getByRole("button", { name: `Run Now ${RENAMED}` }).isDisabled(), true, "a disabled rule does not run");
  assert.equal(await page.getByRole("button", { name: `Run Now ${RENAMED}` }).getAttribute("title"), "The rule is disabled: enable it to run it.");
  assert.equal((await cliList())[0]!.enabled, false);
  const refused = await runBinAsync(["--data", dataDir, "adr", "run", RENAMED]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /is disabled; enable it first/);
  await check("Automatic Deployment Rules with the rule disabled");

  await page.getByRole("button", { name: `Enable ${RENAMED}` }).click();
  await page.getByText(`Enabled automatic deployment rule ${RENAMED}.`).waitFor();
  assert.equal((await cliList())[0]!.enabled, true);

  await page.getByRole("button", { name: `Delete ${RENAMED}` }).click();
  const confirm = page.getByRole("dialog", { name: `Delete ${RENAMED}?` });
  await confirm.getByText("The rule and its recorded download results are deleted.").waitFor();
  await check("Delete automatic deployment rule: the confirmation");
  await confirm.getByRole("button", { name: "Cancel" }).click();
  await confirm.waitFor({ state: "hidden" });
  assert.deepEqual((await cliList()).map((a) => a.name), [RENAMED], "Cancel keeps the rule");

  await page.getByRole("button", { name: `Delete ${RENAMED}` }).click();
  await confirm.getByRole("button", { name: "Delete" }).click();
  await page.getByText(`Deleted automatic deployment rule ${RENAMED} and its 1 recorded download result(s).`).waitFor();
  await page.getByText("No automatic deployment rule.").waitFor();
  assert.deepEqual(await cliList(), []);
  const results = await runBinAsync(["--data", dataDir, "adr", "results", RENAMED]);
  assert.notEqual(results.code, 0);
  assert.match(results.stderr, /does not exist/);
  assert.deepEqual(libraryFiles(), [win11], "the content library keeps the file");
  await check("Automatic Deployment Rules after Delete");
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});
