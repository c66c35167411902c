/**
 * Cloud management gateways as the site defines them (SPEC.md section 3, "Create"), their
 * instances, what their connection points push to the gateway, and their status.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { z } from "zod";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import type { CmgSettings, RouteEntry } from "../../wire/tunnel/protocol.ts";
import { describe, parseCertificates } from "../../pki/cert.ts";
import { check, isHostName } from "../validation.ts";
import type { RolesService } from "./roles.ts";
import type { SitesService } from "./sites.ts";
import { iso, type ServiceContext } from "./context.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { writeTransaction } from "../db/transaction.ts";

export const CLOUDS = ["public", "usgov", "custom"] as const;
export const PROVIDERS = ["local", "external"] as const;
export type CmgStatus = "Provisioning" | "Ready" | "Degraded" | "Error";

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
  /** Instance i's Prometheus metrics on 127.0.0.1:metricsPortBase + i (default 9440); 0 turns metrics off. */
  metricsPortBase: number;
  /** Alert on outbound traffic over 14 days. */
  trafficAlert: { thresholdGb: number; warningPct: number; criticalPct: number } | null;
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
  cloud?: string | undefined;
  region?: string | undefined;
  resourceGroup?: string | undefined;
  provider?: string | undefined;
  deploy?: Partial<CmgDeploySettings> | undefined;
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
  tunnelHost: string;
  tunnelPort: number;
  metricsPort: number | null;
  connectionPoints: { server: string; connected: boolean; detail: string; reportedAt: string }[];
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
  serverCertificate: CertInfo;
  trustedRoots: CertInfo[];
  intermediates: CertInfo[];
  deploy: CmgDeploySettings;
  connectionPointServers: string[];
  status: CmgStatus;
  statusReason: string;
  instances: CmgInstanceView[];
  revision: number;
}

const cmgName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/, "must be 1-63 letters, digits or hyphens, starting with a letter or digit");
const instances = z.preprocess((v) => (typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v), z.number({ error: "must be a whole number from 1 to 16" }).int("must be a whole number from 1 to 16").min(1, "must be at least 1").max(16, "must be at most 16 (the largest CMG has 16 VM instances)"));
const label = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,89}$/, "must be 1-90 letters, digits, dots, underscores or hyphens");
const portBase = (max: number) => z.number().int().min(1, "must be from 1").max(65535 - max, `must leave room for 16 instances (at most ${65535 - 15})`);

const deploySchema = z.object({
  listenHost: z.string().min(1).optional(),
  publicHost: z.string().refine((h) => isHostName(h) || /^[\d.]+$/.test(h), "must be a host name or IP address").optional(),
  clientPortBase: portBase(15).optional(),
  tunnelPortBase: portBase(15).optional(),
  instanceHost: z.string().refine((h) => isHostName(h) || /^[\d.]+$/.test(h), "must be a host name or IP address").optional(),
  metricsPortBase: z.number().int().min(0).max(65520).optional(),
  trafficAlert: z
    .object({
      thresholdGb: z.number().positive("must be more than 0"),
      warningPct: z.number().int().min(1).max(100),
      criticalPct: z.number().int().min(1).max(100),
    })
    .refine((t) => t.warningPct < t.criticalPct, "warningPct must be below criticalPct")
    .nullable()
    .optional(),
});

const STALE_MS = 3 * 60_000;

function certInfo(c: X509Certificate, withNames = false): CertInfo {
  const d = describe(c);
  return { subject: d.subject, thumbprint: d.thumbprint, notAfter: d.notAfter.toISOString(), ...(withNames ? { dnsNames: d.dnsNames } : {}) };
}

/** The service FQDN a server certificate gives (its first DNS name, else its CN). */
function certFqdn(c: X509Certificate): string {
  const d = describe(c);
  return (d.dnsNames[0] ?? d.commonName).toLowerCase();
}

function checkCaList(field: string, pems: string[], max: number, now: Date): string[] {
  if (pems.length > max) throw new ValidationError(field, `at most ${max} certificates (got ${pems.length})`);
  return pems.map((pem, i) => {
    const [c] = parseCertificates(pem, `${field}[${i}]`);
    if (!c!.ca) throw new ValidationError(`${field}[${i}]`, `must be a CA certificate; ${c!.subject.replace(/\n/g, ", ")} is not one`);
    if (new Date(c!.validTo) < now) throw new ValidationError(`${field}[${i}]`, `has expired (${c!.validTo})`);
    return c!.toString();
  });
}

export class CmgsService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly sites: SitesService,
    private readonly roles: RolesService,
  ) {}

  private log(file: "CloudMgr.log" | "CMGSetup.log") {
    return this.ctx.logs.component(file === "CloudMgr.log" ? LOG_FILES.cloudMgr : LOG_FILES.cmgSetup);
  }

  private get key() {
    if (!this.ctx.key) throw new ValidationError("site", "the site key is not loaded: run `opencmg site init` first");
    return this.ctx.key;
  }

  async create(input: CmgCreateInput): Promise<CmgView> {
    const now = this.ctx.now();
    const name = check("name", cmgName, input.name).toLowerCase();
    const top = await this.sites.requireTop();
    if (top.type !== "primary" && top.type !== "cas") throw new ValidationError("site", "a CMG is created at the top-level site");

    // The server authentication certificate: a real certificate with its key, valid now, for server auth.
    const [cert] = parseCertificates(input.serverCertPem, "serverCert");
    let key;
    try {
      key = createPrivateKey(input.serverKeyPem);
    } catch {
      throw new ValidationError("serverKey", "must be an unencrypted PEM private key");
    }
    if (!cert!.checkPrivateKey(key)) throw new ValidationError("serverKey", "does not belong to the server authentication certificate");
    if (new Date(cert!.validTo) < now) throw new ValidationError("serverCert", `has expired (${cert!.validTo}); renew it before creating the CMG`);
    if (new Date(cert!.validFrom) > now) throw new ValidationError("serverCert", `is not valid yet (from ${cert!.validFrom})`);
    const ekus = describe(cert!).ekus;
    if (ekus.length > 0 && !ekus.includes("1.3.6.1.5.5.7.3.1") && !ekus.includes("2.5.29.37.0")) throw new ValidationError("serverCert", "must carry the server authentication extended key usage");
    if (cert!.ca) throw new ValidationError("serverCert", "must be a server certificate, not a CA");

    const subjectFqdn = certFqdn(cert!);
    let serviceFqdn: string;
    if (subjectFqdn.startsWith("*.")) {
      if (!input.serviceFqdn) throw new ValidationError("serviceFqdn", `the certificate is a wildcard (${subjectFqdn}): give --service-fqdn with the * replaced by a host name`);
      serviceFqdn = input.serviceFqdn.toLowerCase();
      const suffix = subjectFqdn.slice(1);
      const head = serviceFqdn.slice(0, serviceFqdn.length - suffix.length);
      if (!serviceFqdn.endsWith(suffix) || head.length === 0 || head.includes(".") || head.includes("*") || !isHostName(serviceFqdn))
        throw new ValidationError("serviceFqdn", `must be ${subjectFqdn} with the * replaced by one host name label`);
    } else {
      if (!isHostName(subjectFqdn)) throw new ValidationError("serverCert", `its subject (${subjectFqdn || "empty"}) is not a host name to serve`);
      if (input.serviceFqdn && input.serviceFqdn.toLowerCase() !== subjectFqdn) throw new ValidationError("serviceFqdn", `comes from the certificate (${subjectFqdn}); only a wildcard certificate takes --service-fqdn`);
      serviceFqdn = subjectFqdn;
    }
    const serviceName = serviceFqdn.split(".")[0]!;
    const count = input.instances === undefined ? 1 : check("instances", instances, input.instances);
    const trustedRoots = checkCaList("trustedRoots", input.trustedRoots ?? [], 2, now);
    const intermediates = checkCaList("intermediates", input.intermediates ?? [], 4, now);
    for (const [i, pem] of trustedRoots.entries()) {
      const c = new X509Certificate(pem);
      if (!c.checkIssued(c)) throw new ValidationError(`trustedRoots[${i}]`, "must be a self-signed root CA; put subordinate CAs in --intermediate");
    }
    const cloud = check("cloud", z.enum(CLOUDS, { error: `must be one of ${CLOUDS.join(", ")}` }), input.cloud ?? "public");
    const provider = check("provider", z.enum(PROVIDERS, { error: `must be one of ${PROVIDERS.join(", ")}` }), input.provider ?? "local");
    const region = check("region", label, input.region ?? "local");
    const resourceGroup = check("resourceGroup", label, input.resourceGroup ?? `${name}-rg`);
    const d = check("deploy", deploySchema, input.deploy ?? {});
    const deploy: CmgDeploySettings = {
      listenHost: d.listenHost ?? "0.0.0.0",
      publicHost: d.publicHost ?? serviceFqdn,
      clientPortBase: d.clientPortBase ?? 443,
      tunnelPortBase: d.tunnelPortBase ?? 10140,
      instanceHost: d.instanceHost ?? (provider === "local" ? "127.0.0.1" : serviceFqdn),
      metricsPortBase: d.metricsPortBase ?? 9440,
      trafficAlert: d.trafficAlert ?? null,
    };
    const serverCertPem = [cert!.toString(), ...(input.serverChainPem ?? [])].join("");
    const created = iso(now);
    await writeTransaction(this.ctx.db, async (tx) => {
      if (await tx.selectFrom("cmgs").select("name").where("name", "=", name).executeTakeFirst()) throw new ConflictError("name", `a CMG named ${name} already exists`);
      const clash = await tx.selectFrom("cmgs").select("name").where("service_fqdn", "=", serviceFqdn).executeTakeFirst();
      if (clash) throw new ConflictError("serviceFqdn", `CMG ${clash.name} already serves ${serviceFqdn}`);
      await tx
        .insertInto("cmgs")
        .values({
          name,
          service_fqdn: serviceFqdn,
          service_name: serviceName,
          cloud,
          provider,
          region,
          resource_group: resourceGroup,
          instances: count,
          crl_check: input.crlCheck === false ? 0 : 1,
          server_cert: serverCertPem,
          server_key: this.key.seal(input.serverKeyPem, `cmg:${name}`),
          trusted_roots: JSON.stringify(trustedRoots),
          intermediates: JSON.stringify(intermediates),
          settings: JSON.stringify(deploy),
          revision: now.getTime(),
          created_at: created,
          updated_at: created,
        })
        .execute();
    });
    this.log("CloudMgr.log").info(`Created cloud management gateway ${name} (service ${serviceFqdn}, ${count} VM instance(s), cloud ${cloud}, provider ${provider}, region ${region}, resource group ${resourceGroup}).`);
    this.log("CMGSetup.log").info(`Deployment of ${name} requested: ${count} instance(s); client listeners ${deploy.listenHost}:${deploy.clientPortBase}+i, tunnel listeners ${deploy.tunnelPortBase}+i. Status: Provisioning.`);
    if (input.crlCheck === false) this.log("CloudMgr.log").warn(`Client certificate revocation checking is off for ${name}.`);
    return this.show(name);
  }

  async list(): Promise<CmgView[]> {
    const names = await this.ctx.db.selectFrom("cmgs").select("name").orderBy("name").execute();
    return Promise.all(names.map((n) => this.show(n.name)));
  }

  async show(nameInput: string): Promise<CmgView> {
    const name = nameInput.toLowerCase();
    const r = await this.ctx.db.selectFrom("cmgs").selectAll().where("name", "=", name).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `CMG ${nameInput}`);
    const deploy = JSON.parse(r.settings) as CmgDeploySettings;
    const tunnels = await this.ctx.db.selectFrom("cmg_tunnels").selectAll().where("cmg_name", "=", name).execute();
    const cps = (await this.roles.list()).filter((x) => x.kind === "cmg-connection-point" && x.settings.cmgName === name).map((x) => x.serverFqdn);
    const now = this.ctx.now().getTime();
    const instancesView: CmgInstanceView[] = Array.from({ length: r.instances }, (_, i) => {
      const clientPort = deploy.clientPortBase + i;
      return {
        index: i,
        clientUrl: `https://${deploy.publicHost}${clientPort === 443 ? "" : `:${clientPort}`}`,
        clientPort,
        tunnelHost: deploy.instanceHost,
        tunnelPort: deploy.tunnelPortBase + i,
        metricsPort: deploy.metricsPortBase ? deploy.metricsPortBase + i : null,
        connectionPoints: tunnels
          .filter((t) => t.instance === i && cps.includes(t.connection_point))
          .map((t) => ({ server: t.connection_point, connected: t.connected === 1 && now - Date.parse(t.reported_at) < STALE_MS, detail: t.detail, reportedAt: t.reported_at })),
      };
    });
    const cert = new X509Certificate(r.server_cert);
    const { status, reason } = this.statusOf(cert, cps, instancesView);
    return {
      name: r.name,
      serviceFqdn: r.service_fqdn,
      serviceName: r.service_name,
      cloud: r.cloud,
      provider: r.provider,
      region: r.region,
      resourceGroup: r.resource_group,
      instanceCount: r.instances,
      crlCheck: r.crl_check === 1,
      serverCertificate: certInfo(cert, true),
      trustedRoots: (JSON.parse(r.trusted_roots) as string[]).map((p) => certInfo(new X509Certificate(p))),
      intermediates: (JSON.parse(r.intermediates) as string[]).map((p) => certInfo(new X509Certificate(p))),
      deploy,
      connectionPointServers: cps,
      status,
      statusReason: reason,
      instances: instancesView,
      revision: Number(r.revision),
    };
  }

  private statusOf(cert: X509Certificate, cps: string[], inst: CmgInstanceView[]): { status: CmgStatus; reason: string } {
    if (new Date(cert.validTo).getTime() < this.ctx.now().getTime()) return { status: "Error", reason: `the server authentication certificate expired on ${cert.validTo}: renew it (opencmg cmg update NAME --server-cert ...)` };
    if (cps.length === 0) return { status: "Provisioning", reason: "no CMG connection point is bound to it (opencmg role add FQDN cmg-connection-point --cmg NAME)" };
    const reported = inst.some((i) => i.connectionPoints.length > 0);
    if (!reported) return { status: "Provisioning", reason: `waiting for the connection point (${cps.join(", ")}) to reach the instances` };
    const down = inst.filter((i) => !i.connectionPoints.some((c) => c.connected));
    if (down.length === 0) return { status: "Ready", reason: `all ${inst.length} instance(s) connected to a connection point` };
    if (down.length === inst.length) return { status: "Error", reason: `no instance is connected to a connection point: ${down[0]!.connectionPoints[0]?.detail ?? "no report"}` };
    return { status: "Degraded", reason: `instance(s) ${down.map((i) => i.index).join(", ")} not connected to any connection point` };
  }

  /** Changes what can change after creation; each change reaches the instances with a new revision. */
  async update(nameInput: string, input: { instances?: number | string; crlCheck?: boolean; trustedRoots?: string[]; intermediates?: string[]; serverCertPem?: string; serverKeyPem?: string }): Promise<CmgView> {
    const current = await this.show(nameInput);
    const name = current.name;
    const now = this.ctx.now();
    const set: Record<string, unknown> = { updated_at: iso(now), revision: Math.max(now.getTime(), current.revision + 1) };
    const changes: string[] = [];
    if (input.instances !== undefined) {
      set.instances = check("instances", instances, input.instances);
      changes.push(`VM instances ${current.instanceCount} -> ${String(set.instances)}`);
    }
    if (input.crlCheck !== undefined) {
      set.crl_check = input.crlCheck ? 1 : 0;
      changes.push(`revocation checking ${input.crlCheck ? "on" : "off"}`);
    }
    if (input.trustedRoots) {
      set.trusted_roots = JSON.stringify(checkCaList("trustedRoots", input.trustedRoots, 2, now));
      changes.push("trusted roots");
    }
    if (input.intermediates) {
      set.intermediates = JSON.stringify(checkCaList("intermediates", input.intermediates, 4, now));
      changes.push("intermediates");
    }
    if (input.serverCertPem || input.serverKeyPem) {
      if (!input.serverCertPem || !input.serverKeyPem) throw new ValidationError("serverCert", "renewing needs both the certificate and its key");
      const [c] = parseCertificates(input.serverCertPem, "serverCert");
      let k;
      try {
        k = createPrivateKey(input.serverKeyPem);
      } catch {
        throw new ValidationError("serverKey", "must be an unencrypted PEM private key");
      }
      if (!c!.checkPrivateKey(k)) throw new ValidationError("serverKey", "does not belong to the certificate");
      const fqdn = certFqdn(c!);
      const ok = fqdn === current.serviceFqdn || (fqdn.startsWith("*.") && current.serviceFqdn.endsWith(fqdn.slice(1)));
      if (!ok) throw new ValidationError("serverCert", `must be for ${current.serviceFqdn} (the service name cannot change; that needs a new CMG)`);
      set.server_cert = input.serverCertPem;
      set.server_key = this.key.seal(input.serverKeyPem, `cmg:${name}`);
      changes.push(`server authentication certificate (now ${describe(c!).thumbprint})`);
    }
    if (changes.length === 0) throw new ValidationError("cmg", "nothing to change: give at least one setting");
    await this.ctx.db.updateTable("cmgs").set(set).where("name", "=", name).execute();
    this.log("CloudMgr.log").info(`Updated cloud management gateway ${name}: ${changes.join(", ")}.`);
    return this.show(name);
  }

  async remove(nameInput: string): Promise<void> {
    const current = await this.show(nameInput);
    if (current.connectionPointServers.length > 0)
      throw new ConflictError("name", `CMG ${current.name} still has connection point(s) on ${current.connectionPointServers.join(", ")}; remove them first (opencmg role remove FQDN cmg-connection-point)`);
    await writeTransaction(this.ctx.db, async (tx) => {
      await tx.deleteFrom("cmg_tunnels").where("cmg_name", "=", current.name).execute();
      await tx.deleteFrom("cmgs").where("name", "=", current.name).execute();
    });
    this.log("CloudMgr.log").info(`Deleted cloud management gateway ${current.name}. Clients learn of it at their next location request.`);
  }

  /** The server certificate with its opened key, for starting instances. Never print the key. */
  async serverCertificate(name: string): Promise<{ certPem: string; keyPem: string }> {
    const r = await this.ctx.db.selectFrom("cmgs").select(["server_cert", "server_key"]).where("name", "=", name.toLowerCase()).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `CMG ${name}`);
    return { certPem: r.server_cert, keyPem: this.key.open(r.server_key, `cmg:${name.toLowerCase()}`) };
  }

  /** What the connection point pushes to every instance: client trust, revocation, URL map. */
  async gatewaySettings(name: string): Promise<CmgSettings> {
    const r = await this.ctx.db.selectFrom("cmgs").selectAll().where("name", "=", name.toLowerCase()).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `CMG ${name}`);
    const urlMap: Record<string, RouteEntry> = {};
    for (const role of await this.roles.list()) {
      if (role.kind === "management-point") urlMap[String(role.id)] = { kind: "mp", allowCmgTraffic: role.settings.allowCmgTraffic };
      if (role.kind === "software-update-point") urlMap[String(role.id)] = { kind: "sup", allowCmgTraffic: role.settings.allowCmgTraffic };
    }
    return { revision: Number(r.revision), trustedRoots: JSON.parse(r.trusted_roots), intermediates: JSON.parse(r.intermediates), crlCheck: r.crl_check === 1, urlMap };
  }

  /** roleId -> internal URL of every management point and software update point that allows CMG traffic. */
  async backends(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const role of await this.roles.list()) {
      if ((role.kind === "management-point" || role.kind === "software-update-point") && role.settings.allowCmgTraffic) out[String(role.id)] = role.settings.internalUrl ?? `https://${role.serverFqdn}`;
    }
    return out;
  }

  /** A connection point's view of its tunnels, recorded for the CMG's status. */
  async reportTunnels(name: string, connectionPoint: string, states: { instance: number; connected: boolean; detail: string }[]): Promise<void> {
    const at = iso(this.ctx.now());
    await writeTransaction(this.ctx.db, async (tx) => {
      for (const s of states) {
        await tx.deleteFrom("cmg_tunnels").where("cmg_name", "=", name).where("instance", "=", s.instance).where("connection_point", "=", connectionPoint).execute();
        await tx.insertInto("cmg_tunnels").values({ cmg_name: name, instance: s.instance, connection_point: connectionPoint, connected: s.connected ? 1 : 0, detail: s.detail, reported_at: at }).execute();
      }
    });
  }

  async reportTraffic(name: string, connectionPoint: string, t: { requests: number; bytesIn: number; bytesOut: number }): Promise<void> {
    await this.ctx.db.insertInto("cmg_traffic").values({ cmg_name: name, connection_point: connectionPoint, period_end: iso(this.ctx.now()), requests: t.requests, bytes_in: t.bytesIn, bytes_out: t.bytesOut }).execute();
  }

  /** Outbound bytes over the last 14 days (the traffic alert's window). */
  async trafficLast14Days(name: string): Promise<{ requests: number; bytesIn: number; bytesOut: number }> {
    const since = iso(new Date(this.ctx.now().getTime() - 14 * 24 * 3600 * 1000));
    const rows = await this.ctx.db.selectFrom("cmg_traffic").select(["requests", "bytes_in", "bytes_out"]).where("cmg_name", "=", name).where("period_end", ">=", since).execute();
    return rows.reduce((a, r) => ({ requests: a.requests + Number(r.requests), bytesIn: a.bytesIn + Number(r.bytes_in), bytesOut: a.bytesOut + Number(r.bytes_out) }), { requests: 0, bytesIn: 0, bytesOut: 0 });
  }
}

