/**
 * Cloud management gateways as the site defines them (SPEC.md section 3, "Create"), their
 * instances, what their connection points push to the gateway, and their status.
 */
import { X509Certificate } from "node:crypto";
import { sql } from "kysely";
import { z } from "zod";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import type { CmgSettings } from "../../wire/tunnel/protocol.ts";
import { check } from "../validation.ts";
import type { TokensService } from "./tokens.ts";
import { CmgConnectionPointData } from "./cmg-connection-point.ts";
import { CLOUDS, cmgName, deploySchema, minRsaBits, deploySettings, instanceCount, label, PROVIDERS, type CmgCreateInput, type CmgDeploySettings, type CmgUpdateInput, type CmgView } from "./cmg-model.ts";
import { cmgStatus, instanceViews } from "./cmg-status.ts";
import { writeTransaction } from "../db/transaction.ts";
import { StatusId } from "../status-ids.ts";
import { iso, type ServiceContext } from "./context.ts";
import type { RolesService } from "./roles.ts";
import { StatusService } from "./status.ts";
import type { SitesService } from "./sites.ts";

export { CLOUDS, PROVIDERS } from "./cmg-model.ts";
export type { CertInfo, CmgCreateInput, CmgDeploySettings, CmgInstanceView, CmgStatus, CmgUpdateInput, CmgView } from "./cmg-model.ts";

/**
 * The certificate checks (X.509 parsing through @peculiar/x509), loaded by the methods that need
 * them: every command opens the site's services, few of them read a certificate.
 */
const certificates = () => import("./cmg-certificates.ts");

export class CmgsService {
  private readonly cp: CmgConnectionPointData;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly sites: SitesService,
    private readonly roles: RolesService,
    tokens: TokensService,
  ) {
    this.cp = new CmgConnectionPointData(ctx, roles, tokens);
  }

  private log(file: "CloudMgr.log" | "CMGSetup.log") {
    return this.ctx.logs.component(file === "CloudMgr.log" ? LOG_FILES.cloudMgr : LOG_FILES.cmgSetup);
  }

  private get key() {
    if (!this.ctx.key) throw new ValidationError("site", "the site key is not loaded: run `opencmg site init` first");
    return this.ctx.key;
  }

  async create(input: CmgCreateInput): Promise<CmgView> {
    const { checkCaList, checkServerCertificate, requireSelfSigned, serviceFqdnFor } = await certificates();
    const now = this.ctx.now();
    const name = check("name", cmgName, input.name).toLowerCase();
    const top = await this.sites.requireTop();
    if (top.type !== "primary" && top.type !== "cas") throw new ValidationError("site", "a CMG is created at the top-level site");

    const cert = checkServerCertificate(input.serverCertPem, input.serverKeyPem, now);
    const serviceFqdn = serviceFqdnFor(cert, input.serviceFqdn);
    const serviceName = serviceFqdn.split(".")[0]!;
    const count = input.instances === undefined ? 1 : check("instances", instanceCount, input.instances);
    const trustedRoots = checkCaList("trustedRoots", input.trustedRoots ?? [], 2, now);
    const intermediates = checkCaList("intermediates", input.intermediates ?? [], 4, now);
    requireSelfSigned(trustedRoots);
    const cloud = check("cloud", z.enum(CLOUDS, { error: `must be one of ${CLOUDS.join(", ")}` }), input.cloud ?? "public");
    const provider = check("provider", z.enum(PROVIDERS, { error: `must be one of ${PROVIDERS.join(", ")}` }), input.provider ?? "local");
    const region = check("region", label, input.region ?? "local");
    const resourceGroup = check("resourceGroup", label, input.resourceGroup ?? `${name}-rg`);
    const deploy = deploySettings(check("deploy", deploySchema, input.deploy ?? {}), serviceFqdn, provider);
    const serverCertPem = [cert.toString(), ...(input.serverChainPem ?? [])].join("");
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
          min_rsa_bits: input.minRsaBits === undefined ? 2048 : check("minRsaBits", minRsaBits, input.minRsaBits),
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
    const { certInfo } = await certificates();
    const name = nameInput.toLowerCase();
    const r = await this.ctx.db.selectFrom("cmgs").selectAll().where("name", "=", name).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `CMG ${nameInput}`);
    const deploy = JSON.parse(r.settings) as CmgDeploySettings;
    const tunnels = await this.ctx.db.selectFrom("cmg_tunnels").selectAll().where("cmg_name", "=", name).execute();
    const cps = (await this.roles.list()).filter((x) => x.kind === "cmg-connection-point" && x.settings.cmgName === name).map((x) => x.serverFqdn);
    const restarts = await this.ctx.db.selectFrom("cmg_instance_restarts").select(["instance", "restarts", "last_restart_at", "last_exit"]).where("cmg_name", "=", name).execute();
    const now = this.ctx.now().getTime();
    const instances = instanceViews(r.instances, deploy, tunnels, cps, now, restarts);
    const cert = new X509Certificate(r.server_cert);
    const { status, reason } = cmgStatus(cert, cps, instances, now);
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
      minRsaBits: r.min_rsa_bits,
      serverCertificate: certInfo(cert, true),
      trustedRoots: (JSON.parse(r.trusted_roots) as string[]).map((p) => certInfo(new X509Certificate(p))),
      intermediates: (JSON.parse(r.intermediates) as string[]).map((p) => certInfo(new X509Certificate(p))),
      deploy,
      connectionPointServers: cps,
      status,
      statusReason: reason,
      instances,
      revision: Number(r.revision),
    };
  }

  /** Changes what can change after creation; each change reaches the instances with a new revision. */
  async update(nameInput: string, input: CmgUpdateInput): Promise<CmgView> {
    const { checkCaList, checkRenewal } = await certificates();
    const current = await this.show(nameInput);
    const name = current.name;
    const now = this.ctx.now();
    const set: Record<string, unknown> = { updated_at: iso(now), revision: Math.max(now.getTime(), current.revision + 1) };
    const changes: string[] = [];
    if (input.instances !== undefined) {
      set.instances = check("instances", instanceCount, input.instances);
      changes.push(`VM instances ${current.instanceCount} -> ${String(set.instances)}`);
    }
    if (input.crlCheck !== undefined) {
      set.crl_check = input.crlCheck ? 1 : 0;
      changes.push(`revocation checking ${input.crlCheck ? "on" : "off"}`);
    }
    if (input.minRsaBits !== undefined) {
      set.min_rsa_bits = check("minRsaBits", minRsaBits, input.minRsaBits);
      changes.push(`smallest client RSA key ${current.minRsaBits} -> ${String(set.min_rsa_bits)} bits`);
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
      const thumbprint = checkRenewal(input.serverCertPem, input.serverKeyPem, current.serviceFqdn);
      set.server_cert = input.serverCertPem;
      set.server_key = this.key.seal(input.serverKeyPem!, `cmg:${name}`);
      changes.push(`server authentication certificate (now ${thumbprint})`);
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
      await tx.deleteFrom("cmg_instance_restarts").where("cmg_name", "=", current.name).execute();
      // A CMG created later with the same name starts without this one's traffic and alert levels.
      await tx.deleteFrom("cmg_traffic").where("cmg_name", "=", current.name).execute();
      await tx.deleteFrom("cmg_alerts").where("cmg_name", "=", current.name).execute();
      await tx.deleteFrom("cmgs").where("name", "=", current.name).execute();
    });
    this.log("CloudMgr.log").info(`Deleted cloud management gateway ${current.name}. Clients learn of it at their next location request.`);
  }

  /**
   * Records that the supervisor of a local CMG restarted instance `index` after it exited with
   * `exit` (code or signal), for `cmg show`, and raises a warning status message. Two short
   * statements, no transaction: the supervisor calls it and must not wait on other writers long.
   */
  async recordRestart(nameInput: string, index: number, exit: string, server: string): Promise<void> {
    const name = nameInput.toLowerCase();
    const at = iso(this.ctx.now());
    await this.ctx.db
      .insertInto("cmg_instance_restarts")
      .values({ cmg_name: name, instance: index, restarts: 1, last_restart_at: at, last_exit: exit })
      .onConflict((oc) => oc.columns(["cmg_name", "instance"]).doUpdateSet({ restarts: sql<number>`cmg_instance_restarts.restarts + 1`, last_restart_at: at, last_exit: exit }))
      .execute();
    await new StatusService(this.ctx).raise({
      messageId: StatusId.CMG_INSTANCE_RESTARTED,
      severity: "warning",
      component: LOG_FILES.cmgSetup.component,
      server,
      text: `CMG ${name}: instance ${index} exited (${exit}) and was restarted.`,
      properties: { cmg: name, instance: index, exit },
      time: at,
    });
  }

  /** The server certificate with its opened key, for starting instances. Never print the key. */
  async serverCertificate(name: string): Promise<{ certPem: string; keyPem: string }> {
    const r = await this.ctx.db.selectFrom("cmgs").select(["server_cert", "server_key"]).where("name", "=", name.toLowerCase()).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `CMG ${name}`);
    return { certPem: r.server_cert, keyPem: this.key.open(r.server_key, `cmg:${name.toLowerCase()}`) };
  }

  /** What the connection point pushes to every instance: client trust, revocation, URL map. */
  gatewaySettings(name: string): Promise<CmgSettings> {
    return this.cp.gatewaySettings(name);
  }

  /** roleId -> internal URL of every management point and software update point that allows CMG traffic. */
  backends(): Promise<Record<string, string>> {
    return this.cp.backends();
  }

  /** A connection point's view of its tunnels, recorded for the CMG's status. */
  reportTunnels(name: string, connectionPoint: string, states: { instance: number; connected: boolean; detail: string }[]): Promise<void> {
    return this.cp.reportTunnels(name, connectionPoint, states);
  }
}
