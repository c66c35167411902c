/**
 * The console's Create Cloud Management Gateway wizard with the kubernetes provider, in a real
 * browser: the provider offered, its kubeconfig path and namespace asked on the Settings page and
 * shown in the Summary; once created, `site serve` applies the CMG to the cluster the kubeconfig
 * names (the stand-in API server of test/helpers/kube-apiserver.ts).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import type { Browser, Page } from "playwright-core";
import { initSite, openSite, type OpenedSite } from "../../../src/site/site.ts";
import { startSiteServer, type RunningSiteServer } from "../../../src/app/site-server.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { tempDir } from "../../helpers/databases.ts";
import { launchBrowser } from "../../helpers/browser.ts";
import { startKubeApiServer, type KubeApiServer } from "../../helpers/kube-apiserver.ts";
import { until } from "../../helpers/until.ts";

const NS = "gateways";
let site: OpenedSite;
let token: string;
let server: RunningSiteServer;
let browser: Browser;
let page: Page;
let pki: TestPki;
let api: KubeApiServer;
let files: Record<"cert" | "key" | "kubeconfig", string>;

before(async () => {
  const dir = tempDir("opencmg-console-kube-");
  pki = await makeTestPki({ serverName: "gw.contoso.test" });
  api = await startKubeApiServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem });
  files = { cert: join(dir, "gw.pem"), key: join(dir, "gw.key"), kubeconfig: join(dir, "kubeconfig") };
  writeFileSync(files.cert, pki.server.certPem);
  writeFileSync(files.key, pki.server.keyPem, { mode: 0o600 });
  writeFileSync(files.kubeconfig, api.kubeconfig(NS), { mode: 0o600 });
  site = await openSite({ dataDir: join(dir, "data") });
  token = (await initSite(site, { code: "P01", name: "Console kubernetes test" })).adminToken;
  server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, localCmgs: { pollMs: 200 } });
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 1000 } })).newPage();
});

after(async () => {
  await browser?.close();
  await server?.close();
  await site?.close();
  await api?.close();
});

it("the wizard offers the kubernetes provider with a kubeconfig path and namespace; site serve applies the CMG", async () => {
  await page.goto(server.consoleUrl);
  await page.getByLabel("Admin token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Cloud Management Gateway", exact: true }).first().click();
  await page.getByRole("button", { name: "Create Cloud Management Gateway" }).click();
  await page.getByRole("heading", { level: 2, name: "General" }).waitFor();
  await page.getByRole("combobox", { name: "Provider" }).click();
  await page.getByRole("option", { name: "Kubernetes: instances run as pods in a cluster" }).click();
  await page.getByRole("button", { name: "Next" }).click();

  await page.getByRole("heading", { level: 2, name: "Settings" }).waitFor();
  await page.getByLabel("Certificate file", { exact: true }).setInputFiles(files.cert);
  await page.getByLabel("Private key file").setInputFiles(files.key);
  assert.equal(await page.getByLabel("Listen address").count(), 0, "no local deployment fields for a cluster");
  await page.getByLabel("Kubeconfig path").fill(files.kubeconfig);
  await page.getByLabel("Namespace").fill(NS);
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Alerts" }).waitFor();
  await page.getByRole("button", { name: "Next" }).click();
  await page.getByRole("heading", { level: 2, name: "Summary" }).waitFor();
  const summary = await page.getByLabel("Summary").innerText();
  assert.match(summary, /Kubeconfig path\s+\S*kubeconfig/);
  assert.match(summary, new RegExp(`Namespace\\s+${NS}`));
  await page.getByRole("button", { name: "Create" }).click();

  await until("site serve to apply the CMG's StatefulSet", () => api.objects.get(`StatefulSet/${NS}/gw`));
  const view = await site.services.cmgs.show("gw");
  assert.equal(view.provider, "kubernetes");
  assert.deepEqual({ namespace: view.deploy.kubernetes!.namespace, kubeconfig: view.deploy.kubernetes!.kubeconfig }, { namespace: NS, kubeconfig: files.kubeconfig });
  assert.equal(view.instances[0]!.tunnelHost, `gw-0.gw-instances.${NS}.svc.cluster.local`);
  assert.deepEqual(api.problems, []);
});
