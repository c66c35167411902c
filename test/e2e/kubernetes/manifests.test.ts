/**
 * `opencmg cmg manifests NAME --kubernetes` for a kubernetes-provider CMG: every object valid
 * against the Kubernetes API schemas (kubernetes-models), the pods' DNS names as the instance
 * addresses the connection points dial (and in the tunnel certificate), one start-up file per
 * instance in the Secrets, and the kustomize base in deploy/kubernetes/ equal to what is generated.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { loadAllYaml, type KubernetesObject } from "@kubernetes/client-node";
import { Service } from "kubernetes-models/v1/Service";
import { Secret } from "kubernetes-models/v1/Secret";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import type { IStatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import type { IService } from "kubernetes-models/v1/Service";
import type { ISecret } from "kubernetes-models/v1/Secret";
import { runCli } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/databases.ts";
import { makeTestPki, type TestPki } from "../../helpers/pki-fixtures.ts";
import { startupFileSchema } from "../../../src/gateway/startup-file.ts";

const ROOT = join(import.meta.dirname, "..", "..", "..");
const root = tempDir("opencmg-manifests-");
const data = join(root, "site");
let pki: TestPki;

async function opencmg(args: string[]): Promise<string> {
  const r = await runCli(["--data", data, ...args]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}
const file = (name: string, text: string): string => (writeFileSync(join(root, name), text), join(root, name));

/** Each object checked against its kind's API schema; throws naming what is wrong. */
function validate(o: KubernetesObject): void {
  const kinds: Record<string, (x: never) => { validate(): void }> = {
    "v1/Service": (x) => new Service(x),
    "v1/Secret": (x) => new Secret(x),
    "v1/ServiceAccount": (x) => new ServiceAccount(x),
    "apps/v1/StatefulSet": (x) => new StatefulSet(x),
    "policy/v1/PodDisruptionBudget": (x) => new PodDisruptionBudget(x),
    "rbac.authorization.k8s.io/v1/Role": (x) => new Role(x),
    "rbac.authorization.k8s.io/v1/RoleBinding": (x) => new RoleBinding(x),
  };
  const make = kinds[`${o.apiVersion}/${o.kind}`];
  assert.ok(make, `an object of a kind not expected: ${o.apiVersion} ${o.kind}`);
  make(o as never).validate();
}

/** The objects of a YAML stream as plain data (the client's loader makes instances of its own classes). */
const yamlObjects = (text: string): unknown[] => JSON.parse(JSON.stringify(loadAllYaml(text))) as unknown[];

const podName = (i: number): string => `gw1-${i}.gw1-instances.cmg-ns.svc.k8s.contoso.test`;

before(async () => {
  pki = await makeTestPki({ serverName: "gw1.contoso.test" });
  await opencmg(["site", "init"]);
  await opencmg(["cmg", "create", "gw1", "--server-cert", file("server.pem", pki.server.certPem), "--server-key", file("server.key", pki.server.keyPem), "--trusted-root", file("root.pem", pki.root.certPem),
    "--instances", "3", "--provider", "kubernetes", "--namespace", "cmg-ns", "--cluster-domain", "k8s.contoso.test", "--image", "registry.contoso.test/opencmg-gateway:1"]);
});
after(() => rmSync(root, { recursive: true, force: true }));

it("a kubernetes CMG's instances are its pods' DNS names: what the connection points dial", async () => {
  const view = JSON.parse(await opencmg(["cmg", "show", "gw1", "--json"])) as { provider: string; instances: { index: number; tunnelHost: string; tunnelPort: number; clientPort: number }[] };
  assert.equal(view.provider, "kubernetes");
  assert.deepEqual(view.instances.map((i) => [i.tunnelHost, i.tunnelPort, i.clientPort]), [0, 1, 2].map((i) => [podName(i), 10140, 443]));
});

it("every object is valid against the Kubernetes API schemas, and says what the cluster runs", async () => {
  const objects = yamlObjects(await opencmg(["cmg", "manifests", "gw1", "--kubernetes"])) as KubernetesObject[];
  for (const o of objects) validate(o);
  assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata!.name}`), ["Secret/gw1-bundle", "Secret/gw1-instance-0", "Secret/gw1-instance-1", "Secret/gw1-instance-2", "Service/gw1", "Service/gw1-instances", "StatefulSet/gw1", "PodDisruptionBudget/gw1"]);
  for (const o of objects) {
    assert.equal(o.metadata!.namespace, "cmg-ns");
    assert.equal(o.metadata!.labels!["opencmg.io/cmg"], "gw1", "the label the provider deletes by");
  }
  const sts = objects.find((o) => o.kind === "StatefulSet") as IStatefulSet;
  const spec = sts.spec!;
  assert.equal(spec.replicas, 3);
  assert.equal(spec.serviceName, "gw1-instances");
  const pod = spec.template.spec!;
  const c = pod.containers[0]!;
  assert.equal(c.image, "registry.contoso.test/opencmg-gateway:1");
  assert.deepEqual(c.args, ["gateway", "serve", "--config", "/etc/opencmg/bundle/instance-$(POD_INDEX).json"]);
  assert.equal(c.env![0]!.valueFrom!.fieldRef!.fieldPath, "metadata.labels['apps.kubernetes.io/pod-index']");
  assert.equal(c.readinessProbe!.httpGet!.path, "/healthz");
  assert.ok(c.resources!.requests!.cpu && c.resources!.requests!.memory);
  assert.deepEqual(c.securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] } });
  assert.equal(pod.securityContext!.runAsUser, 10001);
  const svc = objects.find((o) => o.kind === "Service" && o.metadata!.name === "gw1") as IService;
  assert.equal(svc.spec!.type, "LoadBalancer");
  assert.deepEqual(svc.spec!.ports!.map((p) => p.port), [443]);
  const headless = objects.find((o) => o.metadata!.name === "gw1-instances") as IService;
  assert.equal(headless.spec!.clusterIP, "None");
  assert.equal(headless.spec!.publishNotReadyAddresses, true, "a pod is dialled before it is ready");
  assert.deepEqual(headless.spec!.selector, spec.selector.matchLabels);
  const pdb = objects.find((o) => o.kind === "PodDisruptionBudget")!;
  assert.deepEqual((pdb as { spec: { selector: unknown } }).spec.selector, spec.selector);

  // The bundle: instance i listens on the pod's address, on the ports the objects name; the tunnel certificate names every pod.
  const secretData = (n: string): Record<string, string> => Object.fromEntries(Object.entries((objects.find((o) => o.metadata!.name === n) as ISecret).data!).map(([k, v]) => [k, Buffer.from(v, "base64").toString()]));
  const shared = secretData("gw1-bundle");
  assert.deepEqual(Object.keys(shared).sort(), ["server.key", "server.pem", "site-ca.pem", "tunnel.key", "tunnel.pem"]);
  const sans = new X509Certificate(shared["tunnel.pem"]!).subjectAltName!;
  for (const i of [0, 1, 2, 15]) assert.ok(sans.includes(`DNS:${podName(i)}`), `the tunnel certificate names ${podName(i)}: ${sans}`);
  for (const i of [0, 1, 2]) {
    const f = startupFileSchema.parse(JSON.parse(secretData(`gw1-instance-${i}`)[`instance-${i}.json`]!));
    assert.equal(f.index, i);
    assert.deepEqual([f.client, f.tunnel, f.metrics], [{ host: "0.0.0.0", port: 443 }, { host: "0.0.0.0", port: 10140 }, { host: "0.0.0.0", port: 9440 }]);
  }
  const ports = Object.fromEntries(c.ports!.map((p) => [p.name, p.containerPort]));
  assert.deepEqual(ports, { client: 443, tunnel: 10140, metrics: 9440 });
});

it("--out writes one file per object and a kustomization; the Secrets' files are private", async () => {
  const out = join(root, "out");
  await opencmg(["cmg", "manifests", "gw1", "--kubernetes", "--namespace", "cmg-ns", "--out", out]);
  const k = yamlObjects(readFileSync(join(out, "kustomization.yaml"), "utf8"))[0] as { resources: string[] };
  assert.equal(k.resources.length, 8);
  for (const f of k.resources) {
    const [o] = yamlObjects(readFileSync(join(out, f), "utf8")) as KubernetesObject[];
    validate(o!);
    assert.equal(statSync(join(out, f)).mode & 0o777, o!.kind === "Secret" ? 0o600 : 0o644, f);
  }
});

it("refuses another namespace than the CMG's, and a CMG of another provider", async () => {
  const r = await runCli(["--data", data, "cmg", "manifests", "gw1", "--kubernetes", "--namespace", "other"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /namespace.*must be cmg-ns/);
  const other = await makeTestPki({ serverName: "ext1.contoso.test" });
  await opencmg(["cmg", "create", "ext1", "--server-cert", file("ext1.pem", other.server.certPem), "--server-key", file("ext1.key", other.server.keyPem), "--provider", "external"]);
  const ext = await runCli(["--data", data, "cmg", "manifests", "ext1", "--kubernetes"]);
  assert.equal(ext.code, 2);
  assert.match(ext.stderr, /external provider: manifests are for a CMG created with --provider kubernetes/);
});

it("deploy/kubernetes/: the base is what the product generates, and the RBAC manifest is valid", async () => {
  const { kubernetesManifests } = await import("../../../src/cmg/kubernetes/manifests.ts");
  const { kubernetesSettings } = await import("../../../src/cmg/kubernetes/settings.ts");
  const { VERSION } = await import("../../../src/version.ts");
  const base = yamlObjects(readFileSync(join(ROOT, "deploy", "kubernetes", "gateway.yaml"), "utf8")) as KubernetesObject[];
  const generated = kubernetesManifests({ name: "cmg1", instanceCount: 2, runState: "running" }, kubernetesSettings({}, VERSION), null);
  assert.deepEqual(JSON.parse(JSON.stringify(base)), JSON.parse(JSON.stringify(generated)));
  for (const o of base) validate(o);
  const rbac = yamlObjects(readFileSync(join(ROOT, "deploy", "kubernetes", "rbac.yaml"), "utf8")) as KubernetesObject[];
  assert.deepEqual(rbac.map((o) => o.kind), ["ServiceAccount", "Role", "RoleBinding"]);
  for (const o of rbac) validate(o);
});
