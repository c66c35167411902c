/**
 * Cloud management gateways as the site defines them (SPEC.md section 3, "Create"), their
 * instances, what their connection points push to the gateway, and their status.
 */
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { sql } from "kysely";
import { z } from "zod";
import { ConflictError, FieldChecks, NotFoundError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import type { CmgSettingsBase } from "../../wire/tunnel/protocol.ts";
import { check } from "../validation.ts";
import { checkKubernetesName, kubernetesSettings, podDnsNames, POD_PORTS } from "../../cmg/kubernetes/settings.ts";
import { VERSION } from "../../version.ts";
import type { TokensService } from "./tokens.ts";
import { CmgConnectionPointData } from "./cmg-connection-point.ts";
import { checkInstanceAddresses, CLOUDS, RUN_STATES, type CmgRunState, cmgName, deploySchema, minRsaBits, deploySettings, instanceCount, label, PROVIDERS, type CmgCreateInput, type CmgDeploySettings, type CmgUpdateInput, type CmgView } from "./cmg-model.ts";
import { cmgStatus, instanceViews, type ClusterState } from "./cmg-status.ts";
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

/** "subject (thumbprint)" of a PEM certificate, for log lines. */
function certLabel(pem: string): string {
  const c = new X509Certificate(pem);
  return `${c.subject.replace(/\n/g, ", ")} (${c.fingerprint.replace(/:/g, "")})`;
}

/** True while the process named in a local provider's pid file lives. */
function supervisorAlive(pidFile: string): boolean {
  if (!existsSync(pidFile)) return false;
  try {
    process.kill(Number(readFileSync(pidFile, "utf8")), 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The deploy settings with their defaults. A kubernetes CMG's instances are the StatefulSet's pods:
 * each on its own DNS name (what the connection points dial), every one on the same ports.
 */
function providerDeploySettings(name: string, d: z.infer<typeof deploySchema>, serviceFqdn: string, provider: (typeof PROVIDERS)[number]): CmgDeploySettings {
  if (provider !== "kubernetes") {
    if (d.kubernetes) throw new ValidationError("deploy.kubernetes", "goes with the kubernetes provider (--provider kubernetes)");
    return deploySettings(d, serviceFqdn, provider);
  }
  checkKubernetesName(name);
  if (d.instanceAddresses) throw new ValidationError("deploy.instanceAddresses", "cannot be given with the kubernetes provider: the instances are the StatefulSet's pods, at their DNS names");
  const kubernetes = kubernetesSettings(d.kubernetes ?? {}, VERSION);
  const base = deploySettings({ ...d, instanceAddresses: podDnsNames(name, kubernetes), clientPortBase: POD_PORTS.client, tunnelPortBase: POD_PORTS.tunnel, metricsPortBase: POD_PORTS.metrics, metricsHost: "0.0.0.0", listenHost: "0.0.0.0" }, serviceFqdn, provider);
  return { ...base, kubernetes };
}

/** What a delete did. */
export const cmgDeleted = z.object({ deleted: z.string(), connectionPointsRemoved: z.array(z.string()).describe("servers whose connection point role for it was removed") });
export type CmgDeleted = z.output<typeof cmgDeleted>;

export class CmgsService {
  private readonly cp: CmgConnectionPointData;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly sites: SitesService,
    private readonly roles: RolesService,
    tokens: TokensService,
    /** The site's data folder: where the local provider keeps `cmg/<name>/` (absent: nothing on disk to clean). */
    private readonly dataDir?: string,
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
    const top = await this.sites.requireTop();
    if (top.type !== "primary" && top.type !== "cas") throw new ValidationError("site", "a CMG is created at the top-level site");

    // Every field's problem at once (a check that needs another field's value waits for it to pass).
    const v = new FieldChecks();
    const name = v.take(() => check("name", cmgName, input.name).toLowerCase());
    const cert = v.take(() => checkServerCertificate(input.serverCertPem, input.serverKeyPem, now));
    const serviceFqdn = cert && v.take(() => serviceFqdnFor(cert, input.serviceFqdn));
    const count = input.instances === undefined ? 1 : v.take(() => check("instances", instanceCount, input.instances));
    const trustedRoots = v.take(() => checkCaList("trustedRoots", input.trustedRoots ?? [], 2, now));
    const intermediates = v.take(() => checkCaList("intermediates", input.intermediates ?? [], 4, now));
    if (trustedRoots) v.take(() => requireSelfSigned(trustedRoots));
    const cloud = v.take(() => check("cloud", z.enum(CLOUDS, { error: `must be one of ${CLOUDS.join(", ")}` }), input.cloud ?? "public"));
    const provider = v.take(() => check("provider", z.enum(PROVIDERS, { error: `must be one of ${PROVIDERS.join(", ")}` }), input.provider ?? "local"));
    const region = v.take(() => check("region", label, input.region ?? "local"));
    const resourceGroup = v.take(() => check("resourceGroup", label, input.resourceGroup ?? `${name ?? "cmg"}-rg`));
    const given = v.take(() => check("deploy", deploySchema, input.deploy ?? {}));
    const minRsa = input.minRsaBits === undefined ? 2048 : v.take(() => check("minRsaBits", minRsaBits, input.minRsaBits));
    const deploy = name && given && serviceFqdn && provider ? v.take(() => providerDeploySettings(name, given, serviceFqdn, provider)) : undefined;
    if (deploy && count !== undefined) v.take(() => checkInstanceAddresses(count, deploy));
    v.done();
    if (!name || !cert || !serviceFqdn || count === undefined || !trustedRoots || !intermediates || !cloud || !provider || !region || !resourceGroup || minRsa === undefined || !deploy) throw new Error("a CMG check passed without its value");
    const serviceName = serviceFqdn.split(".")[0]!;
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
          min_rsa_bits: minRsa,
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
    const where = deploy.instanceAddresses
      ? `each on its own address (${deploy.instanceAddresses.join(", ")}), client listeners on ${deploy.clientPortBase}, tunnel listeners on ${deploy.tunnelPortBase}`
      : `client listeners ${deploy.listenHost}:${deploy.clientPortBase}+i, tunnel listeners ${deploy.tunnelPortBase}+i`;
    this.log("CMGSetup.log").info(`Deployment of ${name} requested: ${count} instance(s); ${where}. Status: Provisioning.`);
    if (input.crlCheck === false) this.log("CloudMgr.log").warn(`Client certificate revocation checking is off for ${name}.`);
    return this.show(name);
  }

  /** True while a CMG of that name exists (a cheap look, for writers that must not outlive it). */
  async exists(nameInput: string): Promise<boolean> {
    return (await this.ctx.db.selectFrom("cmgs").select("name").where("name", "=", nameInput.toLowerCase()).executeTakeFirst()) !== undefined;
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
    const runState = (RUN_STATES as readonly string[]).includes(r.run_state) ? (r.run_state as CmgRunState) : "running";
    const supervised = r.provider === "local" && this.dataDir !== undefined ? supervisorAlive(join(this.dataDir, "cmg", name, "start.pid")) : undefined;
    // Followed by the kubernetes provider (it has the cluster's kubeconfig): the StatefulSet counts too.
    const cluster = r.provider === "kubernetes" && deploy.kubernetes?.kubeconfig !== undefined ? await this.clusterState(name) : undefined;
    const { status, reason } = cmgStatus(cert, cps, instances, now, { state: runState, at: r.run_state_at, reason: r.run_state_reason, name: r.name, supervised, createdAt: r.created_at, cluster });
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
      runState,
      runStateAt: r.run_state_at,
      instances,
      revision: Number(r.revision),
    };
  }

  /**
   * Changes what can change after creation; each change reaches the instances with a new revision
   * (the connection points push trust, revocation and the server certificate; the provider follows
   * the instance count). Refuses what cannot change ("create a new CMG") and, unless `force`, a
   * trust change that would lock clients out.
   */
  async update(nameInput: string, input: CmgUpdateInput): Promise<CmgView> {
    const { checkCaList, checkRenewal, requireSelfSigned } = await certificates();
    const { changeCaList, lockouts, refuseImmutable, refuseLockout } = await import("./cmg-changes.ts");
    const current = await this.show(nameInput);
    const name = current.name;
    if (current.runState === "deleting") throw new ConflictError("name", `CMG ${name} is being deleted`);
    refuseImmutable(input, current);
    const now = this.ctx.now();
    const set: Record<string, unknown> = { updated_at: iso(now), revision: Math.max(now.getTime(), current.revision + 1) };
    const changes: string[] = [];
    if (input.instances !== undefined) {
      set.instances = check("instances", instanceCount, input.instances);
      checkInstanceAddresses(set.instances as number, current.deploy);
      if (set.instances !== current.instanceCount) changes.push(`VM instances ${current.instanceCount} -> ${String(set.instances)}`);
    }
    if (input.crlCheck !== undefined) {
      set.crl_check = input.crlCheck ? 1 : 0;
      changes.push(`revocation checking ${input.crlCheck ? "on" : "off"}`);
    }
    if (input.minRsaBits !== undefined) {
      set.min_rsa_bits = check("minRsaBits", minRsaBits, input.minRsaBits);
      changes.push(`smallest client RSA key ${current.minRsaBits} -> ${String(set.min_rsa_bits)} bits`);
    }
    const row = await this.ctx.db.selectFrom("cmgs").select(["trusted_roots", "intermediates"]).where("name", "=", name).executeTakeFirstOrThrow();
    const roots = JSON.parse(row.trusted_roots) as string[];
    const intermediates = JSON.parse(row.intermediates) as string[];
    const replace = input.replaceCertificates === true;
    // The same checks as at creation: CAs, not expired, roots self-signed (checkCaList's limit is applied after the change).
    const cas = (field: string, pems: string[] | undefined): string[] | undefined => (pems === undefined ? undefined : checkCaList(field, pems, pems.length, now));
    const rootChange = { replace: cas("trustedRoots", input.trustedRoots), add: cas("addTrustedRoots", input.addTrustedRoots), remove: input.removeTrustedRoots };
    const intermediateChange = { replace: cas("intermediates", input.intermediates), add: cas("addIntermediates", input.addIntermediates), remove: input.removeIntermediates };
    const touches = (c: typeof rootChange): boolean => c.replace !== undefined || (c.add?.length ?? 0) > 0 || (c.remove?.length ?? 0) > 0;
    if (touches(rootChange) || touches(intermediateChange)) {
      const nextRoots = changeCaList("trustedRoots", roots, rootChange, 2, replace, { add: "--add-trusted-root", remove: "--remove-trusted-root", replace: "--trusted-root" });
      requireSelfSigned(nextRoots);
      const nextIntermediates = changeCaList("intermediates", intermediates, intermediateChange, 4, replace, { add: "--add-intermediate", remove: "--remove-intermediate", replace: "--intermediate" });
      refuseLockout("trustedRoots", lockouts({ roots }, { roots: nextRoots, intermediates: nextIntermediates }, await this.internetClients()), input.force === true);
      if (touches(rootChange)) {
        set.trusted_roots = JSON.stringify(nextRoots);
        changes.push(`trusted roots (${nextRoots.map(certLabel).join(", ") || "none"})`);
      }
      if (touches(intermediateChange)) {
        set.intermediates = JSON.stringify(nextIntermediates);
        changes.push(`intermediates (${nextIntermediates.map(certLabel).join(", ") || "none"})`);
      }
    } else if (replace) {
      throw new ValidationError("replaceCertificates", "goes with --trusted-root or --intermediate (the lists to replace)");
    }
    if (input.serverCertPem || input.serverKeyPem) {
      const currentCert = await this.ctx.db.selectFrom("cmgs").select("server_cert").where("name", "=", name).executeTakeFirstOrThrow();
      const thumbprint = checkRenewal(input.serverCertPem, input.serverKeyPem, current.serviceFqdn, now, currentCert.server_cert);
      set.server_cert = [new X509Certificate(input.serverCertPem!).toString(), ...(input.serverChainPem ?? [])].join("");
      set.server_key = this.key.seal(input.serverKeyPem!, `cmg:${name}`);
      changes.push(`server authentication certificate (now ${thumbprint})`);
    }
    if (changes.length === 0) throw new ValidationError("cmg", "nothing to change: give at least one setting");
    await writeTransaction(this.ctx.db, async (tx) => {
      await tx.updateTable("cmgs").set(set).where("name", "=", name).execute();
      // Reports about removed instances must not count for a later instance of the same index.
      if (typeof set.instances === "number") for (const t of ["cmg_tunnels", "cmg_instance_restarts"] as const) await tx.deleteFrom(t).where("cmg_name", "=", name).where("instance", ">=", set.instances).execute();
    });
    this.log("CloudMgr.log").info(`Updated cloud management gateway ${name}: ${changes.join(", ")}.`);
    return this.show(name);
  }

  /** Clients whose last registration came through a CMG, with the root their certificate chained to. */
  private async internetClients(): Promise<{ name: string; rootThumbprint: string | null }[]> {
    const rows = await this.ctx.db.selectFrom("clients").select(["name", "root_thumbprint"]).where("connection_type", "=", "internet").where("thumbprint", "is not", null).where("approved", "=", 1).execute();
    return rows.map((r) => ({ name: r.name, rootThumbprint: r.root_thumbprint }));
  }

  /**
   * Stops the service (the console's Stop): the provider stops the instances and the connection
   * points end their tunnels. It stays stopped, across restarts of whatever runs it, until started.
   */
  stop(nameInput: string, reason = "opencmg cmg stop"): Promise<CmgView> {
    return this.setRunState(nameInput, "stopped", reason);
  }

  /** Starts a stopped service again (the console's Start): Starting, then Ready once every instance has its tunnels. */
  start(nameInput: string, reason = "opencmg cmg start"): Promise<CmgView> {
    return this.setRunState(nameInput, "running", reason);
  }

  private async setRunState(nameInput: string, state: CmgRunState, reason: string): Promise<CmgView> {
    const current = await this.show(nameInput);
    if (current.runState === "deleting") throw new ConflictError("name", `CMG ${current.name} is being deleted`);
    if (current.runState === state) return current;
    const now = this.ctx.now();
    await this.ctx.db
      .updateTable("cmgs")
      .set({ run_state: state, run_state_at: iso(now), run_state_reason: reason, revision: Math.max(now.getTime(), current.revision + 1), updated_at: iso(now) })
      .where("name", "=", current.name)
      .execute();
    this.log("CloudMgr.log").info(`${state === "stopped" ? "Stopping" : "Starting"} cloud management gateway ${current.name} (${reason}).`);
    return this.show(current.name);
  }

  /**
   * The first step of deleting a CMG (`deleteCmg` below runs all three): refuses the last Ready
   * CMG while clients registered through the internet exist (unless `force`), then marks it
   * Deleting, so the provider stops its instances (the local one removes its start-up bundle and
   * exits) and the connection points end their tunnels. A CMG already Deleting stays so.
   */
  async beginDelete(nameInput: string, o: { force?: boolean | undefined } = {}): Promise<CmgView> {
    const current = await this.show(nameInput);
    const name = current.name;
    if (current.runState === "deleting") return current;
    const others = (await this.list()).filter((c) => c.name !== name && c.status === "Ready");
    const clients = await this.internetClients();
    if (current.status === "Ready" && others.length === 0 && clients.length > 0 && !o.force)
      throw new ConflictError(
        "name",
        `CMG ${name} is the last Ready CMG and ${clients.length} client(s) registered through the internet (${clients.slice(0, 5).map((c) => c.name).join(", ")}${clients.length > 5 ? ", ..." : ""}) would have no way in. ` +
          "Clients learn of a new CMG only at their next location request (every 24 hours): create the new CMG first and keep this one at least a day, or repeat with --force",
      );
    const now = this.ctx.now();
    await this.ctx.db.updateTable("cmgs").set({ run_state: "deleting", run_state_at: iso(now), run_state_reason: "opencmg cmg delete", revision: Math.max(now.getTime(), current.revision + 1), updated_at: iso(now) }).where("name", "=", name).execute();
    this.log("CloudMgr.log").info(`Deleting cloud management gateway ${name}: stopping its instances and ending the connection points' tunnels.`);
    return this.show(name);
  }

  /**
   * True while the local provider's process that runs the CMG's instances lives
   * (`<data>/cmg/<name>/start.pid`), or while a kubernetes CMG's objects exist in its cluster.
   */
  async providerRunning(nameInput: string): Promise<boolean> {
    const name = nameInput.toLowerCase();
    if ((await this.clusterState(name))?.objects) return true;
    return this.dataDir !== undefined && supervisorAlive(join(this.dataDir, "cmg", name, "start.pid"));
  }

  /** What the kubernetes provider last saw of the CMG in its cluster (null: nothing yet). */
  async clusterState(nameInput: string): Promise<ClusterState | null> {
    const r = await this.ctx.db.selectFrom("cmg_cluster_state").selectAll().where("cmg_name", "=", nameInput.toLowerCase()).executeTakeFirst();
    return r ? { appliedRevision: Number(r.applied_revision), replicas: Number(r.replicas), readyReplicas: Number(r.ready_replicas), objects: Number(r.objects) === 1, error: r.error, observedAt: r.observed_at } : null;
  }

  /** Records what the kubernetes provider saw of the CMG in its cluster (a CMG deleted meanwhile: nothing). */
  async recordClusterState(nameInput: string, s: Omit<ClusterState, "observedAt">): Promise<void> {
    const name = nameInput.toLowerCase();
    if (!(await this.exists(name))) return;
    const row = { applied_revision: String(s.appliedRevision), replicas: s.replicas, ready_replicas: s.readyReplicas, objects: s.objects ? 1 : 0, error: s.error.slice(0, 2000), observed_at: iso(this.ctx.now()) };
    await this.ctx.db
      .insertInto("cmg_cluster_state")
      .values({ cmg_name: name, ...row })
      .onConflict((oc) => oc.column("cmg_name").doUpdateSet(row))
      .execute();
  }

  /**
   * The last step of deleting a CMG marked Deleting, once no process runs its instances: removes
   * `<data>/cmg/<name>/` (keys included), the CMG's rows, the connection point roles bound to it and
   * their component state.
   */
  async finishDelete(nameInput: string): Promise<CmgDeleted> {
    const current = await this.show(nameInput);
    const name = current.name;
    if (current.runState !== "deleting") throw new ConflictError("name", `CMG ${name} is not being deleted: delete it with opencmg cmg delete ${name}`);
    if (current.provider === "kubernetes" && (await this.clusterState(name))?.objects)
      throw new ConflictError("name", `CMG ${name} is Deleting, but its objects in the cluster are not deleted yet (opencmg site serve deletes them, or this command when it reaches the cluster); run the delete again once they are`);
    if (await this.providerRunning(name)) throw new ConflictError("name", `CMG ${name} is Deleting, but the process that runs its instances (${join(this.dataDir!, "cmg", name, "start.pid")}) has not stopped them yet; run the delete again once it has`);
    const cps = current.connectionPointServers;
    for (const fqdn of cps) await this.roles.remove(fqdn, "cmg-connection-point");
    await writeTransaction(this.ctx.db, async (tx) => {
      await tx.deleteFrom("cmg_tunnels").where("cmg_name", "=", name).execute();
      await tx.deleteFrom("cmg_instance_restarts").where("cmg_name", "=", name).execute();
      await tx.deleteFrom("cmg_cluster_state").where("cmg_name", "=", name).execute();
      // A CMG created later with the same name starts without this one's traffic and alert levels.
      await tx.deleteFrom("cmg_traffic").where("cmg_name", "=", name).execute();
      await tx.deleteFrom("cmg_alerts").where("cmg_name", "=", name).execute();
      await tx.deleteFrom("cmgs").where("name", "=", name).execute();
      for (const fqdn of cps) await tx.deleteFrom("component_status").where("server", "=", fqdn).where("component", "=", "SMS_CLOUD_PROXYCONNECTOR").execute();
    });
    // Last: the rows are gone only if this transaction commits, the files whatever happens next.
    if (this.dataDir) rmSync(join(this.dataDir, "cmg", name), { recursive: true, force: true });
    this.log("CloudMgr.log").info(`Deleted cloud management gateway ${name}${cps.length ? ` and its connection point role(s) on ${cps.join(", ")}` : ""}. Clients learn of it at their next location request.`);
    return { deleted: name, connectionPointsRemoved: cps };
  }

  /** Deletes a CMG no process runs (tests, scripts), in one step: `beginDelete` and `finishDelete`. */
  async remove(nameInput: string, o: { force?: boolean } = {}): Promise<void> {
    await this.beginDelete(nameInput, o);
    await this.finishDelete(nameInput);
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

  /**
   * What the connection point pushes to every instance: client trust, revocation, URL map, and the
   * server authentication certificate with its key (so a renewal reaches running instances; the
   * tunnel is mutually authenticated TLS to the site CA). Never log or show it.
   */
  async gatewaySettings(name: string): Promise<CmgSettingsBase> {
    const s = await this.cp.gatewaySettings(name);
    // Without the site key (a process that cannot open secrets) the instances keep their start-up file's certificate.
    return this.ctx.key ? { ...s, serverCert: await this.serverCertificate(name) } : s;
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

/**
 * Deletes a CMG (`opencmg cmg delete`, `DELETE /api/v1/cmgs/NAME`) as three calls of `s`, the
 * caller's audited services: marks it Deleting (committed, so the provider sees it), waits for the
 * local provider to stop its instances (at most `waitMs`, default 30 s), then removes it. Each
 * change is its own transaction with its own audit record.
 */
export async function deleteCmg(s: { cmgs: CmgsService }, name: string, o: { force?: boolean | undefined; waitMs?: number | undefined; stopInstances?: (name: string) => Promise<void> } = {}): Promise<CmgDeleted> {
  await s.cmgs.beginDelete(name, { force: o.force });
  // A provider this process can act on itself (the CLI reaching a kubernetes cluster) does so now.
  await o.stopInstances?.(name);
  const deadline = Date.now() + (o.waitMs ?? 30_000);
  while ((await s.cmgs.providerRunning(name)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return s.cmgs.finishDelete(name);
}
