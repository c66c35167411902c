/**
 * Administration > Security > Signing Keys and Certificates in a real browser, as `opencmg token
 * signing-keys|rotate-signing-key`, `opencmg cmg settings-keys|rotate-settings-key` and
 * `opencmg connection-point certificates|revoke`: each rotation only after a dialog saying what it
 * does, then a new current key and the old one previous; a connection point certificate (issued as
 * the connection point's start asks for it) revoked with a reason after its dialog. The CLI, run in
 * another process, agrees with each step. On Monitoring > Clients, a token-registered client's new key
 * (`opencmg site clients approve-key`) approved through a dialog, a malformed thumbprint refused
 * beside its field first. Under Server Join Tokens (`opencmg server join-token create|list|revoke`), a
 * token created for a server, shown once with the site CA's SHA-256 and the join command, then
 * revoked after a dialog. An Infrastructure Administrator finds the token key's
 * Rotate disabled with the reason, the others not. No serious or critical accessibility violation
 * in any state visited.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import { calculateJwkThumbprint, type JWK } from "jose";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { tempDir } from "../../helpers/databases.ts";
import { binJson } from "../../helpers/bin.ts";
import { launchBrowser, screenshot, settle } from "../../helpers/browser.ts";
import { A11yLog, assertChangeDisabled, loopbackContext, messageOf, nav } from "../../helpers/console.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";

interface ListedKey {
  kid: string;
  state: string;
}
interface ListedCert {
  serial: string;
  fqdn: string;
  state: string;
  revokedReason: string | null;
}

const CP = "cp01.contoso.test";
const DEVICE = "LAPTOP01";

/** The RFC 7638 thumbprint of a new P-256 key, as a device makes one. */
const newKeyThumbprint = (): Promise<string> => calculateJwkThumbprint(generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" }) as JWK, "sha256");

interface ListedJoinToken {
  id: string;
  server: string;
  state: string;
}

interface ListedClient {
  id: string;
  name: string;
  tokenKey: string | null;
  approvedTokenKey: string | null;
}

let dataDir: string;
let site: OpenedSite;
let server: RunningSiteServer;
let browser: Browser;
let adminToken: string;
let infraToken: string;
let boundKey: string;

before(async () => {
  dataDir = join(tempDir("opencmg-console-security-tasks-"), "data");
  site = await openSite({ dataDir });
  ({ adminToken } = await initSite(site, { code: "P01", name: "Console security tasks" }));
  const pki = await makeTestPki({ serverName: "cmg.contoso.test" });
  await site.services.cmgs.create({ name: "cmg1", serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem, trustedRoots: [pki.root.certPem], crlCheck: false });
  await site.services.servers.add({ fqdn: CP });
  await site.services.roles.add(CP, "cmg-connection-point", { cmgName: "cmg1" });
  // What a connection point asks the site for as it starts: its tunnel certificate, recorded.
  await site.services.cmgTrust.connectionPointCertificate(CP);
  // The settings an instance is sent are signed: the first settings-signing key is made then.
  await site.services.cmgTrust.signedSettings("cmg1");
  // A device registered with a token (what the management point records once the bulk token is
  // proved): its tokens are bound to its key.
  boundKey = await newKeyThumbprint();
  await site.services.clients.registerWithToken({ name: DEVICE, jkt: boundKey });
  infraToken = (await site.services.adminTokens.create("infra", { role: "infrastructure-administrator" })).token;
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
});

const cli = <T,>(args: string[]): Promise<T> => binJson<T>(["--data", dataDir, ...args]);
const stateOf = (keys: ListedKey[], state: string): string[] => keys.filter((k) => k.state === state).map((k) => k.kid);

async function signIn(token: string): Promise<Page> {
  const context = await loopbackContext(browser);
  const page = await context.newPage();
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await nav(page, "Signing Keys and Certificates").click();
  await page.getByRole("heading", { name: "Signing Keys and Certificates" }).waitFor();
  return page;
}

/** Rotates a kind of key in the console, through its dialog, and checks the CLI's list before and after. */
async function rotate(page: Page, a11y: A11yLog, o: { button: string; table: string; list: string[]; says: RegExp }): Promise<void> {
  const before = await cli<ListedKey[]>(o.list);
  const table = page.getByRole("table", { name: o.table });
  await table.waitFor();
  await page.getByRole("button", { name: o.button, exact: true }).click();
  const dialog = page.getByRole("alertdialog");
  await dialog.waitFor();
  assert.match((await dialog.textContent()) ?? "", o.says, "the dialog says what a rotation does");
  await settle(page);
  await a11y.check(page, `${o.button}: the confirmation`);
  await dialog.getByRole("button", { name: "Rotate", exact: true }).click();
  await dialog.waitFor({ state: "detached" });
  const after = await cli<ListedKey[]>(o.list);
  const [current] = stateOf(after, "current");
  assert.ok(current && !before.some((k) => k.kid === current), `a new current key: ${JSON.stringify(after)}`);
  assert.deepEqual(stateOf(after, "previous"), stateOf(before, "current"), "the old current key is previous");
  assert.deepEqual(stateOf(after, "retired").sort(), [...stateOf(before, "retired"), ...stateOf(before, "previous")].sort(), "the old previous key is retired");
  // The page shows the new current key without a reload.
  await table.getByRole("row").filter({ hasText: current }).filter({ hasText: "current" }).waitFor();
  await settle(page);
  await a11y.check(page, `${o.table}, after a rotation`);
}

it("rotates the token signing key and the settings-signing key and revokes a connection point certificate, each after its dialog; the CLI agrees", async () => {
  const page = await signIn(adminToken);
  const a11y = new A11yLog();
  await settle(page);
  await a11y.check(page, "Signing Keys and Certificates");

  await rotate(page, a11y, { button: "Rotate token signing key", table: "Token signing keys", list: ["token", "signing-keys"], says: /tokens it signed stay accepted until the next rotation/ });
  // A second rotation retires the first key.
  await rotate(page, a11y, { button: "Rotate token signing key", table: "Token signing keys", list: ["token", "signing-keys"], says: /The previous key is retired/ });
  await rotate(page, a11y, { button: "Rotate settings-signing key", table: "Settings-signing keys", list: ["cmg", "settings-keys"], says: /keeps signing beside it until the next rotation/ });
  await screenshot(page, "security-keys");

  const [cert] = await cli<ListedCert[]>(["connection-point", "certificates"]);
  assert.equal(cert?.state, "valid");
  const certs = page.getByRole("table", { name: "Connection point certificates" });
  await certs.getByRole("button", { name: `Revoke ${cert.serial}` }).click();
  const dialog = page.getByRole("alertdialog");
  await dialog.waitFor();
  assert.match((await dialog.textContent()) ?? "", new RegExp(`close this connection point's tunnels`));
  await dialog.getByLabel("Reason").fill("server rebuilt");
  await settle(page);
  await a11y.check(page, "Revoke a connection point certificate: the confirmation");
  await dialog.getByRole("button", { name: "Revoke", exact: true }).click();
  await dialog.waitFor({ state: "detached" });
  const [revoked] = await cli<ListedCert[]>(["connection-point", "certificates"]);
  assert.deepEqual({ serial: revoked?.serial, state: revoked?.state, reason: revoked?.revokedReason }, { serial: cert.serial, state: "revoked", reason: "server rebuilt" });
  await page.waitForFunction((s) => (document.querySelector(`button[aria-label="Revoke ${s}"]`) as HTMLButtonElement | null)?.disabled === true, cert.serial);
  assert.match((await certs.textContent()) ?? "", /revoked/);
  await settle(page);
  await a11y.check(page, "Connection point certificate revoked");
  a11y.assertNone();
  await page.context().close();
});

it("approves a new key for a token-registered client from the Clients list, a malformed thumbprint refused beside its field; site clients agrees", async () => {
  const page = await signIn(adminToken);
  const a11y = new A11yLog();
  const clientOf = async () => (await cli<ListedClient[]>(["site", "clients"])).find((c) => c.name === DEVICE)!;
  await nav(page, "Clients").click();
  const table = page.getByRole("table", { name: "Clients" });
  await table.getByRole("button", { name: `Approve new key for ${DEVICE}` }).click();
  const dialog = page.getByRole("alertdialog");
  await dialog.waitFor();
  assert.match((await dialog.textContent()) ?? "", new RegExp(`bound to key ${boundKey}`));
  const field = dialog.getByLabel("Key thumbprint");
  await field.fill("not-a-thumbprint");
  await dialog.getByRole("button", { name: "Approve key", exact: true }).click();
  await page.waitForFunction(() => document.querySelector('[role="alertdialog"] [aria-invalid="true"]') !== null);
  assert.match(await messageOf(page, field), /^Key thumbprint: must be a key thumbprint/);
  await settle(page);
  await a11y.check(page, "Approve a new key: a malformed thumbprint refused");
  assert.equal((await clientOf()).approvedTokenKey, null, "nothing approved");

  const newKey = await newKeyThumbprint();
  await field.fill(newKey);
  await dialog.getByRole("button", { name: "Approve key", exact: true }).click();
  await dialog.waitFor({ state: "detached" });
  await page.getByText(`${DEVICE} may bind key ${newKey} at its next registration.`).waitFor();
  const approved = await clientOf();
  assert.deepEqual({ tokenKey: approved.tokenKey, approvedTokenKey: approved.approvedTokenKey }, { tokenKey: boundKey, approvedTokenKey: newKey });
  await settle(page);
  await a11y.check(page, "Clients, a new key approved");
  a11y.assertNone();
  await page.context().close();
});

it("creates a server join token shown once with the CA SHA-256 and the join command, lists it, and revokes it after a dialog; server join-token list agrees", async () => {
  const page = await signIn(adminToken);
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: new URL(server.consoleUrl).origin });
  const a11y = new A11yLog();
  const tokens = () => cli<ListedJoinToken[]>(["server", "join-token", "list"]);
  await nav(page, "Server Join Tokens").click();
  await page.getByText("No join token.").waitFor();
  const form = page.getByRole("form", { name: "Create Join Token" });
  await form.getByRole("combobox", { name: "Server" }).click();
  await page.getByRole("option", { name: CP, exact: true }).click();
  const lifetime = form.getByLabel("Lifetime (minutes)");
  await lifetime.fill("0");
  await form.getByRole("button", { name: "Create" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-invalid="true"]') !== null);
  assert.match(await messageOf(page, lifetime), /^Lifetime \(minutes\): must be /);
  await settle(page);
  await a11y.check(page, "Server Join Tokens, a lifetime refused");
  assert.deepEqual(await tokens(), [], "nothing created");

  await lifetime.fill("30");
  await form.getByRole("button", { name: "Create" }).click();
  const tokenField = page.getByLabel("Join token", { exact: true });
  await tokenField.waitFor();
  const token = await tokenField.inputValue();
  const caSha256 = await page.getByLabel("Site CA SHA-256 (to pin)").inputValue();
  assert.match(caSha256, /^[0-9a-f:]{64,}$/i);
  assert.match((await page.locator("pre").textContent()) ?? "", new RegExp(`opencmg server join --site \\S+ --site-ca-sha256 ${caSha256} --token -`));
  const [made] = await tokens();
  assert.deepEqual({ server: made?.server, state: made?.state }, { server: CP, state: "active" });
  await page.getByRole("button", { name: "Copy", exact: true }).click();
  await page.getByText("Copied.").waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);
  const table = page.getByRole("table", { name: "Join tokens" });
  await table.getByRole("button", { name: `Revoke ${made!.id}` }).waitFor();
  assert.ok(!((await table.textContent()) ?? "").includes(token), "the list never holds the token");
  await settle(page);
  await a11y.check(page, "Server Join Tokens, a token just created");
  await page.getByRole("button", { name: "Done", exact: true }).click();
  await tokenField.waitFor({ state: "detached" });

  await table.getByRole("button", { name: `Revoke ${made!.id}` }).click();
  const dialog = page.getByRole("alertdialog");
  await dialog.waitFor();
  assert.match((await dialog.textContent()) ?? "", /joins nothing once revoked/);
  await settle(page);
  await a11y.check(page, "Revoke a join token: the confirmation");
  await dialog.getByRole("button", { name: "Revoke", exact: true }).click();
  await dialog.waitFor({ state: "detached" });
  await page.waitForFunction((id) => (document.querySelector(`button[aria-label="Revoke ${id}"]`) as HTMLButtonElement | null)?.disabled === true, made!.id);
  assert.equal((await tokens())[0]!.state, "revoked");
  await settle(page);
  await a11y.check(page, "Server Join Tokens, the token revoked");
  a11y.assertNone();
  await page.context().close();
});

it("an Infrastructure Administrator finds the token signing key's Rotate and the join token's Create disabled with the reason, and may rotate the settings-signing key", async () => {
  const page = await signIn(infraToken);
  const a11y = new A11yLog();
  await page.getByRole("table", { name: "Token signing keys" }).waitFor();
  await assertChangeDisabled(page, page.getByRole("button", { name: "Rotate token signing key", exact: true }), "Rotate token signing key", /is a Infrastructure Administrator: only a Full Administrator/);
  assert.equal(await page.getByRole("button", { name: "Rotate settings-signing key", exact: true }).isDisabled(), false);
  await nav(page, "Server Join Tokens").click();
  await assertChangeDisabled(page, page.getByRole("form", { name: "Create Join Token" }).getByRole("button", { name: "Create" }), "Create join token", /only a Full Administrator/);
  await settle(page);
  await a11y.check(page, "Signing Keys and Certificates as an Infrastructure Administrator");
  a11y.assertNone();
  await page.context().close();
});
