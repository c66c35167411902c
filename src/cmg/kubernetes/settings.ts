/**
 * A `kubernetes`-provider CMG's cluster settings and the names its objects take: the StatefulSet
 * is named after the CMG, its pods NAME-0..NAME-15, each reachable at its own DNS name through
 * the headless Service NAME-instances (what the connection points dial).
 */
import { z } from "zod";
import { ValidationError } from "../../errors.ts";

/** The most instances a CMG has (cmg-model.ts `instanceCount`): every pod's name is known up front. */
export const MAX_INSTANCES = 16;

const dnsLabel = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be a DNS label: 1-63 lower-case letters, digits or hyphens, not starting or ending with a hyphen");

export const kubernetesInputSchema = z
  .object({
    namespace: dnsLabel.optional(),
    /** The cluster's DNS domain (kubelet --cluster-domain). */
    clusterDomain: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, "must be a DNS domain such as cluster.local")
      .max(200)
      .optional(),
    /** The administrator's kubeconfig (a file on the site server) naming the cluster and its credentials. */
    kubeconfig: z.string().max(4096).refine((p) => p.startsWith("/"), "must be the absolute path of a file on the site server").optional(),
    /** The gateway image (deploy/container/build.sh, pushed to a registry the cluster pulls from). */
    image: z.string().regex(/^[a-z0-9][a-zA-Z0-9._\-/:@]{0,254}$/, "must be an image reference such as registry.contoso.com/opencmg-gateway:0.1.0").optional(),
  })
  .strict();

export interface KubernetesSettings {
  namespace: string;
  clusterDomain: string;
  kubeconfig?: string;
  image: string;
}

/** The ports inside every pod (each pod has its own address, so every instance takes the same ones). */
export const POD_PORTS = { client: 443, tunnel: 10140, metrics: 9440 } as const;

export const DEFAULT_NAMESPACE = "opencmg";
export const DEFAULT_CLUSTER_DOMAIN = "cluster.local";
export const defaultImage = (version: string): string => `localhost/opencmg-gateway:${version}`;

export function kubernetesSettings(input: z.infer<typeof kubernetesInputSchema>, version: string): KubernetesSettings {
  return {
    namespace: input.namespace ?? DEFAULT_NAMESPACE,
    clusterDomain: input.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN,
    ...(input.kubeconfig ? { kubeconfig: input.kubeconfig } : {}),
    image: input.image ?? defaultImage(version),
  };
}

/**
 * Object names are the CMG's name: a Service name must start with a letter, and the StatefulSet's
 * name plus its pods' ordinal and revision hash must stay within a 63-character label.
 */
export function checkKubernetesName(name: string): void {
  if (!/^[a-z][a-z0-9-]{0,39}$/.test(name) || name.endsWith("-")) throw new ValidationError("name", "with the kubernetes provider must be 1-40 letters, digits or hyphens, starting with a letter and not ending with a hyphen (it names the cluster's objects)");
}

/** The headless Service that gives every pod its DNS name. */
export const instancesService = (name: string): string => `${name}-instances`;

/** Pod i's DNS name: NAME-i.NAME-instances.NAMESPACE.svc.DOMAIN, for every instance a CMG can have. */
export function podDnsNames(name: string, k: Pick<KubernetesSettings, "namespace" | "clusterDomain">): string[] {
  return Array.from({ length: MAX_INSTANCES }, (_, i) => `${name}-${i}.${instancesService(name)}.${k.namespace}.svc.${k.clusterDomain}`);
}
