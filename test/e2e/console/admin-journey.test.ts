/**
 * A new administrator's whole journey through documents 003 and 004 in the console, in a real
 * browser, with no shell: a real `opencmg site serve` (which runs the local CMG's gateway instances
 * itself) and a real OpenID provider on loopback (code flow, PKCE required, client secret). The
 * test's setup makes only the bootstrap with the CLI (the site, the directory's settings, the first
 * Full Administrator); then alice, signed in with the directory, only clicks: the proxy of a
 * software update point's server (003), the CMG from the wizard with its trusted roots, the
 * management point and software update point allowed CMG traffic, the CMG connection point role,
 * the client settings for the CMG, the CMG changed in Properties (004's "modify": scale, a trusted
 * root added, alerts), Monitoring (the CMG, Component Status, Status Messages), a group made
 * Read-only Analyst, and the Audit page naming her for every change. Each effect is read back with
 * the CLI in another process. Then bob, an analyst by that group, finds every change control of
 * the same pages disabled with the reason, and every change forced through the API with his
 * session is refused (403) with nothing changed. axe-core runs in every main state.
 *
 * The connection point role goes on the site server's own name (`site serve --server-fqdn`), so
 * `site serve` runs it as soon as it is added: no `connection-point serve` in a shell.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { createCa } from "../../../src/pki/issue.ts";
import type { AuditEntry } from "../../../src/site/services/audit.ts";
import type { ClientSettings } from "../../../src/site/services/clients.ts";
import type { CmgView } from "../../../src/site/services/cmg-model.ts";
import { binJson, runBinAsync } from "../../helpers/bin.ts";
import { launchBrowser, screenshot } from "../../helpers/browser.ts";
import { A11yLog, assertChangeDisabled, assertEveryGuardedControlDisabled, directorySignIn, enabledButtonNames, forcedChange, loopbackContext, messageOf, nav } from "../../helpers/console.ts";
import { tempDir } from "../../helpers/databases.ts";
import { ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, startAdminDirectory, type TestAdminDirectory } from "../../helpers/oidc-admin-provider.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { answers, freePortRange } from "../../helpers/ports.ts";
import { startSiteServe, type SiteServe } from "../../helpers/site-serve.ts";
import { until } from "../../helpers/until.ts";

const SUP = "sup01.contoso.test";
const MP = "mp01.contoso.test";
/** The site server itself: `site serve` runs the roles added to it. */
const CP = "site01.contoso.test";
const ALICE = "alice@contoso.test";
const BOB = "bob@contoso.test";
const ANALYSTS = "opencmg-analysts";
const ANALYST_REASON = new RegExp(`${BOB.replace(/\./g, "\\.")} is a Read-only Analyst`);

let data: string;
let files: Record<"cert" | "key" | "root" | "intermediate" | "secondRoot", string>;
let pki: TestPki;
let serve: SiteServe;
let directory: TestAdminDirectory;
let browser: Browser;
let page: Page;
let clientPort: number;
let tunnelPort: number;
const a11y = new A11yLog();

/** `opencmg --data DATA ARGS --json` in another process. */
const cli = <T>(...args: string[]): Promise<T> => binJson<T>(["--data", data, ...args]);

/** `opencmg --data DATA ARGS` (the bootstrap), failing with what it said. */
async function bootstrap(args: string[], input?: string): Promise<void> {
  const r = await runBinAsync(["--data", data, ...args], { ...process.env, OPENCMG_DATA: "" }, input);
  assert.equal(r.code, 0, `opencmg ${args.join(" ")}: ${r.stderr}`);
}

type RoleRow = { kind: string; settings: Record<string, unknown> };
const roleOf = async (fqdn: string, kind: string): Promise<RoleRow | undefined> => (await cli<RoleRow[]>("role", "list", fqdn)).find((r) => r.kind === kind);
const cmgShow = () => cli<CmgView>("cmg", "show", "cmg");

before(async () => {
  const dir = tempDir("opencmg-console-journey-");
  data = join(dir, "data");
  pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  const second = await createCa({ commonName: "Contoso Second Root CA" });
  files = { cert: join(dir, "cmg-server.pem"), key: join(dir, "cmg-server.key"), root: join(dir, "root-ca.pem"), intermediate: join(dir, "intermediate-ca.pem"), secondRoot: join(dir, "second-root.pem") };
  writeFileSync(files.cert, pki.server.certPem);
  writeFileSync(files.key, pki.server.keyPem, { mode: 0o600 });
  writeFileSync(files.root, pki.root.certPem);
  writeFileSync(files.intermediate, pki.intermediate.certPem);
  writeFileSync(files.secondRoot, second.certPem);
  // Four ports in a row, so the two instances' client and tunnel ports cannot collide: base, base+1; base+2, base+3.
  clientPort = await freePortRange(4);
  tunnelPort = clientPort + 2;

  // The bootstrap, with the CLI: the site, its server, the directory and its first Full Administrator.
  await bootstrap(["site", "init", "--site-code", "P01", "--site-name", "Journey site"]);
  serve = await startSiteServe(data, ["--server-fqdn", CP]);
  directory = await startAdminDirectory({
    redirectUri: new URL("/api/v1/session/directory/callback", serve.consoleUrl).toString(),
    accounts: { alice: { name: ALICE, groups: ["staff"] }, bob: { name: BOB, groups: ["staff", ANALYSTS] } },
  });
  await bootstrap(["settings", "set", "admin-oidc-issuer", directory.issuer]);
  await bootstrap(["settings", "set", "admin-oidc-client-id", ADMIN_CLIENT_ID]);
  await bootstrap(["settings", "set", "admin-oidc-client-secret", "--value-stdin"], ADMIN_CLIENT_SECRET);
  await bootstrap(["admin-users", "add", "user", ALICE, "full-administrator"]);
  browser = await launchBrowser();
  page = await (await loopbackContext(browser)).newPage();
});

after(async () => {
  await browser?.close();
  await serve?.stop();
  await directory?.close();
});

/** Opens a server's Properties (Servers and Site System Roles) on the given tab. */
async function serverTab(fqdn: string, tab: "General" | "Proxy" | "Site System Roles") {
  await nav(page, "Servers and Site System Roles").click();
  await page.getByRole("button", { name: `Properties of ${fqdn}` }).click();
  const section = page.getByRole("region", { name: `Site system properties: ${fqdn}` });
  await section.getByRole("tab", { name: tab }).click();
  return section;
}

/** Create Site System Server, then Add Site System Roles with the given role (and what it asks for). */
async function addServerWithRole(fqdn: string, role: string, fill?: () => Promise<void>): Promise<void> {
  await nav(page, "Servers and Site System Roles").click();
  await page.getByLabel("Create Site System Server: FQDN").fill(fqdn);
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("button", { name: `Properties of ${fqdn}` }).waitFor();
  const section = await serverTab(fqdn, "Site System Roles");
  await section.getByRole("combobox", { name: "System role" }).click();
  await page.getByRole("option", { name: role, exact: true }).click();
  await fill?.();
  await section.getByRole("button", { name: "Add role" }).click();
  await section.getByRole("table", { name: "Site system roles" }).getByRole("cell", { name: role, exact: true }).waitFor();
}

const openCmgProperties = async () => {
  await nav(page, "Cloud Management Gateway").first().click();
  await page.getByRole("button", { name: "Properties of cmg", exact: true }).click();
  return page.getByRole("dialog", { name: "cmg Properties" });
};

it("a new administrator signs in with the directory (PKCE, client secret)", async () => {
  await directorySignIn(page, serve.consoleUrl, "alice", async (p) => {
    await a11y.check(p, "sign-in page with directory sign-in");
    await screenshot(p, "journey-sign-in");
  });
  await page.getByText(`${ALICE} (Full Administrator)`).waitFor();
  await a11y.check(page, "Sites, signed in with the directory as a Full Administrator");
});

it("document 003: a software update point's server gets its proxy with a new proxy account; proxy show and proxy effective agree", async () => {
  await addServerWithRole(SUP, "Software update point");
  assert.ok(await roleOf(SUP, "software-update-point"), "role list shows the software update point");
  // The form waits for the server's configuration (held here until the check): a box ticked before
  // it arrived would be reset by it.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const proxyRoute = `**/api/v1/servers/${SUP}/proxy`;
  await page.route(proxyRoute, async (route) => {
    if (route.request().method() === "GET") await held;
    await route.fallback();
  });
  const section = await serverTab(SUP, "Proxy");
  await section.getByText("Loading Proxy configuration").waitFor();
  assert.equal(await section.getByLabel("Use a proxy server when synchronizing information from the internet").count(), 0, "no proxy form before the configuration is read");
  release();
  await page.unroute(proxyRoute);
  await section.getByLabel("Use a proxy server when synchronizing information from the internet").check();
  await section.getByLabel("Proxy server name", { exact: true }).fill("proxy.contoso.test");
  await section.getByLabel("Port", { exact: true }).fill("8080");
  await section.getByLabel("Use credentials to connect to the proxy server").check();
  await section.getByRole("radio", { name: "New Account" }).check();
  await section.getByLabel("User name", { exact: true }).fill("CONTOSO\\svc-proxy");
  await section.getByLabel("Password", { exact: true }).fill("Pr0xy-S3cret!");
  await section.getByLabel("Use a proxy server when synchronizing software updates").check();
  await section.getByRole("button", { name: "OK" }).click();
  await page.getByText("The proxy server configuration is saved.").waitFor();
  await a11y.check(page, `Properties of ${SUP}, Proxy tab saved`);

  assert.deepEqual(await cli("proxy", "show", SUP), { server: SUP, enabled: true, host: "proxy.contoso.test", port: 8080, account: "CONTOSO\\svc-proxy" });
  assert.ok((await cli<{ name: string }[]>("account", "list")).some((a) => a.name === "CONTOSO\\svc-proxy"), "account list shows the new account");
  assert.equal((await roleOf(SUP, "software-update-point"))?.settings.useProxyForSync, true);
  const route = await cli<{ use: string; host?: string; port?: number; account?: string }>("proxy", "effective", SUP, "software-update-sync");
  assert.deepEqual([route.use, route.host, route.port, route.account], ["proxy", "proxy.contoso.test", 8080, "CONTOSO\\svc-proxy"], JSON.stringify(route));
});

it("document 004: Create Cloud Management Gateway with its client trusted roots; site serve runs its instance", async () => {
  await nav(page, "Cloud Management Gateway").first().click();
  await page.getByRole("button", { name: "Create Cloud Management Gateway" }).click();
  await page.getByRole("heading", { level: 2, name: "General" }).waitFor();
  await a11y.check(page, "Create Cloud Management Gateway wizard, General page, dialog open");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Settings" }).waitFor();
  await page.getByLabel("Certificate file", { exact: true }).setInputFiles(files.cert);
  await page.waitForFunction(() => document.querySelector("input[value='cmg.contoso.test']") !== null);
  await page.getByLabel("Private key file").setInputFiles(files.key);
  await page.getByText("Private key loaded").waitFor();
  // Client certificate authentication: the clients' trusted root and intermediate CAs.
  await page.getByLabel("Trusted root certificate files (at most 2)").setInputFiles(files.root);
  await page.getByText("root-ca.pem").waitFor();
  await page.getByLabel("Intermediate certificate files (at most 4)").setInputFiles(files.intermediate);
  await page.getByText("intermediate-ca.pem").waitFor();
  // The test PKI publishes no CRL: the document says to turn the check off then.
  await page.getByLabel("Verify Client Certificate Revocation").uncheck();
  await page.getByLabel("Listen address").fill("127.0.0.1");
  await page.getByLabel("Public host name (default: the service FQDN)").fill("127.0.0.1");
  await page.getByLabel("Client port of the first instance").fill(String(clientPort));
  await page.getByLabel("Tunnel port of the first instance").fill(String(tunnelPort));
  await page.getByLabel("Metrics port of the first instance (0: none)").fill("0");
  await a11y.check(page, "Create Cloud Management Gateway wizard, Settings page filled, dialog open");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Alerts" }).waitFor();
  await page.getByLabel("Enable 14-day threshold for alerting").check();
  await page.getByLabel("14-day threshold (GB)").fill("100");
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Summary" }).waitFor();
  await a11y.check(page, "Create Cloud Management Gateway wizard, Summary page, dialog open");
  await page.getByRole("button", { name: "Create" }).click();
  await page.getByText("The cloud management gateway cmg is created.").waitFor();

  const created = await cmgShow();
  assert.equal(created.serviceFqdn, "cmg.contoso.test");
  assert.equal(created.provider, "local");
  assert.equal(created.instanceCount, 1);
  assert.equal(created.crlCheck, false);
  assert.deepEqual(created.trustedRoots.map((c) => c.subject).filter((s) => s.includes("OpenCMG Test Root CA")).length, 1, JSON.stringify(created.trustedRoots));
  assert.equal(created.intermediates.length, 1);
  assert.equal(created.deploy.trafficAlert?.thresholdGb, 100);
  // The local provider: the site server runs the instance, no `cmg start` in a shell.
  await until("the CMG's instance to answer on its client port", () => answers(clientPort), 120_000);
});

it("document 004: the management point and software update point accept CMG traffic; the CMG connection point is added; the CMG turns Ready", async () => {
  await addServerWithRole(MP, "Management point", () => page.getByLabel("Internal URL (default https://FQDN)").fill("http://127.0.0.1:9"));
  for (const [fqdn, kind] of [
    [MP, "management-point"],
    [SUP, "software-update-point"],
  ] as const) {
    const section = await serverTab(fqdn, "Site System Roles");
    const allow = section.getByLabel("Allow Configuration Manager cloud management gateway traffic");
    assert.equal(await allow.isChecked(), false);
    // The box saves as it is ticked and shows what the site then has: a click, not check().
    await allow.click();
    await until(`${fqdn}: the box ticked once the site has it`, () => allow.isChecked());
    assert.equal((await roleOf(fqdn, kind))?.settings.allowCmgTraffic, true, `role list shows ${kind} allowing CMG traffic`);
  }
  await a11y.check(page, `Properties of ${SUP}, Site System Roles tab, CMG traffic allowed`);

  await addServerWithRole(CP, "CMG connection point", async () => void (await page.getByLabel("Cloud management gateway name").selectOption("cmg")));
  assert.equal((await roleOf(CP, "cmg-connection-point"))?.settings.cmgName, "cmg");
  await a11y.check(page, `Properties of ${CP}, Site System Roles tab with the connection point role`);

  // Nothing more: `site serve` runs the role it was just given on its own server.
  await nav(page, "Cloud Management Gateway").first().click();
  await page.waitForFunction(() => document.querySelector('[data-testid="status-cmg"]')?.textContent === "Ready", undefined, { timeout: 180_000 });
  await until("cmg show: Ready", async () => (await cmgShow()).status === "Ready", 60_000);
  await a11y.check(page, "Cloud Management Gateway list, the CMG Ready");
});

it("document 004: clients are set to use the CMG (Client Settings); site clients settings agrees", async () => {
  await nav(page, "Client Settings").click();
  const form = page.getByRole("form", { name: "Client settings" });
  await form.getByLabel("Enable clients to use a cloud management gateway").check();
  await form.getByLabel("Client is always on the internet (ClientAlwaysOnInternet)").check();
  await form.getByRole("button", { name: "OK" }).click();
  await page.getByText("The client settings are saved").waitFor();
  await a11y.check(page, "Client Settings saved");
  const s = await cli<ClientSettings>("site", "clients", "settings");
  assert.equal(s.useCmg, true);
  assert.equal(s.alwaysOnInternet, true);
});

it("document 004, modify a CMG: Properties scales it to 2 instances, adds a trusted root and changes its alerts; cmg show agrees and the second instance runs", async () => {
  let dialog = await openCmgProperties();
  await dialog.getByRole("spinbutton", { name: "VM instance" }).press("ArrowUp");
  assert.equal(await dialog.getByRole("spinbutton", { name: "VM instance" }).inputValue(), "2");
  await a11y.check(page, "cmg Properties, General tab, 2 instances, dialog open");
  await dialog.getByRole("tab", { name: "Trusted roots" }).click();
  await dialog.getByLabel("Add trusted root certificate files").setInputFiles(files.secondRoot);
  await dialog.getByRole("list", { name: "Trusted root certificates" }).getByText("CN=Contoso Second Root CA, added on OK").waitFor();
  await a11y.check(page, "cmg Properties, Trusted roots tab with a root to add, dialog open");
  await dialog.getByRole("button", { name: "OK" }).click();
  await dialog.waitFor({ state: "detached" });
  const changed = await cmgShow();
  assert.equal(changed.instanceCount, 2);
  assert.deepEqual(changed.trustedRoots.map((c) => /Contoso Second Root CA|OpenCMG Test Root CA/.exec(c.subject)?.[0]).sort(), ["Contoso Second Root CA", "OpenCMG Test Root CA"]);
  await until("the second instance to answer on its client port", () => answers(clientPort + 1), 120_000);

  dialog = await openCmgProperties();
  await dialog.getByRole("tab", { name: "Alerts" }).click();
  const threshold = dialog.getByLabel("14-day threshold (GB)");
  await threshold.fill("0");
  await dialog.getByRole("button", { name: "Save alerts" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.equal(await messageOf(page, threshold), "14-day threshold (GB): must be a number of GB above 0");
  await a11y.check(page, "cmg Properties, Alerts tab with a threshold the site refused, dialog open");
  await threshold.fill("200");
  await dialog.getByLabel("Percentage of threshold for Warning alert").fill("60");
  await dialog.getByLabel("Percentage of threshold for Critical alert").fill("95");
  await dialog.getByRole("button", { name: "Save alerts" }).click();
  await dialog.getByText("The alert is saved.").waitFor();
  await a11y.check(page, "cmg Properties, Alerts tab saved, dialog open");
  await dialog.getByRole("button", { name: "Close" }).click();
  await dialog.waitFor({ state: "detached" });
  assert.deepEqual((await cmgShow()).deploy.trafficAlert, { thresholdGb: 200, warningPct: 60, criticalPct: 95, stopOnCritical: false });
});

it("monitoring: the CMG's instances with their tunnels, Component Status and Status Messages of the connection point, as the CLI sees them", async () => {
  // Both instances reached by the connection point, as cmg show says.
  let seen: CmgView["instances"] = [];
  await until("cmg show: both instances' tunnels connected", async () => {
    seen = (await cmgShow()).instances;
    return seen.length === 2 && seen.every((i) => i.connectionPoints.some((p) => p.server === CP && p.connected));
  }, 120_000).catch((e: Error) => assert.fail(`${e.message}; last seen: ${JSON.stringify(seen.map((i) => [i.index, i.clientUrl, i.connectionPoints]))}`));
  await nav(page, "Cloud Management Gateway").nth(1).click();
  const instances = page.getByRole("table", { name: "Instances and tunnels" });
  await until("Monitoring: both instances connected", async () => (await instances.getByText(`${CP}: connected`).count()) === 2, 120_000);
  await a11y.check(page, "Monitoring > Cloud Management Gateway, two instances connected");

  const components = await cli<{ server: string; component: string; status: string }[]>("status", "components", "--server", CP);
  const connector = components.find((c) => c.component === "SMS_CLOUD_PROXYCONNECTOR");
  assert.ok(connector, JSON.stringify(components));
  await nav(page, "Component Status").click();
  const badge = page.getByTestId(`component-${CP}-SMS_CLOUD_PROXYCONNECTOR`);
  await badge.waitFor();
  await until("Component Status to show the connector's state as status components does", async () => (await badge.textContent()) === (await cli<{ component: string; status: string }[]>("status", "components", "--server", CP)).find((c) => c.component === "SMS_CLOUD_PROXYCONNECTOR")?.status);
  await a11y.check(page, "Component Status with the connection point's component");

  const messages = await cli<{ text: string }[]>("status", "messages", "--component", "SMS_CLOUD_PROXYCONNECTOR");
  const text = messages.find((m) => m.text.startsWith("CMG connection point for cmg"))?.text;
  assert.ok(text, JSON.stringify(messages));
  await nav(page, "Status Messages").click();
  await page.getByRole("form", { name: "Status message filters" }).getByLabel("Component").fill("SMS_CLOUD_PROXYCONNECTOR");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.getByRole("table", { name: "Status messages" }).getByText(text, { exact: false }).first().waitFor();
  await a11y.check(page, "Status Messages filtered to the connection point's component");
});

it("Administrative Users: the analysts' group is made Read-only Analyst; admin-users list agrees", async () => {
  await nav(page, "Administrative Users").click();
  await page.getByRole("combobox", { name: "Kind", exact: true }).click();
  await page.getByRole("option", { name: "Group", exact: true }).click();
  await page.getByLabel("Name or group (the claim's value)").fill(ANALYSTS);
  await page.getByRole("combobox", { name: "Security role", exact: true }).click();
  await page.getByRole("option", { name: "Read-only Analyst", exact: true }).click();
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await page.getByRole("table", { name: "Directory users and groups" }).getByRole("cell", { name: ANALYSTS, exact: true }).waitFor();
  await a11y.check(page, "Administrative Users with the analysts' group");
  await screenshot(page, "journey-admin-users");
  const users = await cli<{ kind: string; value: string; role: string }[]>("admin-users", "list");
  assert.ok(users.some((u) => u.kind === "group" && u.value === ANALYSTS && u.role === "read-only-analyst"), JSON.stringify(users));
});

it("the Audit page names the directory user for every change made in the console, as opencmg audit does", async () => {
  const audit = await cli<AuditEntry[]>("audit", "--limit", "500");
  const byConsole = audit.filter((e) => e.via === "console");
  assert.deepEqual([...new Set(byConsole.map((e) => e.actor))], [ALICE], "every change made in the console names alice");
  // Each kind of change the journey made: servers and roles added, the proxy and its account, CMG
  // traffic allowed, the CMG created and changed, its alert, the client settings, the analysts' role.
  assert.deepEqual([...new Set(byConsole.map((e) => e.action))].sort(), ["accounts.add", "adminUsers.add", "clients.setSettings", "cmgAlerts.setTrafficAlert", "cmgs.create", "cmgs.update", "proxies.set", "roles.add", "roles.set", "servers.add"]);
  const bootstrap = audit.filter((e) => e.via !== "console");
  assert.ok(bootstrap.every((e) => e.actor !== ALICE), "the bootstrap is not alice's");

  await nav(page, "Audit").click();
  await page.getByRole("table", { name: "Audit log" }).waitFor();
  await page.getByLabel("Who", { exact: true }).fill(ALICE);
  await page.getByRole("button", { name: "Apply filters" }).click();
  const rows = page.getByRole("table", { name: "Audit log" }).locator("tbody tr");
  await until("the Audit page to list alice's changes", async () => (await rows.count()) === Math.min(byConsole.length, 50));
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "")));
  const newest = byConsole.slice(0, 50);
  for (const [i, cells] of shown.entries()) {
    const e = newest[i]!;
    const row = cells.join(" | ");
    assert.ok(row.includes(ALICE) && row.includes(e.action) && row.includes(e.object), `row ${i} names ${ALICE}, ${e.action} and ${e.object}: ${row}`);
    assert.doesNotMatch(row, /Pr0xy-S3cret!/);
  }
  await a11y.check(page, "Audit page filtered to the directory administrator");
  await screenshot(page, "journey-audit");
});

it("a Read-only Analyst (by the group) finds every change control disabled with the reason; the API refuses every forced change with 403 and nothing changes", async () => {
  const before = { cmg: await cmgShow(), proxy: await cli("proxy", "show", SUP), clients: await cli("site", "clients", "settings"), mp: await roleOf(MP, "management-point") };
  page = await (await loopbackContext(browser)).newPage();
  await directorySignIn(page, serve.consoleUrl, "bob");
  await page.getByText(`${BOB} (Read-only Analyst)`).waitFor();
  const disabled = (name: string, where = page) => assertChangeDisabled(page, where.getByRole("button", { name, exact: true }).first(), name, ANALYST_REASON);
  // Every button left enabled in each state, to be checked against the buttons that only read.
  const pressable = new Map<string, string>();
  const collect = async (state: string) => {
    for (const name of await enabledButtonNames(page)) if (!pressable.has(name)) pressable.set(name, state);
  };

  let section = await serverTab(SUP, "Proxy");
  await disabled("Add");
  await assertChangeDisabled(page, section.getByRole("button", { name: "OK" }), "Proxy OK", ANALYST_REASON);
  await assertEveryGuardedControlDisabled(page, "Servers, Proxy tab");
  await collect("Servers, Proxy tab");
  await a11y.check(page, `Properties of ${SUP}, Proxy tab, as a Read-only Analyst`);
  section = await serverTab(MP, "Site System Roles");
  await assertChangeDisabled(page, section.getByLabel("Allow Configuration Manager cloud management gateway traffic"), "Allow CMG traffic", ANALYST_REASON);
  await assertChangeDisabled(page, section.getByRole("button", { name: "Add role" }), "Add role", ANALYST_REASON);
  await assertEveryGuardedControlDisabled(page, "Servers, Site System Roles tab");
  await collect("Servers, Site System Roles tab");
  await a11y.check(page, `Properties of ${MP}, Site System Roles tab, as a Read-only Analyst`);

  await nav(page, "Cloud Management Gateway").first().click();
  await page.getByRole("checkbox", { name: "Select cmg" }).check();
  for (const b of ["Create Cloud Management Gateway", "Start", "Stop", "Delete", "Connection analyzer"]) await disabled(b);
  await assertEveryGuardedControlDisabled(page, "Cloud Management Gateway");
  await collect("Cloud Management Gateway, a CMG selected");
  await a11y.check(page, "Cloud Management Gateway, a CMG selected, as a Read-only Analyst");
  const dialog = await openCmgProperties();
  await assertChangeDisabled(page, dialog.getByRole("button", { name: "OK" }), "Properties OK", ANALYST_REASON);
  await collect("cmg Properties, General tab");
  await dialog.getByRole("tab", { name: "Trusted roots" }).click();
  await collect("cmg Properties, Trusted roots tab");
  await dialog.getByRole("tab", { name: "Alerts" }).click();
  await assertChangeDisabled(page, dialog.getByRole("button", { name: "Save alerts" }), "Save alerts", ANALYST_REASON);
  await assertEveryGuardedControlDisabled(page, "cmg Properties, Alerts tab");
  await collect("cmg Properties, Alerts tab");
  await a11y.check(page, "cmg Properties, Alerts tab, as a Read-only Analyst, dialog open");
  await dialog.getByRole("button", { name: "Close" }).click();
  await dialog.waitFor({ state: "detached" });

  await nav(page, "Client Settings").click();
  await assertChangeDisabled(page, page.getByRole("form", { name: "Client settings" }).getByRole("button", { name: "OK" }), "Client Settings OK", ANALYST_REASON);
  await assertEveryGuardedControlDisabled(page, "Client Settings");
  await collect("Client Settings");
  await nav(page, "Administrative Users").click();
  await disabled("Add");
  await disabled(`Remove ${ANALYSTS}`);
  await assertEveryGuardedControlDisabled(page, "Administrative Users");
  await collect("Administrative Users");
  await nav(page, "Sites").click();
  await disabled("Save client-policy-interval");
  assert.ok((await assertEveryGuardedControlDisabled(page, "Sites")) > 0, "the Sites page's Save buttons are guarded");
  await collect("Sites");
  // What is left to press only reads, signs out, closes, or edits a form whose OK is disabled (a
  // CA marked for removal on OK, the VM instance spin buttons); a new unguarded change fails here.
  const reads = /^(Sign out|Properties|Properties of .+|Cancel|Close|Increment value|Decrement value|(Remove|Keep) CN=.+)$/;
  assert.deepEqual([...pressable].filter(([name]) => !reads.test(name)), [], "buttons left enabled for a Read-only Analyst (name, state)");
  await a11y.check(page, "Sites as a Read-only Analyst");

  for (const [method, path, body] of [
    ["PUT", `/api/v1/servers/${SUP}/proxy`, { enabled: false }],
    ["POST", "/api/v1/servers", { fqdn: "srv99.contoso.test" }],
    ["POST", `/api/v1/servers/${CP}/roles`, { role: "management-point" }],
    ["PATCH", `/api/v1/servers/${MP}/roles/management-point`, { allowCmgTraffic: false }],
    ["POST", "/api/v1/cmgs", { name: "cmg2" }],
    ["PATCH", "/api/v1/cmgs/cmg", { instances: 1 }],
    ["PUT", "/api/v1/cmgs/cmg/traffic-alert", { thresholdGb: 1 }],
    ["POST", "/api/v1/cmgs/cmg/stop", undefined],
    ["DELETE", "/api/v1/cmgs/cmg", undefined],
    ["PATCH", "/api/v1/clients/settings", { useCmg: false }],
    ["POST", "/api/v1/admin-users", { kind: "user", value: BOB, role: "full-administrator" }],
  ] as const) {
    assert.deepEqual(await forcedChange(page, method, path, body), { status: 403, code: "ROLE_FORBIDDEN" }, `${method} ${path}`);
  }
  const after = { cmg: await cmgShow(), proxy: await cli("proxy", "show", SUP), clients: await cli("site", "clients", "settings"), mp: await roleOf(MP, "management-point") };
  assert.equal(after.cmg.instanceCount, before.cmg.instanceCount);
  assert.equal(after.cmg.runState, before.cmg.runState);
  assert.deepEqual(after.cmg.deploy.trafficAlert, before.cmg.deploy.trafficAlert);
  assert.deepEqual(after.proxy, before.proxy);
  assert.deepEqual(after.clients, before.clients);
  assert.deepEqual(after.mp, before.mp);
  assert.equal((await cli<AuditEntry[]>("audit", "--actor", BOB)).length, 0, "nothing audited for bob");
  a11y.assertNone();
});
