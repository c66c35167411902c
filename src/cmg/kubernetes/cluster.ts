/**
 * The Kubernetes API as the kubernetes provider uses it, with the administrator's kubeconfig:
 * server-side apply of a CMG's objects (field manager "opencmg", forced: the site owns them), the
 * StatefulSet's status, and the delete of every object carrying the CMG's label.
 */
import { existsSync } from "node:fs";
import { KubeConfig, KubernetesObjectApi, PatchStrategy, type KubernetesObject, type V1StatefulSet } from "@kubernetes/client-node";
import { OpenCmgError, ValidationError } from "../../errors.ts";
import { CMG_LABEL, type KubeObject } from "./manifests.ts";

export const FIELD_MANAGER = "opencmg";

/** The kinds a CMG's objects are of, in the order they are deleted (the pods' owner first). */
const KINDS = [
  { apiVersion: "apps/v1", kind: "StatefulSet" },
  { apiVersion: "policy/v1", kind: "PodDisruptionBudget" },
  { apiVersion: "v1", kind: "Service" },
  { apiVersion: "v1", kind: "Secret" },
] as const;

/** A call to the cluster that failed: what was asked and what the API server said (never a Secret's data). */
export class ClusterError extends OpenCmgError {
  constructor(what: string, e: unknown) {
    const status = (e as { code?: number }).code;
    const body = (e as { body?: unknown }).body;
    let said = (e as Error).message ?? String(e);
    if (typeof body === "string") {
      try {
        said = (JSON.parse(body) as { message?: string }).message ?? said;
      } catch {
        // not a Status object: the client's message stays
      }
    }
    super("net", "KUBERNETES_API", `${what}: ${status ? `HTTP ${status}: ` : ""}${said.slice(0, 500)}`, { cause: e });
  }
}

/** The StatefulSet's replica counts (null: it does not exist). */
export interface StatefulSetState {
  replicas: number;
  readyReplicas: number;
}

export class KubeCluster {
  private readonly api: KubernetesObjectApi;

  constructor(kc: KubeConfig) {
    this.api = KubernetesObjectApi.makeApiClient(kc);
  }

  /** The cluster and credentials of a kubeconfig file (its current context). */
  static fromFile(path: string): KubeCluster {
    if (!existsSync(path)) throw new ValidationError("kubeconfig", `no kubeconfig at ${path} (the file the CMG was created with: --kubeconfig)`);
    const kc = new KubeConfig();
    try {
      kc.loadFromFile(path);
    } catch (e) {
      throw new ValidationError("kubeconfig", `cannot read ${path}: ${(e as Error).message}`);
    }
    if (!kc.getCurrentCluster()) throw new ValidationError("kubeconfig", `${path} names no current cluster (set current-context)`);
    return new KubeCluster(kc);
  }

  /** Server-side apply of each object, in order; the StatefulSet as the API server returned it. */
  async apply(objects: KubeObject[]): Promise<V1StatefulSet | undefined> {
    let sts: V1StatefulSet | undefined;
    for (const o of objects) {
      try {
        const r = await this.api.patch(o as KubernetesObject, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
        if (o.kind === "StatefulSet") sts = r as V1StatefulSet;
      } catch (e) {
        throw new ClusterError(`applying ${o.kind} ${o.metadata!.namespace}/${o.metadata!.name}`, e);
      }
    }
    return sts;
  }

  async statefulSet(namespace: string, name: string): Promise<StatefulSetState | null> {
    try {
      const s = await this.api.read<V1StatefulSet>({ apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name, namespace } });
      return stateOf(s);
    } catch (e) {
      if ((e as { code?: number }).code === 404) return null;
      throw new ClusterError(`reading StatefulSet ${namespace}/${name}`, e);
    }
  }

  /** Deletes every object of the kinds a CMG has that carries its label; the objects deleted ("Kind/name"). */
  async deleteCmg(namespace: string, cmg: string): Promise<string[]> {
    const deleted: string[] = [];
    for (const k of KINDS) {
      let items: KubernetesObject[];
      try {
        items = (await this.api.list(k.apiVersion, k.kind, namespace, undefined, undefined, undefined, undefined, `${CMG_LABEL}=${cmg}`)).items;
      } catch (e) {
        throw new ClusterError(`listing the ${k.kind}s of CMG ${cmg} in ${namespace}`, e);
      }
      for (const item of items) {
        try {
          await this.api.delete({ apiVersion: k.apiVersion, kind: k.kind, metadata: { name: item.metadata!.name!, namespace } }, undefined, undefined, undefined, undefined, "Background");
        } catch (e) {
          if ((e as { code?: number }).code !== 404) throw new ClusterError(`deleting ${k.kind} ${namespace}/${item.metadata!.name}`, e);
        }
        deleted.push(`${k.kind}/${item.metadata!.name}`);
      }
    }
    return deleted;
  }
}

export function stateOf(s: V1StatefulSet): StatefulSetState {
  return { replicas: s.spec?.replicas ?? 0, readyReplicas: s.status?.readyReplicas ?? 0 };
}
