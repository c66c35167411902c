/**
 * The `kubernetes` provider: a CMG's instances are the pods of a StatefulSet in the cluster its
 * kubeconfig names. Creating, scaling, stopping (0 replicas) and starting apply its objects
 * (server-side apply); deleting removes every object with its label. What it saw is recorded for
 * the CMG's status. The CLI applies at once after its change; `opencmg site serve` follows every
 * change (console, API, CLI) and the StatefulSet's ready replicas (superviseKubernetesCmgs).
 */
import { LOG_FILES } from "../../logs/files.ts";
import type { CmgView } from "../../site/services/cmgs.ts";
import type { OpenedSite } from "../../site/site.ts";
import { cmgKubernetesManifests } from "./cmg-manifests.ts";
import { KubeCluster, stateOf } from "./cluster.ts";

/** What one pass did, for the CLI's line and the log. */
export interface KubernetesSync {
  action: "applied" | "deleted" | "observed";
  namespace: string;
  replicas: number;
  readyReplicas: number;
  /** Objects applied or deleted ("Kind/name"). */
  objects: string[];
}

/** A CMG the provider acts on: kubernetes, with a kubeconfig (without one, an administrator applies `cmg manifests` by hand). */
export function followed(c: Pick<CmgView, "provider" | "deploy">): boolean {
  return c.provider === "kubernetes" && c.deploy.kubernetes?.kubeconfig !== undefined;
}

/**
 * Brings the cluster to what the site says of CMG `name`: its objects applied at its current
 * revision (replicas 0 when stopped), or deleted when it is being deleted. Null for a CMG the
 * provider does not follow. A failure is recorded (the CMG's status names it) and thrown.
 */
export async function syncKubernetesCmg(site: OpenedSite, name: string): Promise<KubernetesSync | null> {
  const view = await site.services.cmgs.show(name);
  if (!followed(view)) return null;
  const k = view.deploy.kubernetes!;
  const before = await site.services.cmgs.clusterState(view.name);
  try {
    const cluster = KubeCluster.fromFile(k.kubeconfig!);
    if (view.runState === "deleting") {
      const deleted = await cluster.deleteCmg(k.namespace, view.name);
      await site.services.cmgs.recordClusterState(view.name, { appliedRevision: view.revision, replicas: 0, readyReplicas: 0, objects: false, error: "" });
      site.logs.component(LOG_FILES.cmgSetup).info(`CMG ${view.name}: deleted ${deleted.length} object(s) in namespace ${k.namespace} (${deleted.join(", ") || "none left"}).`);
      return { action: "deleted", namespace: k.namespace, replicas: 0, readyReplicas: 0, objects: deleted };
    }
    const { objects } = await cmgKubernetesManifests(site, view.name);
    const sts = await cluster.apply(objects);
    const state = sts ? stateOf(sts) : { replicas: 0, readyReplicas: 0 };
    await site.services.cmgs.recordClusterState(view.name, { appliedRevision: view.revision, ...state, objects: true, error: "" });
    const names = objects.map((o) => `${o.kind}/${o.metadata!.name}`);
    site.logs.component(LOG_FILES.cmgSetup).info(`CMG ${view.name}: applied ${names.length} object(s) in namespace ${k.namespace} (StatefulSet replicas ${state.replicas}, ${state.readyReplicas} ready).`);
    return { action: "applied", namespace: k.namespace, ...state, objects: names };
  } catch (e) {
    await site.services.cmgs.recordClusterState(view.name, { appliedRevision: before?.appliedRevision ?? 0, replicas: before?.replicas ?? 0, readyReplicas: before?.readyReplicas ?? 0, objects: before?.objects ?? false, error: (e as Error).message });
    throw e;
  }
}

/** Reads the StatefulSet's ready replicas into the CMG's status (nothing is applied). */
export async function observeKubernetesCmg(site: OpenedSite, name: string): Promise<KubernetesSync | null> {
  const view = await site.services.cmgs.show(name);
  if (!followed(view)) return null;
  const k = view.deploy.kubernetes!;
  const before = await site.services.cmgs.clusterState(view.name);
  try {
    const state = (await KubeCluster.fromFile(k.kubeconfig!).statefulSet(k.namespace, view.name)) ?? { replicas: 0, readyReplicas: 0 };
    await site.services.cmgs.recordClusterState(view.name, { appliedRevision: before?.appliedRevision ?? 0, ...state, objects: before?.objects ?? false, error: "" });
    return { action: "observed", namespace: k.namespace, ...state, objects: [] };
  } catch (e) {
    await site.services.cmgs.recordClusterState(view.name, { appliedRevision: before?.appliedRevision ?? 0, replicas: before?.replicas ?? 0, readyReplicas: before?.readyReplicas ?? 0, objects: before?.objects ?? false, error: (e as Error).message });
    throw e;
  }
}

export interface KubernetesCmgSupervisor {
  /** One pass now: apply what changed, delete what is being deleted, read the rest's ready replicas. */
  scan(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `site serve`'s follower of the kubernetes CMGs: every `pollMs`, each CMG whose revision the
 * cluster has not got yet is applied, each being deleted has its objects deleted, and the others'
 * ready replicas are read for their status. Failures are logged once per change of message.
 */
export function superviseKubernetesCmgs(site: OpenedSite, o: { pollMs?: number } = {}): KubernetesCmgSupervisor {
  const log = site.logs.component(LOG_FILES.cmgSetup);
  const pollMs = o.pollMs ?? 5000;
  const lastError = new Map<string, string>();
  let closed = false;
  const scanOnce = async (): Promise<void> => {
    for (const c of await site.services.cmgs.list()) {
      if (closed) return;
      if (!followed(c)) continue;
      const state = await site.services.cmgs.clusterState(c.name);
      const due = c.runState === "deleting" ? state?.objects !== false : state === null || state.appliedRevision !== c.revision;
      try {
        await (due ? syncKubernetesCmg(site, c.name) : observeKubernetesCmg(site, c.name));
        lastError.delete(c.name);
      } catch (e) {
        const m = (e as Error).message;
        if (lastError.get(c.name) !== m) log.warn(`CMG ${c.name}: ${m}; trying again every ${pollMs / 1000} s.`);
        lastError.set(c.name, m);
      }
    }
  };
  let scanning: Promise<void> = Promise.resolve();
  const scan = (): Promise<void> =>
    (scanning = scanning.then(async () => {
      if (!closed) await scanOnce();
    }).catch((e: unknown) => log.warn(`Could not read the CMGs at the site: ${(e as Error).message}`)));
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    timer = setTimeout(() => void scan().then(() => !closed && schedule()), pollMs);
  };
  void scan().then(() => !closed && schedule());
  return {
    scan,
    async close() {
      closed = true;
      clearTimeout(timer);
      await scanning;
    },
  };
}
