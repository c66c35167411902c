/**
 * Automatic deployment rules as the site keeps them, and each file result of their runs. Running a
 * rule (downloading through the server's proxy) is the software update point's: roles/sup/adr.ts.
 */
import { z } from "zod";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { check, checkObject, fqdn as fqdnRule } from "../validation.ts";
import type { ServiceContext } from "./context.ts";
import type { RolesService } from "./roles.ts";

export interface AdrInput {
  name: string;
  server: string;
  products?: string[] | undefined;
  classifications?: string[] | undefined;
  titleContains?: string | undefined;
}

export interface Adr {
  id: number;
  name: string;
  server: string;
  products: string[];
  classifications: string[];
  titleContains: string | null;
}

export interface AdrFileResult {
  updateId: string;
  file: string;
  status: "downloaded" | "present" | "failed";
  code: number | string | null;
  bytes: number;
  message: string;
}

export interface AdrFileRecord extends AdrFileResult {
  /** SHA-256 of the verified file; null when it failed. */
  sha256: string | null;
}

const adrSchema = z.object({
  name: z.string().trim().min(1, "must not be empty").max(128, "must be at most 128 characters"),
  products: z.array(z.string().min(1)).default([]),
  classifications: z.array(z.string().min(1)).default([]),
  titleContains: z.string().min(1).optional(),
});

export class AdrsService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly roles: RolesService,
  ) {}

  async add(input: AdrInput): Promise<Adr> {
    const server = check("server", fqdnRule, input.server);
    const r = checkObject(adrSchema, input);
    await this.roles.softwareUpdatePoint(server);
    if (r.products.length === 0 && r.classifications.length === 0 && !r.titleContains)
      throw new ValidationError("products", "a rule needs at least one product, classification or title filter (it would match every update)");
    const db = this.ctx.db;
    if (await db.selectFrom("adrs").select("id").where("name", "=", r.name).executeTakeFirst()) throw new ConflictError("name", `automatic deployment rule ${r.name} already exists`);
    const row = await db
      .insertInto("adrs")
      .values({ name: r.name, server, products: JSON.stringify(r.products), classifications: JSON.stringify(r.classifications), title_contains: r.titleContains ?? null, created_at: this.ctx.now().toISOString() })
      .returning(["id"])
      .executeTakeFirstOrThrow();
    this.ctx.logs.component(LOG_FILES.ruleengine).info(`Created automatic deployment rule ${r.name} on ${server}.`);
    return { id: row.id, name: r.name, server, products: r.products, classifications: r.classifications, titleContains: r.titleContains ?? null };
  }

  async list(): Promise<Adr[]> {
    const rows = await this.ctx.db.selectFrom("adrs").selectAll().orderBy("name").execute();
    return rows.map((r) => ({ id: r.id, name: r.name, server: r.server, products: JSON.parse(r.products), classifications: JSON.parse(r.classifications), titleContains: r.title_contains }));
  }

  async get(name: string): Promise<Adr> {
    const a = (await this.list()).find((x) => x.name === name);
    if (!a) throw new NotFoundError("rule", `automatic deployment rule ${name}`);
    return a;
  }

  async results(name: string): Promise<AdrFileResult[]> {
    const a = await this.get(name);
    const rows = await this.ctx.db.selectFrom("adr_downloads").selectAll().where("adr_id", "=", a.id).orderBy("id").execute();
    return rows.map((r) => ({ updateId: r.update_id, file: r.file_name, status: r.status as AdrFileResult["status"], code: r.code, bytes: r.bytes, message: r.message }));
  }

  /** Records one file's result of a run. */
  async recordDownload(rule: Adr, updateId: string, r: AdrFileRecord): Promise<void> {
    await this.ctx.db
      .insertInto("adr_downloads")
      .values({ adr_id: rule.id, update_id: updateId, file_name: r.file, status: r.status, code: typeof r.code === "number" ? r.code : null, bytes: r.bytes, sha256: r.sha256, message: r.message, time: this.ctx.now().toISOString() })
      .execute();
  }
}
