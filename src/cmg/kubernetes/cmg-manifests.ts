/**
 * A kubernetes-provider CMG's objects as the site knows it now: its start-up bundle (in memory,
 * listeners on the pod's address) and the StatefulSet, Services and PodDisruptionBudget around it.
 */
import { ValidationError } from "../../errors.ts";
import type { CmgView } from "../../site/services/cmgs.ts";
import type { OpenedSite } from "../../site/site.ts";
import { cmgBundleContent } from "../bundle.ts";
import { kubernetesManifests, podListeners, type KubeObject } from "./manifests.ts";
import { kubernetesInputSchema, type KubernetesSettings } from "./settings.ts";

/** The CMG's cluster settings; refused for a CMG of another provider (its instances are not at the pods' DNS names). */
export function clusterOf(cmg: CmgView): KubernetesSettings {
  if (cmg.provider !== "kubernetes" || !cmg.deploy.kubernetes)
    throw new ValidationError("provider", `CMG ${cmg.name} uses the ${cmg.provider} provider: manifests are for a CMG created with --provider kubernetes (its connection points dial the pods' DNS names)`);
  return cmg.deploy.kubernetes;
}

/**
 * The objects for CMG `name`. `namespace`, when given, must be the CMG's (the pods' DNS names, which
 * the connection points dial and the tunnel certificate names, contain it); `image` replaces the
 * CMG's image in what is returned.
 */
export async function cmgKubernetesManifests(site: OpenedSite, name: string, o: { namespace?: string | undefined; image?: string | undefined } = {}): Promise<{ cmg: CmgView; objects: KubeObject[] }> {
  const cmg = await site.services.cmgs.show(name);
  const cluster = clusterOf(cmg);
  const given = kubernetesInputSchema.pick({ namespace: true, image: true }).safeParse({ namespace: o.namespace, image: o.image });
  if (!given.success) {
    const i = given.error.issues[0]!;
    throw new ValidationError(String(i.path[0]), i.message);
  }
  if (o.namespace !== undefined && o.namespace !== cluster.namespace)
    throw new ValidationError("namespace", `must be ${cluster.namespace}, the namespace CMG ${cmg.name} was created for (its instances' DNS names name it); create a new CMG for another namespace`);
  const bundle = cmg.runState === "deleting" ? null : await cmgBundleContent(site, cmg, podListeners);
  return { cmg, objects: kubernetesManifests(cmg, { ...cluster, ...(o.image ? { image: o.image } : {}) }, bundle) };
}
