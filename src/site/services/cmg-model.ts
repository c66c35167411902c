/**
 * A cloud management gateway's shape as the site stores and shows it, and the rules of its
 * settings (SPEC.md section 3, "Create").
 */
import { isIP } from "node:net";
import { z } from "zod";
import { ValidationError } from "../../errors.ts";
import { isHostName } from "../validation.ts";
import { kubernetesInputSchema, type KubernetesSettings } from "../../cmg/kubernetes/settings.ts";

export const CLOUDS = ["public", "usgov", "custom"] as const;
export const PROVIDERS = ["local", "external", "kubernetes"] as const;
/** Every status a CMG shows (the API's schema and the console take this list). */
export const CMG_STATUSES = ["Provisioning", "Ready", "Degraded", "Error", "Stopping", "Stopped", "Starting", "Deleting"] as const;
export type CmgStatus = (typeof CMG_STATUSES)[number];
/** What the administrator asked for: the instances run, are stopped (`cmg stop`), or are being deleted. */
export const RUN_STATES = ["running", "stopped", "deleting"] as const;
export type CmgRunState = (typeof RUN_STATES)[number];

/** Where a CMG's instances listen and how devices and connection points reach them. */
export interface CmgDeploySettings {
  /** Address the client listeners bind (default 0.0.0.0: internet-facing). */
  listenHost: string;
  /** Host name in the client URL devices use (default the service FQDN). */
  publicHost: string;
  /** Instance i's client listener port is clientPortBase + i (default 443). */
  clientPortBase: number;
  /** Instance i's tunnel listener port is tunnelPortBase + i (default 10140, as the documents' TCP-TLS mode). */
  tunnelPortBase: number;
  /** Host connection points dial for every instance (default the service FQDN; 127.0.0.1 with the local provider). */
  instanceHost: string;
  /**
   * Each instance on its own address (instance i at instanceAddresses[i]): it binds its client and
   * tunnel listeners there on the ports themselves (no + i; 443 by default), and connection points
   * dial it there. One service name then resolves to every address (DNS A records) and clients
   * spread across them. Absent: every instance on one host, instance i on the ports + i.
   */
  instanceAddresses?: string[];
  /** Instance i's Prometheus metrics on metricsHost:metricsPortBase + i (default 9440); 0 turns metrics off. */
  metricsPortBase: number;
  /** Address the metrics listeners bind (default 127.0.0.1; absent in CMGs created before it existed). */
  metricsHost?: string;
  /** Alert on outbound traffic over 14 days (src/site/services/cmg-alerts.ts). */
  trafficAlert: TrafficAlertSettings | null;
  /** The kubernetes provider's cluster: namespace, DNS domain, kubeconfig, image (src/cmg/kubernetes/). */
  kubernetes?: KubernetesSettings;
}

export interface CmgCreateInput {
  name: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** Certificates that came with the server certificate (a PFX's chain). */
  serverChainPem?: string[] | undefined;
  serviceFqdn?: string | undefined;
  instances?: number | string | undefined;
  trustedRoots?: string[] | undefined;
  intermediates?: string[] | undefined;
  crlCheck?: boolean | undefined;
  /** Smallest RSA key in a client certificate chain (default and floor 2048 bits). */
  minRsaBits?: number | string | undefined;
  cloud?: string | undefined;
  region?: string | undefined;
  resourceGroup?: string | undefined;
  provider?: string | undefined;
  deploy?: (Partial<Omit<CmgDeploySettings, "trafficAlert" | "kubernetes">> & { trafficAlert?: TrafficAlertInput | null; kubernetes?: z.input<typeof kubernetesInputSchema> }) | undefined;
}

/** What can change after creation (and, refused with "create a new CMG", what cannot). */
export interface CmgUpdateInput {
  instances?: number | string | undefined;
  crlCheck?: boolean | undefined;
  minRsaBits?: number | string | undefined;
  /** Replace the whole list: only together with `replaceCertificates`. */
  trustedRoots?: string[] | undefined;
  intermediates?: string[] | undefined;
  replaceCertificates?: boolean | undefined;
  addTrustedRoots?: string[] | undefined;
  /** SHA-1 thumbprints. */
  removeTrustedRoots?: string[] | undefined;
  addIntermediates?: string[] | undefined;
  removeIntermediates?: string[] | undefined;
  serverCertPem?: string | undefined;
  serverKeyPem?: string | undefined;
  /** Certificates that came with the renewed certificate (a PFX's chain, or later blocks of its PEM file). */
  serverChainPem?: string[] | undefined;
  /** Apply a trust change that would lock clients out. */
  force?: boolean | undefined;
  serviceFqdn?: string | undefined;
  serviceName?: string | undefined;
  cloud?: string | undefined;
  provider?: string | undefined;
  region?: string | undefined;
  resourceGroup?: string | undefined;
}

export interface CertInfo {
  subject: string;
  thumbprint: string;
  notAfter: string;
  dnsNames?: string[];
}

export interface CmgInstanceView {
  index: number;
  clientUrl: string;
  clientPort: number;
  /** Address its client and tunnel listeners bind. */
  listenHost: string;
  tunnelHost: string;
  tunnelPort: number;
  metricsPort: number | null;
  connectionPoints: { server: string; connected: boolean; detail: string; reportedAt: string }[];
  /** Times its supervisor (`opencmg cmg start`) restarted it after it died, the last time, and how it had exited. */
  restarts: number;
  lastRestartAt: string | null;
  lastExit: string | null;
}

export interface CmgView {
  name: string;
  serviceFqdn: string;
  serviceName: string;
  cloud: string;
  provider: string;
  region: string;
  resourceGroup: string;
  instanceCount: number;
  crlCheck: boolean;
  minRsaBits: number;
  serverCertificate: CertInfo;
  trustedRoots: CertInfo[];
  intermediates: CertInfo[];
  deploy: CmgDeploySettings;
  connectionPointServers: string[];
  status: CmgStatus;
  statusReason: string;
  /** What the administrator asked for (running unless `cmg stop` or `cmg delete`), and when. */
  runState: CmgRunState;
  runStateAt: string | null;
  instances: CmgInstanceView[];
  revision: number;
}

export const cmgName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/, "must be 1-63 letters, digits or hyphens, starting with a letter or digit");
export const instanceCount = z.preprocess(
  (v) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v),
  z.number({ error: "must be a whole number from 1 to 16" }).int("must be a whole number from 1 to 16").min(1, "must be at least 1").max(16, "must be at most 16 (the largest CMG has 16 VM instances)"),
);
export const label = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,89}$/, "must be 1-90 letters, digits, dots, underscores or hyphens");
const portBase = (max: number) => z.number().int().min(1, "must be from 1").max(65535 - max, `must leave room for 16 instances (at most ${65535 - 15})`);

export const deploySchema = z.object({
  listenHost: z.string().min(1).optional(),
  publicHost: z.string().refine((h) => isHostName(h) || /^[\d.]+$/.test(h), "must be a host name or IP address").optional(),
  clientPortBase: portBase(15).optional(),
  tunnelPortBase: portBase(15).optional(),
  instanceHost: z.string().refine((h) => isHostName(h) || /^[\d.]+$/.test(h), "must be a host name or IP address").optional(),
  metricsPortBase: z.number().int().min(0).max(65520).optional(),
  instanceAddresses: z
    .array(z.string().refine((h) => isIP(h) !== 0 || isHostName(h), "must be an IP address or host name of the instance's host"))
    .min(1, "must name at least one address")
    .max(16, "must name at most 16 addresses (one per instance)")
    .refine((a) => new Set(a.map((h) => h.toLowerCase())).size === a.length, "must name each address once (each instance has its own)")
    .optional(),
  metricsHost: z.string().refine((h) => isHostName(h) || isIP(h) !== 0, "must be an IP address or host name to bind").optional(),
  trafficAlert: z.lazy(() => trafficAlertSchema).nullable().optional(),
  kubernetes: kubernetesInputSchema.optional(),
});

/** The outbound traffic alert of document 004's wizard (step 10): a 14-day threshold and two levels. */
export interface TrafficAlertSettings {
  /** GB (10^9 bytes) over 14 days; fractions allowed. */
  thresholdGb: number;
  /** Warning at this % of the threshold (default 50). */
  warningPct: number;
  /** Critical at this % of the threshold (default 90). */
  criticalPct: number;
  /** Stop the CMG when the critical level is reached. */
  stopOnCritical: boolean;
}

const pct = (what: string) =>
  z.coerce.number({ error: `must be a whole percentage from 1 to 100` }).int("must be a whole percentage from 1 to 100").min(1, `${what} must be at least 1%`).max(100, `${what} must be at most 100%`);

/** What an administrator gives: the threshold, the rest defaulted. */
export type TrafficAlertInput = z.input<typeof trafficAlertSchema>;

export const trafficAlertSchema = z
  .object({
    thresholdGb: z.coerce.number({ error: "must be a number of GB above 0" }).positive("must be a number of GB above 0").max(1e9, "must be at most 1000000000 GB").finite(),
    warningPct: pct("the warning level").default(50),
    criticalPct: pct("the critical level").default(90),
    stopOnCritical: z.boolean().default(false),
  })
  .strict()
  .refine((t) => t.warningPct < t.criticalPct, { message: "the warning percentage must be below the critical percentage", path: ["warningPct"] });

/** The deploy settings with their defaults filled in. */
export function deploySettings(d: z.infer<typeof deploySchema>, serviceFqdn: string, provider: (typeof PROVIDERS)[number]): CmgDeploySettings {
  return {
    listenHost: d.listenHost ?? "0.0.0.0",
    publicHost: d.publicHost ?? serviceFqdn,
    clientPortBase: d.clientPortBase ?? 443,
    tunnelPortBase: d.tunnelPortBase ?? 10140,
    instanceHost: d.instanceHost ?? (provider === "local" ? "127.0.0.1" : serviceFqdn),
    ...(d.instanceAddresses ? { instanceAddresses: d.instanceAddresses } : {}),
    metricsPortBase: d.metricsPortBase ?? 9440,
    metricsHost: d.metricsHost ?? "127.0.0.1",
    trafficAlert: d.trafficAlert ?? null,
  };
}

/** Each instance on its own address needs one: refused naming the rule when the count outgrows the list. */
export function checkInstanceAddresses(count: number, deploy: CmgDeploySettings): void {
  const n = deploy.instanceAddresses?.length;
  if (n !== undefined && count > n) throw new ValidationError("instances", `must be at most ${n}: each instance listens on its own address and deploy.instanceAddresses names ${n}`);
}

/** The client certificate policy's RSA floor: never under 2048 bits (SHA-1 and weaker keys are always refused). */
export const minRsaBits = z.coerce
  .number({ error: "must be a number of bits from 2048 to 16384" })
  .int("must be a whole number of bits")
  .min(2048, "must be at least 2048 bits (weaker keys are always refused)")
  .max(16384, "must be at most 16384 bits");
