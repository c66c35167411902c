/**
 * What a cluster needs to run a CMG's instances (`opencmg cmg manifests NAME --kubernetes`, and
 * what the kubernetes provider applies): a StatefulSet (pod i is instance i), a LoadBalancer
 * Service for devices on 443, a headless Service that gives each pod the DNS name the connection
 * points dial, the start-up bundle as Secrets (the shared keys, one start-up file per instance) and
 * a PodDisruptionBudget. Every object carries the CMG's label: the provider deletes by it.
 */
import type { V1PodDisruptionBudget, V1Secret, V1Service, V1StatefulSet } from "@kubernetes/client-node";
import type { BundleContent, InstanceListeners } from "../bundle.ts";
import type { CmgView } from "../../site/services/cmgs.ts";
import { instancesService, MAX_INSTANCES, POD_PORTS, type KubernetesSettings } from "./settings.ts";

export { POD_PORTS } from "./settings.ts";

export type KubeObject = V1StatefulSet | V1Service | V1Secret | V1PodDisruptionBudget;

/** The label every object of a CMG carries (the provider lists and deletes by it). */
export const CMG_LABEL = "opencmg.io/cmg";
/** Where the pod mounts the bundle; instance i's start-up file is instance-i.json there. */
export const BUNDLE_DIR = "/etc/opencmg/bundle";
/** The gateway image's user and group (deploy/container/build.sh). */
export const IMAGE_UID = 10001;

/** An instance in a pod: listeners on the pod's address; metrics (and /healthz) where the kubelet probes them. */
export function podListeners(): InstanceListeners {
  return { client: { host: "0.0.0.0", port: POD_PORTS.client }, tunnel: { host: "0.0.0.0", port: POD_PORTS.tunnel }, metrics: { host: "0.0.0.0", port: POD_PORTS.metrics } };
}

const labels = (name: string): Record<string, string> => ({ "app.kubernetes.io/name": "opencmg-gateway", "app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": "opencmg", [CMG_LABEL]: name });
const selector = (name: string): Record<string, string> => ({ "app.kubernetes.io/name": "opencmg-gateway", [CMG_LABEL]: name });
const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");

export const sharedSecretName = (name: string): string => `${name}-bundle`;
export const instanceSecretName = (name: string, i: number): string => `${name}-instance-${i}`;

/**
 * The objects for `cmg`, in the order they are applied (Secrets before the pods that mount
 * them). `bundle` null: no Secrets (the kustomize base in deploy/kubernetes/, whose Secrets come
 * from `cmg manifests`). A stopped CMG keeps its objects with 0 replicas.
 */
export function kubernetesManifests(cmg: Pick<CmgView, "name" | "instanceCount" | "runState">, k: KubernetesSettings, bundle: BundleContent | null): KubeObject[] {
  const { name, namespace } = { name: cmg.name, namespace: k.namespace };
  const meta = (n: string) => ({ name: n, namespace, labels: labels(name) });
  const secrets: V1Secret[] = bundle
    ? [
        { apiVersion: "v1", kind: "Secret", metadata: meta(sharedSecretName(name)), type: "Opaque", data: Object.fromEntries(Object.entries(bundle.shared).map(([f, t]) => [f, b64(t)])) },
        ...bundle.instances.map((f): V1Secret => ({ apiVersion: "v1", kind: "Secret", metadata: meta(instanceSecretName(name, f.index)), type: "Opaque", data: { [`instance-${f.index}.json`]: b64(JSON.stringify(f, null, 2) + "\n") } })),
      ]
    : [];
  const statefulSet: V1StatefulSet = {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: meta(name),
    spec: {
      serviceName: instancesService(name),
      replicas: cmg.runState === "running" ? cmg.instanceCount : 0,
      // Instances are independent: start and stop them together, not one after another.
      podManagementPolicy: "Parallel",
      selector: { matchLabels: selector(name) },
      template: {
        metadata: { labels: labels(name) },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          // Long enough to drain clients and tunnels on SIGTERM.
          terminationGracePeriodSeconds: 60,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: IMAGE_UID,
            runAsGroup: IMAGE_UID,
            fsGroup: IMAGE_UID,
            seccompProfile: { type: "RuntimeDefault" },
            // A capability added for a non-root user is not in its effective set: this lets it bind 443 (a namespaced, safe sysctl).
            sysctls: [{ name: "net.ipv4.ip_unprivileged_port_start", value: String(POD_PORTS.client) }],
          },
          containers: [
            {
              name: "gateway",
              image: k.image,
              imagePullPolicy: "IfNotPresent",
              // The pod's ordinal picks its start-up file (Kubernetes expands $(POD_INDEX) from the environment).
              args: ["gateway", "serve", "--config", `${BUNDLE_DIR}/instance-$(POD_INDEX).json`],
              env: [{ name: "POD_INDEX", valueFrom: { fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" } } }],
              ports: [
                { name: "client", containerPort: POD_PORTS.client, protocol: "TCP" },
                { name: "tunnel", containerPort: POD_PORTS.tunnel, protocol: "TCP" },
                { name: "metrics", containerPort: POD_PORTS.metrics, protocol: "TCP" },
              ],
              // Ready (in the load balancer) only once a connection point holds a tunnel to it: /healthz says so.
              readinessProbe: { httpGet: { path: "/healthz", port: "metrics" }, periodSeconds: 10, failureThreshold: 3 },
              // Alive while it answers at all (a 503 for "no tunnel yet" is not a reason to restart it).
              livenessProbe: { tcpSocket: { port: "metrics" }, initialDelaySeconds: 10, periodSeconds: 20, failureThreshold: 3 },
              resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "1Gi" } },
              securityContext: {
                runAsNonRoot: true,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] },
              },
              volumeMounts: [
                { name: "bundle", mountPath: BUNDLE_DIR, readOnly: true },
                { name: "data", mountPath: "/var/lib/opencmg" },
                { name: "tmp", mountPath: "/tmp" },
              ],
            },
          ],
          volumes: [
            {
              name: "bundle",
              projected: {
                defaultMode: 0o440,
                // Every instance's Secret, optional: the template stays the same when the CMG scales (no restart of the others).
                sources: [{ secret: { name: sharedSecretName(name) } }, ...Array.from({ length: MAX_INSTANCES }, (_, i) => ({ secret: { name: instanceSecretName(name, i), optional: true } }))],
              },
            },
            { name: "data", emptyDir: { sizeLimit: "1Gi" } },
            { name: "tmp", emptyDir: { medium: "Memory", sizeLimit: "64Mi" } },
          ],
        },
      },
    },
  };
  const devices: V1Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(name),
    spec: { type: "LoadBalancer", selector: selector(name), ports: [{ name: "https", port: 443, targetPort: "client", protocol: "TCP" }] },
  };
  const pods: V1Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(instancesService(name)),
    // Headless, with the addresses of pods not yet ready: a pod becomes ready only once a connection point reached it here.
    spec: { clusterIP: "None", publishNotReadyAddresses: true, selector: selector(name), ports: [{ name: "tunnel", port: POD_PORTS.tunnel, targetPort: "tunnel", protocol: "TCP" }] },
  };
  const pdb: V1PodDisruptionBudget = {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: meta(name),
    spec: { maxUnavailable: 1, selector: { matchLabels: selector(name) } },
  };
  return [...secrets, devices, pods, statefulSet, pdb];
}
