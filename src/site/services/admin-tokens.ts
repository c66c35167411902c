/**
 * Named admin tokens: who may use the admin API, and with which security role (admin-roles.ts). The token itself is
 * shown once when it is made; the database keeps only its SHA-256. The token `site init` writes to
 * `<data>/admin.token` is the one named "admin".
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { writeTransaction } from "../db/transaction.ts";
import { check } from "../validation.ts";
import { adminRole, readOnlyRole, type AdminRole } from "./admin-roles.ts";
import { iso, type ServiceContext } from "./context.ts";

/** Who an admin request or command acts as. */
export interface AdminIdentity {
  name: string;
  role: AdminRole;
  /** True when the role changes nothing (a Read-only Analyst). */
  readOnly: boolean;
  /** A named admin token, or a directory user signed in to the console. */
  source: "token" | "directory";
  /** A directory user's groups (the groups claim), to resolve the role again as assignments change. */
  groups?: readonly string[];
}

export interface AdminTokenInfo {
  name: string;
  role: AdminRole;
  readOnly: boolean;
  createdAt: string;
  revokedAt: string | null;
}

/** The name of the token in `<data>/admin.token`. */
export const ADMIN_TOKEN_NAME = "admin";

export const tokenName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be 1-64 letters, digits, dots, underscores or hyphens, starting with a letter or digit");

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

/** A new token: 256 random bits, URL-safe. */
export const newToken = (): string => randomBytes(32).toString("base64url");

type Row = { name: string | null; role: string; created_at: string; revoked_at: string | null };
/** A role the database holds; anything unknown (a later release's role) is read as the least. */
const roleOf = (r: string): AdminRole => (adminRole.safeParse(r).success ? (r as AdminRole) : "read-only-analyst");
const toInfo = (r: Row): AdminTokenInfo => {
  const role = roleOf(r.role);
  return { name: r.name ?? ADMIN_TOKEN_NAME, role, readOnly: readOnlyRole(role), createdAt: r.created_at, revokedAt: r.revoked_at };
};
const COLUMNS = ["name", "role", "created_at", "revoked_at"] as const;

export class AdminTokensService {
  constructor(private readonly ctx: ServiceContext) {}

  private log() {
    return this.ctx.logs.component(LOG_FILES.smsprov);
  }

  /**
   * Makes a named token with a role (default Full Administrator; `readOnly`, the older option, is a
   * Read-only Analyst); the only time the token is returned.
   */
  async create(nameInput: string, options: { role?: string | undefined; readOnly?: boolean | undefined } = {}): Promise<AdminTokenInfo & { token: string }> {
    const name = check("name", tokenName, nameInput);
    if (options.role !== undefined && options.readOnly === true && options.role !== "read-only-analyst") throw new ValidationError("readOnly", "must not be given with another role", "readOnly: must not be given with a role other than read-only-analyst");
    const role: AdminRole = options.role !== undefined ? check("role", adminRole, options.role) : options.readOnly === true ? "read-only-analyst" : "full-administrator";
    const token = newToken();
    const createdAt = iso(this.ctx.now());
    await writeTransaction(this.ctx.db, async (tx) => {
      if (await tx.selectFrom("admin_tokens").select("id").where("name", "=", name).executeTakeFirst()) throw new ConflictError("name", `an admin token named ${name} already exists (revoked tokens keep their name)`);
      await tx.insertInto("admin_tokens").values({ name, token_sha256: sha256(token), role, read_only: readOnlyRole(role) ? 1 : 0, created_at: createdAt, revoked_at: null }).execute();
    });
    this.log().info(`Created admin token ${name} (${role}).`);
    return { name, role, readOnly: readOnlyRole(role), createdAt, revokedAt: null, token };
  }

  /** Gives a token another role; its next request has it. */
  async setRole(nameInput: string, roleInput: string): Promise<AdminTokenInfo> {
    const current = await this.get(nameInput);
    const role = check("role", adminRole, roleInput);
    if (current.name === ADMIN_TOKEN_NAME && role !== "full-administrator") throw new ValidationError("role", "must stay full-administrator for the admin token", "role: the admin token of <data>/admin.token stays a Full Administrator (whoever holds the data folder owns the site)");
    await this.ctx.db.updateTable("admin_tokens").set({ role, read_only: readOnlyRole(role) ? 1 : 0 }).where("name", "=", current.name).execute();
    this.log().info(`Admin token ${current.name} is now ${role}.`);
    return this.get(current.name);
  }

  async list(): Promise<AdminTokenInfo[]> {
    const rows = await this.ctx.db.selectFrom("admin_tokens").select(COLUMNS).orderBy("name").execute();
    return rows.map(toInfo);
  }

  async get(nameInput: string): Promise<AdminTokenInfo> {
    const name = check("name", tokenName, nameInput);
    const r = await this.ctx.db.selectFrom("admin_tokens").select(COLUMNS).where("name", "=", name).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `admin token ${name}`);
    return toInfo(r);
  }

  /** Revokes a token at once: its next request gets 401. Revoking twice keeps the first time. */
  async revoke(nameInput: string): Promise<AdminTokenInfo> {
    const current = await this.get(nameInput);
    if (current.revokedAt) return current;
    const revokedAt = iso(this.ctx.now());
    await this.ctx.db.updateTable("admin_tokens").set({ revoked_at: revokedAt }).where("name", "=", current.name).execute();
    this.log().info(`Revoked admin token ${current.name}.`);
    return { ...current, revokedAt };
  }

  /** The identity of a token that is known and not revoked (compared by hash, in constant time). */
  async verify(token: string | undefined): Promise<AdminIdentity | undefined> {
    if (!token) return undefined;
    const hash = Buffer.from(sha256(token));
    const rows = await this.ctx.db.selectFrom("admin_tokens").select(["name", "token_sha256", "role", "revoked_at"]).execute();
    const hit = rows.find((r) => timingSafeEqual(Buffer.from(r.token_sha256), hash));
    if (!hit || hit.revoked_at !== null) return undefined;
    const role = roleOf(hit.role);
    return { name: hit.name ?? ADMIN_TOKEN_NAME, role, readOnly: readOnlyRole(role), source: "token" };
  }

  /**
   * Records the token of `<data>/admin.token` as "admin" (`site init`). A new file (the old one was
   * deleted) replaces the admin token's hash and lifts a revocation: whoever can write the data
   * folder owns the site anyway.
   */
  async adoptAdminFile(token: string): Promise<void> {
    const hash = sha256(token);
    await writeTransaction(this.ctx.db, async (tx) => {
      if (await tx.selectFrom("admin_tokens").select("id").where("token_sha256", "=", hash).executeTakeFirst()) return;
      const admin = await tx.selectFrom("admin_tokens").select("id").where("name", "=", ADMIN_TOKEN_NAME).executeTakeFirst();
      if (admin) await tx.updateTable("admin_tokens").set({ token_sha256: hash, read_only: 0, role: "full-administrator", revoked_at: null }).where("id", "=", admin.id).execute();
      else await tx.insertInto("admin_tokens").values({ name: ADMIN_TOKEN_NAME, token_sha256: hash, read_only: 0, role: "full-administrator", created_at: iso(this.ctx.now()), revoked_at: null }).execute();
    });
  }
}
