/**
 * `--provider kubernetes`: creating, scaling, stopping, starting and deleting a CMG send the
 * documented requests to the cluster its kubeconfig names (server-side apply with field manager
 * "opencmg", forced; list by the CMG's label and delete), and its status follows the StatefulSet's
 * ready replicas and the tunnels. No Kubernetes API server can run here: the cluster is the
 * stand-in of test/helpers/kube-apiserver.ts (HTTPS on loopback), which checks each request and
 * validates each body against the Kubernetes schemas.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { runCli } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/databases.ts";
import { startKubeApiServer, type KubeApiServer, type KubeRequest } from "../../helpers/kube-apiserver.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { until } from "../../helpers/until.ts";
import { openSite } from "../../../src/site/site.ts";
import { startSiteServer } from "../../../src/app/site-server.ts";

const root = tempDir("opencmg-kube-provider-");
const data = join(root, "site");
const NS = "cmg-ns";
let pki: TestPki;
let api: KubeApiServer;

async function opencmg(args: string[]): Promise<string> {
  const r = await runCli(["--data", data, ...args]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}
const file = (name: string, text: string): string => (writeFileSync(join(root, name), text), join(root, name));
const show = async (): Promise<{ status: string; statusReason: string }> => JSON.parse(await opencmg(["cmg", "show", "cmg1", "--json"])) as { status: string; statusReason: string };

/** The requests a step sent: runs it, returns them without the discovery requests the client makes once. */
async function sent(step: () => Promise<unknown>): Promise<KubeRequest[]> {
  const from = api.requests.length;
  await step();
  return api.requests.slice(from).filter((r) => r.object !== "discovery");
}

/** A server-side apply of each named object, as the API documents it. */
function assertApplied(reqs: KubeRequest[], objects: string[]): void {
  assert.deepEqual(reqs.map((r) => `${r.method} ${r.object}`), objects.map((o) => `PATCH ${o}`));
  for (const r of reqs) {
    assert.equal(r.contentType, "application/apply-patch+yaml");
    assert.equal(r.query.fieldManager, "opencmg");
    assert.equal(r.query.force, "true");
  }
}

const replicas = (): number | undefined => api.objects.get(`StatefulSet/${NS}/cmg1`)?.spec?.replicas;
const secrets = (n: number): string[] => [`Secret/${NS}/cmg1-bundle`, ...Array.from({ length: n }, (_, i) => `Secret/${NS}/cmg1-instance-${i}`)];
const rest = [`Service/${NS}/cmg1`, `Service/${NS}/cmg1-instances`, `StatefulSet/${NS}/cmg1`, `PodDisruptionBudget/${NS}/cmg1`];

before(async () => {
  pki = await makeTestPki({ serverName: "cmg1.contoso.test" });
  // The stand-in's certificate names 127.0.0.1; the kubeconfig carries the CA that issued it.
  api = await startKubeApiServer({ certPem: pki.server.certPem, keyPem: pki.server.keyPem, caPem: pki.root.certPem });
  await opencmg(["site", "init"]);
  await opencmg(["server", "add", "cp01.contoso.test"]);
});
after(async () => {
  await api?.close();
  rmSync(root, { recursive: true, force: true });
});

it("create applies the CMG's objects to the cluster its kubeconfig names; the status waits for the pods", async () => {
  const kubeconfig = file("kubeconfig", api.kubeconfig(NS));
  const reqs = await sent(() =>
    opencmg(["cmg", "create", "cmg1", "--server-cert", file("server.pem", pki.server.certPem), "--server-key", file("server.key", pki.server.keyPem), "--trusted-root", file("root.pem", pki.root.certPem),
      "--provider", "kubernetes", "--namespace", NS, "--kubeconfig", kubeconfig, "--image", "registry.contoso.test/opencmg-gateway:1"]),
  );
  assertApplied(reqs, [...secrets(1), ...rest]);
  assert.deepEqual(api.problems, []);
  assert.equal(replicas(), 1);
  assert.equal(api.requests.filter((r) => r.object === "discovery").length > 0, true, "the client learnt the resources from discovery");
  const s = await show();
  assert.match(s.statusReason, /0 of 1 pod\(s\) ready/);

  // A tunnel up and the pod ready: Ready. The pod not ready: not Ready, whatever the tunnels say.
  await opencmg(["role", "add", "cp01.contoso.test", "cmg-connection-point", "--cmg", "cmg1"]);
  const site = await openSite({ dataDir: data });
  try {
    await site.services.cmgs.reportTunnels("cmg1", "cp01.contoso.test", [{ instance: 0, connected: true, detail: "connected" }]);
    const { observeKubernetesCmg } = await import("../../../src/cmg/kubernetes/provider.ts");
    await observeKubernetesCmg(site, "cmg1");
    assert.equal((await show()).status, "Degraded");
    api.setReady(NS, "cmg1", 1);
    await observeKubernetesCmg(site, "cmg1");
    const ready = await show();
    assert.equal(ready.status, "Ready", ready.statusReason);
    assert.match(ready.statusReason, /1 of 1 pod\(s\) ready/);
  } finally {
    await site.close();
  }
});

it("scaling 1 -> 3 -> 1 applies the StatefulSet's replicas and each instance's start-up Secret", async () => {
  assertApplied(await sent(() => opencmg(["cmg", "update", "cmg1", "--instances", "3"])), [...secrets(3), ...rest]);
  assert.equal(replicas(), 3);
  const started = JSON.parse(Buffer.from(String((api.objects.get(`Secret/${NS}/cmg1-instance-2`)!.data as Record<string, string>)["instance-2.json"]), "base64").toString()) as { index: number };
  assert.equal(started.index, 2);
  assert.match((await show()).statusReason, /1 of 3 pod\(s\) ready/);
  assertApplied(await sent(() => opencmg(["cmg", "update", "cmg1", "--instances", "1"])), [...secrets(1), ...rest]);
  assert.equal(replicas(), 1);
  assert.deepEqual(api.problems, []);
});

it("stop scales the StatefulSet to 0 (Stopping while a tunnel is up, then Stopped); start back to the instance count", async () => {
  assertApplied(await sent(() => opencmg(["cmg", "stop", "cmg1"])), [...secrets(1), ...rest]);
  assert.equal(replicas(), 0);
  assert.equal((await show()).status, "Stopping", "a tunnel is still reported up");
  const site = await openSite({ dataDir: data });
  try {
    await site.services.cmgs.reportTunnels("cmg1", "cp01.contoso.test", [{ instance: 0, connected: false, detail: "stopped" }]);
  } finally {
    await site.close();
  }
  assert.equal((await show()).status, "Stopped", "the stand-in's ready replicas follow the replicas: none of 0");
  assertApplied(await sent(() => opencmg(["cmg", "start", "cmg1"])), [...secrets(1), ...rest]);
  assert.equal(replicas(), 1);
  assert.deepEqual(api.problems, []);
});

it("through the admin API, site serve applies a stop and a start to the cluster", async () => {
  const site = await openSite({ dataDir: data });
  const server = await startSiteServer({ site, listen: { host: "127.0.0.1", port: 0 }, transport: { kind: "http" }, endpointCheck: false, console: { dir: null }, localCmgs: { pollMs: 200 } });
  try {
    const token = readFileSync(join(data, "admin.token"), "utf8").trim();
    const post = (path: string) => fetch(`${server.url}/api/v1/cmgs/cmg1/${path}`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
    assert.equal((await post("stop")).status, 200);
    await until("site serve to scale the StatefulSet to 0", () => replicas() === 0);
    assert.equal((await post("start")).status, 200);
    await until("site serve to scale it back to 1", () => replicas() === 1);
  } finally {
    await server.close();
    await site.close();
  }
  assert.deepEqual(api.problems, []);
});

it("delete removes every object of the CMG by its label, then the CMG", async () => {
  const reqs = await sent(() => opencmg(["cmg", "delete", "cmg1"]));
  const lists = reqs.filter((r) => r.method === "GET");
  assert.deepEqual(lists.map((r) => r.object), [`StatefulSet/${NS}`, `PodDisruptionBudget/${NS}`, `Service/${NS}`, `Secret/${NS}`]);
  for (const l of lists) assert.equal(l.query.labelSelector, "opencmg.io/cmg=cmg1");
  assert.deepEqual(
    reqs.filter((r) => r.method === "DELETE").map((r) => r.object).sort(),
    [...secrets(3), ...rest].sort(),
    "every object it created, the Secrets of instances scaled away included",
  );
  assert.equal(api.objects.size, 0);
  assert.deepEqual(api.problems, []);
  const gone = await runCli(["--data", data, "cmg", "show", "cmg1"]);
  assert.notEqual(gone.code, 0);
});
