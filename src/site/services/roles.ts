import { z } from "zod";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { checkRoleSettings } from "../../proxy/rules.ts";
import { ROLE_KINDS, type Role, type RoleKind, type RoleSettingsByKind, type SoftwareUpdatePointSettings } from "../model.ts";
import { check, checkObject, fqdn as fqdnRule, httpUrl } from "../validation.ts";
import { iso, type Db, type ServiceContext } from "./context.ts";
import { writeTransaction } from "../db/transaction.ts";
import { getServer } from "./servers.ts";
import { loadProxyModel, toRole } from "./snapshot.ts";
import { LOG_FILES } from "../../logs/files.ts";

/** Everything `role add|set` may carry; which apply depends on the role. */
export interface RoleOptions {
  allowCmgTraffic?: boolean | undefined;
  useProxyForSync?: boolean | undefined;
  useProxyForAdr?: boolean | undefined;
  connectedCache?: boolean | undefined;
  internalUrl?: string | undefined;
  upstreamUrl?: string | undefined;
  updateFeedUrl?: string | undefined;
  cmgName?: string | undefined;
  /** The software update point's synchronisation schedule: every N hours; null turns it off. */
  syncIntervalHours?: number | null | undefined;
}

/** The bounds of the synchronisation schedule (hours): at most hourly, at least monthly. */
export const SYNC_INTERVAL_HOURS = { min: 1, max: 720 } as const;

const roleKind = z.enum(ROLE_KINDS, { error: `must be one of ${ROLE_KINDS.join(", ")}` });

const APPLIES: Record<keyof RoleOptions, readonly RoleKind[]> = {
  allowCmgTraffic: ["management-point", "software-update-point"],
  useProxyForSync: ["software-update-point"],
  useProxyForAdr: ["software-update-point"],
  connectedCache: ["distribution-point"],
  internalUrl: ["management-point", "software-update-point"],
  upstreamUrl: ["software-update-point"],
  updateFeedUrl: ["service-connection-point"],
  cmgName: ["cmg-connection-point"],
  syncIntervalHours: ["software-update-point"],
};

const optionsSchema = z.object({
  allowCmgTraffic: z.boolean().optional(),
  useProxyForSync: z.boolean().optional(),
  useProxyForAdr: z.boolean().optional(),
  connectedCache: z.boolean().optional(),
  internalUrl: httpUrl.optional(),
  upstreamUrl: httpUrl.optional(),
  updateFeedUrl: httpUrl.optional(),
  cmgName: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/i, "must be a CMG name (letters, digits, hyphens)").optional(),
  syncIntervalHours: z
    .number({ error: "must be a number of hours, or null to turn the schedule off" })
    .int("must be a whole number of hours")
    .min(SYNC_INTERVAL_HOURS.min, `must be at least ${SYNC_INTERVAL_HOURS.min} hour`)
    .max(SYNC_INTERVAL_HOURS.max, `must be at most ${SYNC_INTERVAL_HOURS.max} hours (30 days)`)
    .nullable()
    .optional(),
});

function defaults(kind: RoleKind): RoleSettingsByKind[RoleKind] {
  switch (kind) {
    case "management-point":
      return { allowCmgTraffic: false };
    case "software-update-point":
      return { allowCmgTraffic: false, useProxyForSync: false, useProxyForAdr: false };
    case "distribution-point":
      return { connectedCache: false };
    default:
      return {};
  }
}

/** A connection point is bound to one CMG, and that CMG must exist. */
async function findRole(db: Db, fqdn: string, kind: RoleKind): Promise<Role | undefined> {
  const r = await db
    .selectFrom("roles")
    .innerJoin("servers", "servers.id", "roles.server_id")
    .select(["roles.id", "roles.kind", "roles.settings", "servers.fqdn"])
    .where("servers.fqdn", "=", fqdn.toLowerCase())
    .where("roles.kind", "=", kind)
    .executeTakeFirst();
  return r ? toRole(r) : undefined;
}

async function checkCmgBinding(tx: Db, kind: RoleKind, settings: object): Promise<void> {
  if (kind !== "cmg-connection-point") return;
  const name = (settings as { cmgName?: string }).cmgName?.toLowerCase();
  if (!name) throw new ValidationError("cmgName", "a CMG connection point is bound to one CMG: give --cmg NAME");
  if (!(await tx.selectFrom("cmgs").select("name").where("name", "=", name).executeTakeFirst()))
    throw new ValidationError("cmgName", `must name an existing CMG; there is no CMG ${name} (opencmg cmg create)`);
  (settings as { cmgName?: string }).cmgName = name;
}

export function parseRoleKind(value: string): RoleKind {
  return check("role", roleKind, value);
}

/** Roles installed on site system servers, with their settings. */
export class RolesService {
  constructor(private readonly ctx: ServiceContext) {}

  private merge(kind: RoleKind, base: object, options: RoleOptions): RoleSettingsByKind[RoleKind] {
    const given = checkObject(optionsSchema, options);
    for (const [k, v] of Object.entries(given)) {
      if (v === undefined) continue;
      if (!APPLIES[k as keyof RoleOptions].includes(kind))
        throw new ValidationError(k, `applies only to ${APPLIES[k as keyof RoleOptions].join(" and ")}, not to ${kind}`);
    }
    const defined = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
    return { ...base, ...defined } as RoleSettingsByKind[RoleKind];
  }

  async add(fqdnInput: string, kindInput: string, options: RoleOptions = {}): Promise<Role> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    const kind = parseRoleKind(kindInput);
    const settings = this.merge(kind, defaults(kind), options);
    const role = await writeTransaction(this.ctx.db, async (tx) => {
      const server = await getServer(tx, fqdn);
      const dup = await tx.selectFrom("roles").select("id").where("server_id", "=", server.id).where("kind", "=", kind).executeTakeFirst();
      if (dup) throw new ConflictError("role", `${fqdn} already hosts the ${kind} role`);
      if (kind === "service-connection-point") {
        const other = await tx.selectFrom("roles").innerJoin("servers", "servers.id", "roles.server_id").select("servers.fqdn").where("kind", "=", kind).executeTakeFirst();
        if (other) throw new ConflictError("role", `the hierarchy already has a service connection point on ${other.fqdn}; there is only one`);
      }
      checkRoleSettings(await loadProxyModel(tx), fqdn, kind, settings);
      await checkCmgBinding(tx, kind, settings);
      const now = iso(this.ctx.now());
      const row = await tx
        .insertInto("roles")
        .values({ server_id: server.id, kind, settings: JSON.stringify(settings), created_at: now, updated_at: now })
        .returning(["id"])
        .executeTakeFirstOrThrow();
      return { id: row.id, kind, serverFqdn: fqdn, settings } as Role;
    });
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Installed ${kind} (role id ${role.id}) on ${fqdn} with ${JSON.stringify(settings)}.`);
    return role;
  }

  /** Changes the given settings of an installed role; the others keep their values. */
  async set(fqdnInput: string, kindInput: string, options: RoleOptions): Promise<Role> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    const kind = parseRoleKind(kindInput);
    const role = await writeTransaction(this.ctx.db, async (tx) => {
      const current = await findRole(tx, fqdn, kind);
      if (!current) throw new NotFoundError("role", `${kind} on ${fqdn}`);
      const settings = this.merge(kind, current.settings, options);
      checkRoleSettings(await loadProxyModel(tx), fqdn, kind, settings);
      await checkCmgBinding(tx, kind, settings);
      await tx.updateTable("roles").set({ settings: JSON.stringify(settings), updated_at: iso(this.ctx.now()) }).where("id", "=", current.id).execute();
      return { ...current, settings } as Role;
    });
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Changed ${kind} on ${fqdn}: ${JSON.stringify(role.settings)}.`);
    return role;
  }

  async remove(fqdnInput: string, kindInput: string): Promise<void> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    const kind = parseRoleKind(kindInput);
    const current = await findRole(this.ctx.db, fqdn, kind);
    if (!current) throw new NotFoundError("role", `${kind} on ${fqdn}`);
    const revoked = await writeTransaction(this.ctx.db, async (tx) => {
      await tx.deleteFrom("roles").where("id", "=", current.id).execute();
      if (kind !== "cmg-connection-point") return 0;
      // Its tunnel certificate must not outlive the role: a copy of its key opens no tunnel.
      const r = await tx.updateTable("connection_point_certs").set({ revoked_at: iso(this.ctx.now()), revoked_reason: "connection point role removed" }).where("fqdn", "=", fqdn).where("revoked_at", "is", null).executeTakeFirst();
      return Number(r.numUpdatedRows);
    });
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Removed ${kind} from ${fqdn}${revoked ? `; its ${revoked} tunnel certificate(s) revoked` : ""}.`);
  }

  async list(fqdn?: string): Promise<Role[]> {
    let q = this.ctx.db.selectFrom("roles").innerJoin("servers", "servers.id", "roles.server_id").select(["roles.id", "roles.kind", "roles.settings", "servers.fqdn"]);
    if (fqdn) q = q.where("servers.fqdn", "=", check("fqdn", fqdnRule, fqdn));
    return (await q.orderBy("servers.fqdn").orderBy("roles.kind").execute()).map(toRole);
  }

  async getById(id: number): Promise<Role> {
    const r = await this.ctx.db.selectFrom("roles").innerJoin("servers", "servers.id", "roles.server_id").select(["roles.id", "roles.kind", "roles.settings", "servers.fqdn"]).where("roles.id", "=", id).executeTakeFirst();
    if (!r) throw new NotFoundError("roleId", `role ${id}`);
    return toRole(r);
  }

  /** The role of `kind` on the server, if it has one. */
  findOn(fqdn: string, kind: RoleKind): Promise<Role | undefined> {
    return findRole(this.ctx.db, fqdn, kind);
  }

  /** The software update point settings of the server, or a ValidationError when it has none. */
  async softwareUpdatePoint(fqdn: string): Promise<SoftwareUpdatePointSettings> {
    const sup = await this.findOn(fqdn, "software-update-point");
    if (!sup || sup.kind !== "software-update-point") throw new ValidationError("server", `${fqdn} has no software update point`);
    return sup.settings;
  }
}
