/**
 * The connection analyzer with a server certificate from a private CA, in a real browser and from
 * the command line in another process: the instance presents exactly the certificate the site
 * configured, so it is not called untrusted (the detail says so); the location request is made
 * once the handshake succeeds; a root the administrator chooses in the console (listed by
 * subject) and, for `cmg analyze`, the roots this machine trusts (NODE_EXTRA_CA_CERTS) make the
 * chain trusted; an instance presenting another certificate than the configured one fails that
 * check and the location request is made all the same; what to do reads in the console's words
 * there and in flags at the command line.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { gatewayLogs, startGatewayInstance, type GatewayInstance } from "../../../src/gateway/instance.ts";
import { loadStartupFile } from "../../../src/gateway/startup-file.ts";
import { writeCmgBundle } from "../../../src/cmg/bundle.ts";
import { runConnectionPointRole, type RunningConnectionPoint } from "../../../src/roles/cmg-connection-point/role.ts";
import { connectionPointRoleDeps } from "../../../src/app/role-deps.ts";
import { createCa, issueCert } from "../../../src/pki/issue.ts";
import type { CmgAnalysis } from "../../../src/site/services/cmg-analyze.ts";
import { makeTestPki } from "../../helpers/pki-fixtures.ts";
import { freePortRange } from "../../helpers/ports.ts";
import { tempDir } from "../../helpers/databases.ts";
import { runBinAsync } from "../../helpers/bin.ts";
import { until } from "../../helpers/until.ts";
import { accessibilityFailures, launchBrowser, screenshot } from "../../helpers/browser.ts";

const CP = "cp01.contoso.test";
const FQDN = "cmg.contoso.test";
let dataDir: string;
let site: OpenedSite;
let token: string;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let serverRootFile: string;
let serverRoot: Awaited<ReturnType<typeof createCa>>;
let mpRole: number;
const instances: GatewayInstance[] = [];
let cp: RunningConnectionPoint | undefined;

before(async () => {
  const dir = tempDir("opencmg-console-analyzer-");
  dataDir = join(dir, "data");
  // The server certificate's CA is private and not among the CMG's trusted roots (those are for client certificates).
  serverRoot = await createCa({ commonName: "Contoso Private Server CA" });
  const serverCert = await issueCert({ issuer: serverRoot, commonName: FQDN, dnsNames: [FQDN], ipAddresses: ["127.0.0.1"], usage: "server" });
  const clients = await makeTestPki({ serverName: "unused.contoso.test" });
  serverRootFile = join(dir, "server-root.pem");
  writeFileSync(serverRootFile, serverRoot.certPem);
  site = await openSite({ dataDir });
  token = (await initSite(site, { code: "P01", name: "Console analyzer test" })).adminToken;
  await site.services.servers.add({ fqdn: "mp01.contoso.test" });
  mpRole = (await site.services.roles.add("mp01.contoso.test", "management-point", { allowCmgTraffic: true, internalUrl: "http://127.0.0.1:9" })).id;
  const [clientPort, tunnelPort] = [await freePortRange(1), await freePortRange(1)];
  await site.services.cmgs.create({
    name: "cmg1",
    serverCertPem: serverCert.certPem,
    serverKeyPem: serverCert.keyPem,
    trustedRoots: [clients.root.certPem],
    intermediates: [clients.intermediate.certPem],
    crlCheck: false,
    provider: "external",
    deploy: { listenHost: "127.0.0.1", publicHost: "127.0.0.1", instanceHost: "127.0.0.1", clientPortBase: clientPort, tunnelPortBase: tunnelPort, metricsPortBase: 0 },
  });
  await site.services.servers.add({ fqdn: CP });
  await site.services.roles.add(CP, "cmg-connection-point", { cmgName: "cmg1" });
  const bundle = await writeCmgBundle(site, await site.services.cmgs.show("cmg1"));
  for (const f of bundle.files) instances.push(await startGatewayInstance({ ...loadStartupFile(f), metrics: null }, { log: gatewayLogs(site.logs) }));
  cp = await runConnectionPointRole(connectionPointRoleDeps(site), CP, { healthIntervalMs: 300, pollMs: 200 });
  await until("the CMG to be Ready", async () => (await site.services.cmgs.show("cmg1")).status === "Ready");
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { live: { pollMs: 500 } } });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
});

after(async () => {
  await cp?.stop();
  for (const i of instances) await i.stop({ graceMs: 100 });
  await browser?.close();
  await server?.close();
  await site?.close();
});

/** `opencmg cmg analyze` in another process (this one keeps serving the instance meanwhile). */
function cliAnalyze(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runBinAsync(["--data", dataDir, "cmg", "analyze", "cmg1", ...args], env);
}

const PRIVATE_CA = /^exactly the server certificate the site configured for the CMG \([^)]+\), for cmg\.contoso\.test; no root trusted here issued it \(/;
const TRUSTED = /^exactly the server certificate the site configured for the CMG \([^)]+\), for cmg\.contoso\.test; its chain is trusted here$/;
/** A command, a flag or a placeholder: the command line's words, not the console's. */
const CLI_WORDS = /opencmg |(^|\s)--[a-z]|\bNAME\b|\bFILE\b/;

it("the console's analyzer: the configured private-CA certificate passes, the location request runs, a chosen root is listed by subject, fixes name what to click", async () => {
  const a11y: string[] = [];
  const check = async (state: string) => {
    const f = await accessibilityFailures(page, state);
    if (f) a11y.push(f);
  };
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("navigation", { name: "Workspaces" }).getByRole("link", { name: "Cloud Management Gateway", exact: true }).first().click();
  await page.getByRole("checkbox", { name: "Select cmg1" }).check();
  await page.getByRole("button", { name: "Connection analyzer" }).click();
  const results = page.getByRole("table", { name: "Connection analyzer results" });
  await results.waitFor({ timeout: 60_000 });
  const rows = async () =>
    results.locator("tbody tr").evaluateAll((trs) =>
      trs.map((tr) => {
        const td = [...tr.querySelectorAll("td")].map((c) => c.textContent ?? "");
        return { check: td[0]!, status: td[2]!, detail: td[3]!, fix: td[4]! };
      }),
    );
  const row = (all: Awaited<ReturnType<typeof rows>>, name: string) => {
    const r = all.find((x) => x.check === name);
    assert.ok(r, `no row "${name}" in ${JSON.stringify(all.map((x) => x.check))}`);
    return r;
  };
  let shown = await rows();
  const presented = row(shown, "instance 0 presented certificate");
  assert.equal(presented.status, "pass");
  assert.match(presented.detail, PRIVATE_CA);
  // The location request ran: the gateway itself answered (no client certificate was given).
  const located = row(shown, `location request via instance 0 to management point ${mpRole}`);
  assert.match(located.detail, /^refused by the gateway's client certificate presence check \(403 no_certificate\)/);
  assert.match(row(shown, "client certificate").fix, /^choose a client certificate file a device uses/);
  assert.deepEqual(shown.filter((r) => CLI_WORDS.test(r.fix)), [], "fixes in the console's words");
  await check("Connection analyzer, private-CA server certificate, no root chosen, dialog open");

  // The root devices get at install, chosen here: listed by its subject, and the chain is trusted.
  await page.getByLabel("Trusted root for the server certificate (PEM, optional)").setInputFiles(serverRootFile);
  const chosen = page.getByRole("list", { name: "Trusted roots for the server certificate" });
  await chosen.getByText("CN=Contoso Private Server CA", { exact: true }).waitFor();
  await page.getByRole("button", { name: "Analyze again" }).click();
  await page.waitForFunction(() => [...document.querySelectorAll("table[aria-label='Connection analyzer results'] td")].some((td) => td.textContent?.endsWith("its chain is trusted here")));
  shown = await rows();
  assert.match(row(shown, "instance 0 presented certificate").detail, TRUSTED);
  await screenshot(page, "cmg-connection-analyzer-private-ca");
  await check("Connection analyzer, a trusted root chosen and listed by subject, dialog open");
  assert.deepEqual(a11y, [], a11y.join("\n\n"));
});

it("cmg analyze at the command line: NODE_EXTRA_CA_CERTS counts as trusted; what to do names the flags", async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENCMG_DATA: "" };
  delete env.NODE_EXTRA_CA_CERTS;
  const plain = await cliAnalyze(["--json"], env);
  const a = JSON.parse(plain.stdout) as CmgAnalysis;
  const presented = a.checks.find((c) => c.check === "instance 0 presented certificate");
  assert.equal(presented?.status, "pass", plain.stdout + plain.stderr);
  assert.match(presented.detail, PRIVATE_CA);
  assert.match(presented.cliFix ?? "", /check with --ca FILE$/);
  const location = a.checks.find((c) => c.check === `location request via instance 0 to management point ${mpRole}`);
  assert.equal(location?.reason, "no_certificate", "the location request ran");

  const text = await cliAnalyze([], env);
  assert.match(text.stdout, /^SKIP {2}client certificate: no client certificate given\n {6}to check it: give one a device uses \(--cert FILE --key FILE\)/m);

  const trusting = await cliAnalyze(["--json"], { ...env, NODE_EXTRA_CA_CERTS: serverRootFile });
  const t = JSON.parse(trusting.stdout) as CmgAnalysis;
  assert.match(t.checks.find((c) => c.check === "instance 0 presented certificate")?.detail ?? "", TRUSTED, trusting.stdout + trusting.stderr);
});

it("an instance presenting another certificate than the configured one fails that check, and the location request is still made", async () => {
  // No connection point to push the renewal: the instance keeps presenting the certificate it started with.
  await cp?.stop();
  cp = undefined;
  const renewed = await issueCert({ issuer: serverRoot, commonName: FQDN, dnsNames: [FQDN], ipAddresses: ["127.0.0.1"], usage: "server" });
  await site.services.cmgs.update("cmg1", { serverCertPem: renewed.certPem, serverKeyPem: renewed.keyPem });
  const env: NodeJS.ProcessEnv = { ...process.env, OPENCMG_DATA: "" };
  delete env.NODE_EXTRA_CA_CERTS;
  const r = await cliAnalyze(["--json"], env);
  const a = JSON.parse(r.stdout) as CmgAnalysis;
  const presented = a.checks.find((c) => c.check === "instance 0 presented certificate");
  assert.equal(presented?.status, "fail", r.stdout);
  assert.match(presented.detail, /^it presents [0-9A-F]+, not the server certificate the site configured \([0-9A-F]+\); its chain is not trusted here/);
  const location = a.checks.find((c) => c.check === `location request via instance 0 to management point ${mpRole}`);
  assert.notEqual(location?.status, undefined, JSON.stringify(a.checks.map((c) => c.check)));
  assert.match(location!.detail, /^refused by the gateway's /, "the gateway answered the location request");
});
