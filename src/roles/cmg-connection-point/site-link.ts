/**
 * What a connection point reads of the site and tells it, as one narrow interface with two sides:
 * the site's services (`servicesLink`: in the site's own process, and behind the join listener
 * answering a joined server) and the joined server's mTLS client (joined.ts). The shapes crossing
 * the wire are the zod schemas below, one per shape.
 */
import { z } from "zod";
import type { CertKeyPem } from "../../pki/issue.ts";
import { NotFoundError, ValidationError } from "../../errors.ts";
import type { SiteServices } from "../../site/site.ts";
import { StatusId } from "../../site/status-ids.ts";
import { signedSettingsSchema } from "../../wire/tunnel/signed-settings.ts";

const cmgSchema = z.strictObject({
  name: z.string().min(1).max(63),
  runState: z.string().min(1).max(32),
  instances: z.array(z.strictObject({ index: z.number().int().min(0), tunnelHost: z.string().min(1).max(253), tunnelPort: z.number().int().min(1).max(65535) })).max(64),
});

/** What the role needs of the site each time it looks: its CMG, the signed settings, the backends. */
export const connectionPointConfigSchema = z.strictObject({
  cmg: cmgSchema,
  settings: signedSettingsSchema,
  /** roleId -> internal URL of each management point and software update point allowing CMG traffic. */
  backends: z.record(z.string().regex(/^\d{1,20}$/), z.string().url().max(2048)),
  /** The site's traffic-report-interval, ms; null: the default. */
  trafficIntervalMs: z.number().int().positive().nullable(),
});
export type ConnectionPointConfig = z.infer<typeof connectionPointConfigSchema>;

const tunnelSchema = z.strictObject({ instance: z.number().int().min(0).max(63), connected: z.boolean(), detail: z.string().max(1000) });
/** The role's health: its component state, its tunnels; `changed`: the state changed (a status message is raised). */
export const connectionPointReportSchema = z.strictObject({
  cmg: z.string().min(1).max(63),
  state: z.enum(["OK", "Warning", "Critical"]),
  message: z.string().max(2000),
  tunnels: z.array(tunnelSchema).max(64),
  changed: z.boolean().optional(),
});
export type ConnectionPointReport = z.infer<typeof connectionPointReportSchema>;

const count = z.number().int().min(0);
export const trafficReportSchema = z.strictObject({
  cmg: z.string().min(1).max(63),
  records: z.array(z.strictObject({ instance: z.number().int().min(0).nullable(), roleKind: z.string().min(1).max(32), requests: count, failed: count, bytesToClients: count, bytesFromClients: count })).max(1000),
});
export type ConnectionPointTraffic = z.infer<typeof trafficReportSchema>;

export interface ConnectionPointSite {
  /** The site CA (the instances' tunnel certificates, the backends' server certificates). */
  readonly caPem: string;
  /**
   * The configuration now; refused when the server has no connection point role; not_found when
   * `knownCmg` (the CMG it serves) was deleted (deleting a CMG removes its connection point roles).
   */
  config(fqdn: string, knownCmg?: string): Promise<ConnectionPointConfig>;
  /** The tunnel client certificate and its key. */
  tunnelCertificate(fqdn: string): Promise<CertKeyPem>;
  report(fqdn: string, r: ConnectionPointReport): Promise<void>;
  traffic(fqdn: string, cmg: string, records: ConnectionPointTraffic["records"]): Promise<void>;
}

/** The site's side, through its services (audited for the caller's actor). */
export function servicesLink(s: SiteServices, caPem: () => string): ConnectionPointSite {
  return {
    get caPem() {
      return caPem();
    },
    async config(fqdn, knownCmg) {
      const role = (await s.roles.list(fqdn)).find((r) => r.kind === "cmg-connection-point");
      if ((!role || role.kind !== "cmg-connection-point" || !role.settings.cmgName) && knownCmg !== undefined) await cmgGone(s, knownCmg);
      if (!role || role.kind !== "cmg-connection-point") throw new ValidationError("server", `${fqdn} has no CMG connection point role (opencmg role add ${fqdn} cmg-connection-point --cmg NAME)`);
      const cmgName = role.settings.cmgName;
      if (!cmgName) throw new ValidationError("cmg", `the connection point on ${fqdn} is not bound to a CMG (opencmg role set ${fqdn} cmg-connection-point --cmg NAME)`);
      const view = await s.cmgs.show(cmgName);
      const [settings, backends, trafficIntervalMs] = await Promise.all([s.cmgTrust.signedSettings(view.name), s.cmgs.backends(), s.settings.durationMs("traffic-report-interval")]);
      return {
        cmg: { name: view.name, runState: view.runState, instances: view.instances.map((i) => ({ index: i.index, tunnelHost: i.tunnelHost, tunnelPort: i.tunnelPort })) },
        settings,
        backends,
        trafficIntervalMs: trafficIntervalMs ?? null,
      };
    },
    tunnelCertificate: (fqdn) => s.cmgTrust.connectionPointCertificate(fqdn),
    async report(fqdn, r) {
      // Deleted since the role last looked: the delete cleared the component state, which must stay cleared.
      if (!(await s.cmgs.exists(r.cmg))) return;
      await s.status.setComponent(fqdn, "SMS_CLOUD_PROXYCONNECTOR", r.state, r.message);
      await s.cmgs.reportTunnels(r.cmg, fqdn, r.tunnels);
      if (r.changed) {
        const severity = r.state === "OK" ? "informational" : r.state === "Warning" ? "warning" : "error";
        await s.status.raise({ messageId: StatusId.CMG_CONNECTOR_STATE, severity, component: "SMS_CLOUD_PROXYCONNECTOR", server: fqdn, text: `CMG connection point for ${r.cmg}: ${r.message}` });
      }
    },
    traffic: (fqdn, cmg, records) => s.cmgTraffic.record(cmg, fqdn, records),
  };
}

/** The CMG a connection point served was deleted: not_found (its role went with it). */
export async function cmgGone(s: SiteServices, name: string): Promise<void> {
  if (!(await s.cmgs.exists(name))) throw new NotFoundError("name", `CMG ${name}`);
}

/** The `cmg` a joined connection point names when it asks again. */
export const knownCmgRule = z.string().trim().toLowerCase().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "must be a CMG name");
