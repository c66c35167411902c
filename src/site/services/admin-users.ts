/**
 * Administrative users: security roles given to directory users and groups, who sign in to the
 * console with the administrators' directory (OpenID Connect). A user is named by the value of the
 * name claim (site setting `admin-oidc-name-claim`), a group by one value of the groups claim
 * (`admin-oidc-groups-claim`). Someone both named and in groups gets the strongest of their roles.
 */
import { z } from "zod";
import { checkObject, ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { check } from "../validation.ts";
import { adminRole, readOnlyRole, strongest, type AdminRole } from "./admin-roles.ts";
import { iso, type ServiceContext } from "./context.ts";

export const ADMIN_USER_KINDS = ["user", "group"] as const;
export type AdminUserKind = (typeof ADMIN_USER_KINDS)[number];

export interface AdminUser {
  kind: AdminUserKind;
  /** The name claim's value (a user) or a groups claim value (a group). */
  value: string;
  role: AdminRole;
  createdAt: string;
  updatedAt: string;
}

const kindSchema = z.enum(ADMIN_USER_KINDS, { error: "must be user or group" });
/** A claim value: visible characters and spaces, as directories name people and groups. */
const claimValue = z
  .string({ error: "must be text" })
  .trim()
  .min(1, "must be 1 to 256 characters")
  .max(256, "must be 1 to 256 characters")
  .regex(/^[^\p{Cc}]+$/u, "must have no control characters");

/** The body of an assignment (API, console); unknown fields refused. */
export const adminUserInput = z.strictObject({ kind: kindSchema, value: claimValue, role: adminRole });
export type AdminUserInput = z.input<typeof adminUserInput>;

type Row = { kind: string; value: string; role: string; created_at: string; updated_at: string };
const toUser = (r: Row): AdminUser => ({ kind: r.kind as AdminUserKind, value: r.value, role: r.role as AdminRole, createdAt: r.created_at, updatedAt: r.updated_at });

/** `user/alice@contoso.com` or `group/opencmg-analysts`: how the CLI, API and audit log name one. */
export const adminUserId = (kind: string, value: string): string => `${kind}/${value}`;

export class AdminUsersService {
  constructor(private readonly ctx: ServiceContext) {}

  async list(): Promise<AdminUser[]> {
    const rows = await this.ctx.db.selectFrom("admin_users").select(["kind", "value", "role", "created_at", "updated_at"]).orderBy("kind").orderBy("value").execute();
    return rows.map(toUser);
  }

  async get(kindInput: string, valueInput: string): Promise<AdminUser> {
    const kind = check("kind", kindSchema, kindInput);
    const value = check("value", claimValue, valueInput);
    const r = await this.ctx.db.selectFrom("admin_users").select(["kind", "value", "role", "created_at", "updated_at"]).where("kind", "=", kind).where("value", "=", value).executeTakeFirst();
    if (!r) throw new NotFoundError("value", `administrative ${kind} ${value}`);
    return toUser(r);
  }

  /** Gives a directory user or group a role. */
  async add(input: AdminUserInput): Promise<AdminUser> {
    const v = checkObject(adminUserInput, input);
    const now = iso(this.ctx.now());
    if (await this.ctx.db.selectFrom("admin_users").select("id").where("kind", "=", v.kind).where("value", "=", v.value).executeTakeFirst()) {
      throw new ConflictError("value", `the ${v.kind} ${v.value} already has a role; change it with set-role`);
    }
    await this.ctx.db.insertInto("admin_users").values({ kind: v.kind, value: v.value, role: v.role, created_at: now, updated_at: now }).execute();
    this.#log().info(`Administrative ${v.kind} ${v.value} added as ${v.role}.`);
    return this.get(v.kind, v.value);
  }

  async setRole(kind: string, value: string, roleInput: string): Promise<AdminUser> {
    const current = await this.get(kind, value);
    const role = check("role", adminRole, roleInput);
    await this.ctx.db.updateTable("admin_users").set({ role, updated_at: iso(this.ctx.now()) }).where("kind", "=", current.kind).where("value", "=", current.value).execute();
    this.#log().info(`Administrative ${current.kind} ${current.value} is now ${role}.`);
    return this.get(current.kind, current.value);
  }

  /** Takes the role away: the user's console sessions end at their next request. */
  async remove(kind: string, value: string): Promise<AdminUser> {
    const current = await this.get(kind, value);
    await this.ctx.db.deleteFrom("admin_users").where("kind", "=", current.kind).where("value", "=", current.value).execute();
    this.#log().info(`Administrative ${current.kind} ${current.value} removed.`);
    return current;
  }

  /** The role of someone the directory names `name`, in `groups`; undefined when none is assigned. */
  async resolve(name: string, groups: readonly string[]): Promise<{ role: AdminRole; readOnly: boolean } | undefined> {
    if (!name) throw new ValidationError("name", "must not be empty");
    const rows = await this.ctx.db.selectFrom("admin_users").select(["kind", "value", "role"]).execute();
    const roles = rows.filter((r) => (r.kind === "user" && r.value === name) || (r.kind === "group" && groups.includes(r.value))).map((r) => r.role as AdminRole);
    const role = strongest(roles.filter((r) => adminRole.safeParse(r).success));
    return role ? { role, readOnly: readOnlyRole(role) } : undefined;
  }

  #log() {
    return this.ctx.logs.component(LOG_FILES.smsprov);
  }
}
