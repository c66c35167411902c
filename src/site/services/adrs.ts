/**
 * Automatic deployment rules as the site keeps them, and each file result of their runs. Running a
 * rule (downloading through the server's proxy) is the software update point's: roles/sup/adr.ts.
 *
 * A rule's lifecycle: edited (name, filters, run after synchronisation), enabled or disabled (a
 * disabled rule runs neither now nor after a synchronisation), deleted. Deleting a rule deletes its
 * recorded download results with it: they say what one rule fetched, and nothing reads them once
 * the rule is gone (the audit record keeps the rule as it was; the content library keeps the files,
 * which another rule may match too).
 */
import { z } from "zod";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { writeTransaction } from "../db/transaction.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { check, checkObject, fqdn as fqdnRule } from "../validation.ts";
import type { Db, ServiceContext } from "./context.ts";
import type { RolesService } from "./roles.ts";

export interface AdrInput {
  name: string;
  server: string;
  products?: string[] | undefined;
  classifications?: string[] | undefined;
  titleContains?: string | undefined;
  /** Run after each successful synchronisation of its software update point (default off). */
  runAfterSync?: boolean | undefined;
}

export interface Adr {
  id: number;
  name: string;
  server: string;
  products: string[];
  classifications: string[];
  titleContains: string | null;
  /** A disabled rule runs neither now nor after a synchronisation. */
  enabled: boolean;
  /** Runs after each successful synchronisation of its software update point ("Run the rule after any software update point synchronization"). */
  runAfterSync: boolean;
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

const ruleName = z.string().trim().min(1, "must not be empty").max(128, "must be at most 128 characters");
const names = z.array(z.string().trim().min(1, "must not hold an empty name").max(256, "must hold names of at most 256 characters")).max(100, "must hold at most 100 names");
const title = z.string().min(1, "must not be empty").max(256, "must be at most 256 characters");

const adrSchema = z.object({
  name: ruleName,
  products: names.default([]),
  classifications: names.default([]),
  titleContains: title.optional(),
  runAfterSync: z.boolean().default(false),
});

/** What `edit` may change; a field left out keeps its value, `titleContains: null` clears the title filter. */
export const adrChangesSchema = z.strictObject({
  name: ruleName.optional(),
  products: names.optional(),
  classifications: names.optional(),
  titleContains: title.nullable().optional(),
  runAfterSync: z.boolean().optional(),
});
export type AdrChanges = z.input<typeof adrChangesSchema>;

type AdrRow = { id: number; name: string; server: string; products: string; classifications: string; title_contains: string | null; enabled: number; run_after_sync: number };
const toAdr = (r: AdrRow): Adr => ({
  id: r.id,
  name: r.name,
  server: r.server,
  products: JSON.parse(r.products) as string[],
  classifications: JSON.parse(r.classifications) as string[],
  titleContains: r.title_contains,
  enabled: Boolean(r.enabled),
  runAfterSync: Boolean(r.run_after_sync),
});

async function findIn(db: Db, name: string): Promise<Adr | undefined> {
  const r = await db.selectFrom("adrs").selectAll().where("name", "=", name).executeTakeFirst();
  return r ? toAdr(r) : undefined;
}

function needsFilter(r: Pick<Adr, "products" | "classifications" | "titleContains">): void {
  if (r.products.length === 0 && r.classifications.length === 0 && !r.titleContains)
    throw new ValidationError("products", "a rule needs at least one product, classification or title filter (it would match every update)");
}

export class AdrsService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly roles: RolesService,
  ) {}

  async add(input: AdrInput): Promise<Adr> {
    const server = check("server", fqdnRule, input.server);
    const r = checkObject(adrSchema, input);
    await this.roles.softwareUpdatePoint(server);
    needsFilter({ ...r, titleContains: r.titleContains ?? null });
    const db = this.ctx.db;
    if (await db.selectFrom("adrs").select("id").where("name", "=", r.name).executeTakeFirst()) throw new ConflictError("name", `automatic deployment rule ${r.name} already exists`);
    const row = await db
      .insertInto("adrs")
      .values({ name: r.name, server, products: JSON.stringify(r.products), classifications: JSON.stringify(r.classifications), title_contains: r.titleContains ?? null, created_at: this.ctx.now().toISOString(), enabled: 1, run_after_sync: r.runAfterSync ? 1 : 0 })
      .returning(["id"])
      .executeTakeFirstOrThrow();
    this.ctx.logs.component(LOG_FILES.ruleengine).info(`Created automatic deployment rule ${r.name} on ${server}.`);
    return { id: row.id, name: r.name, server, products: r.products, classifications: r.classifications, titleContains: r.titleContains ?? null, enabled: true, runAfterSync: r.runAfterSync };
  }

  /** Changes the given settings of a rule (its software update point stays); the others keep their values. */
  async edit(name: string, changes: AdrChanges): Promise<Adr> {
    const c = checkObject(adrChangesSchema, changes);
    if (Object.values(c).every((v) => v === undefined)) throw new ValidationError("changes", "give at least one of name, products, classifications, titleContains, runAfterSync");
    return writeTransaction(this.ctx.db, async (tx) => {
      const current = await findIn(tx, name);
      if (!current) throw new NotFoundError("rule", `automatic deployment rule ${name}`);
      const next: Adr = {
        ...current,
        ...(c.name !== undefined ? { name: c.name } : {}),
        ...(c.products !== undefined ? { products: c.products } : {}),
        ...(c.classifications !== undefined ? { classifications: c.classifications } : {}),
        ...(c.titleContains !== undefined ? { titleContains: c.titleContains } : {}),
        ...(c.runAfterSync !== undefined ? { runAfterSync: c.runAfterSync } : {}),
      };
      needsFilter(next);
      if (next.name !== current.name && (await tx.selectFrom("adrs").select("id").where("name", "=", next.name).executeTakeFirst()))
        throw new ConflictError("name", `automatic deployment rule ${next.name} already exists`);
      await tx
        .updateTable("adrs")
        .set({ name: next.name, products: JSON.stringify(next.products), classifications: JSON.stringify(next.classifications), title_contains: next.titleContains, run_after_sync: next.runAfterSync ? 1 : 0, updated_at: this.ctx.now().toISOString() })
        .where("id", "=", current.id)
        .execute();
      this.ctx.logs.component(LOG_FILES.ruleengine).info(`Changed automatic deployment rule ${current.name}${next.name !== current.name ? ` (now ${next.name})` : ""}.`);
      return next;
    });
  }

  /** Enables or disables a rule; a disabled rule runs neither now nor after a synchronisation. */
  async setEnabled(name: string, enabled: boolean): Promise<Adr> {
    const on = check("enabled", z.boolean({ error: "must be true or false" }), enabled);
    const current = await this.get(name);
    await this.ctx.db.updateTable("adrs").set({ enabled: on ? 1 : 0, updated_at: this.ctx.now().toISOString() }).where("id", "=", current.id).execute();
    this.ctx.logs.component(LOG_FILES.ruleengine).info(`${on ? "Enabled" : "Disabled"} automatic deployment rule ${current.name}.`);
    return { ...current, enabled: on };
  }

  /** Deletes a rule and its recorded download results (see the top); the content library keeps the files. */
  async remove(name: string): Promise<Adr & { resultsDeleted: number }> {
    return writeTransaction(this.ctx.db, async (tx) => {
      const current = await findIn(tx, name);
      if (!current) throw new NotFoundError("rule", `automatic deployment rule ${name}`);
      const r = await tx.deleteFrom("adr_downloads").where("adr_id", "=", current.id).executeTakeFirst();
      await tx.deleteFrom("adrs").where("id", "=", current.id).execute();
      const resultsDeleted = Number(r.numDeletedRows);
      this.ctx.logs.component(LOG_FILES.ruleengine).info(`Deleted automatic deployment rule ${current.name} and its ${resultsDeleted} recorded download result(s).`);
      return { ...current, resultsDeleted };
    });
  }

  async list(): Promise<Adr[]> {
    const rows = await this.ctx.db.selectFrom("adrs").selectAll().orderBy("name").execute();
    return rows.map(toAdr);
  }

  /** The rule, or undefined when there is none of that name. */
  find(name: string): Promise<Adr | undefined> {
    return findIn(this.ctx.db, name);
  }

  async get(name: string): Promise<Adr> {
    const a = await this.find(name);
    if (!a) throw new NotFoundError("rule", `automatic deployment rule ${name}`);
    return a;
  }

  /** The enabled rules of a software update point that run after each of its synchronisations, by name. */
  async runAfterSync(server: string): Promise<Adr[]> {
    const rows = await this.ctx.db.selectFrom("adrs").selectAll().where("server", "=", server.toLowerCase()).where("enabled", "=", 1).where("run_after_sync", "=", 1).orderBy("name").execute();
    return rows.map(toAdr);
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
