/**
 * Automatic deployment rules: match synchronised updates by product, classification and title,
 * download their content files into the content library (size and SHA-256 verified) through the
 * route the proxy rules give `adr-download`, and record each result. Logs to ruleengine.log.
 */
import { z } from "zod";
import { ConflictError, NetError, NotFoundError, OpenCmgError, ValidationError } from "../../errors.ts";
import { downloadToFile } from "../../egress/download.ts";

export interface DownloadProgress {
  bytes: number;
  total?: number | undefined;
}
import { check, checkObject, fqdn as fqdnRule } from "../../site/validation.ts";
import { StatusId } from "../../site/status-ids.ts";
import type { ContentLibrary } from "./content-library.ts";
import { listUpdates, supSettings, type SupDeps } from "./sync.ts";
import type { Update, UpdateFile } from "./update-catalog.ts";
import { LOG_FILES } from "../../logs/files.ts";

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

export interface AdrRunResult {
  rule: string;
  matched: number;
  files: AdrFileResult[];
  failed: number;
}

const adrSchema = z.object({
  name: z.string().trim().min(1, "must not be empty").max(128, "must be at most 128 characters"),
  products: z.array(z.string().min(1)).default([]),
  classifications: z.array(z.string().min(1)).default([]),
  titleContains: z.string().min(1).optional(),
});

export function matches(rule: Pick<Adr, "products" | "classifications" | "titleContains">, u: Update): boolean {
  const inList = (list: string[], v: string): boolean => list.length === 0 || list.some((x) => x.toLowerCase() === v.toLowerCase());
  return inList(rule.products, u.product) && inList(rule.classifications, u.classification) && (!rule.titleContains || u.title.toLowerCase().includes(rule.titleContains.toLowerCase()));
}

export class AdrService {
  constructor(
    private readonly deps: SupDeps,
    private readonly library: ContentLibrary,
  ) {}

  async add(input: AdrInput): Promise<Adr> {
    const server = check("server", fqdnRule, input.server);
    const r = checkObject(adrSchema, input);
    await supSettings(this.deps.roles, server);
    if (r.products.length === 0 && r.classifications.length === 0 && !r.titleContains)
      throw new ValidationError("products", "a rule needs at least one product, classification or title filter (it would match every update)");
    const db = this.deps.ctx.db;
    if (await db.selectFrom("adrs").select("id").where("name", "=", r.name).executeTakeFirst()) throw new ConflictError("name", `automatic deployment rule ${r.name} already exists`);
    const row = await db
      .insertInto("adrs")
      .values({ name: r.name, server, products: JSON.stringify(r.products), classifications: JSON.stringify(r.classifications), title_contains: r.titleContains ?? null, created_at: this.deps.ctx.now().toISOString() })
      .returning(["id"])
      .executeTakeFirstOrThrow();
    this.deps.logs.component(LOG_FILES.ruleengine).info(`Created automatic deployment rule ${r.name} on ${server}.`);
    return { id: row.id, name: r.name, server, products: r.products, classifications: r.classifications, titleContains: r.titleContains ?? null };
  }

  async list(): Promise<Adr[]> {
    const rows = await this.deps.ctx.db.selectFrom("adrs").selectAll().orderBy("name").execute();
    return rows.map((r) => ({ id: r.id, name: r.name, server: r.server, products: JSON.parse(r.products), classifications: JSON.parse(r.classifications), titleContains: r.title_contains }));
  }

  async get(name: string): Promise<Adr> {
    const a = (await this.list()).find((x) => x.name === name);
    if (!a) throw new NotFoundError("rule", `automatic deployment rule ${name}`);
    return a;
  }

  async results(name: string): Promise<AdrFileResult[]> {
    const a = await this.get(name);
    const rows = await this.deps.ctx.db.selectFrom("adr_downloads").selectAll().where("adr_id", "=", a.id).orderBy("id").execute();
    return rows.map((r) => ({ updateId: r.update_id, file: r.file_name, status: r.status as AdrFileResult["status"], code: r.code, bytes: r.bytes, message: r.message }));
  }

  /** Runs a rule now. Files already in the library are not downloaded again. */
  async run(name: string, onProgress?: (p: DownloadProgress & { file: string }) => void): Promise<AdrRunResult> {
    const rule = await this.get(name);
    const log = this.deps.logs.component(LOG_FILES.ruleengine);
    const updates = (await listUpdates(this.deps.ctx)).filter((u) => matches(rule, u));
    log.info(`Running automatic deployment rule ${rule.name}: ${updates.length} matching updates.`);
    const files: AdrFileResult[] = [];
    for (const u of updates) {
      for (const f of u.files) files.push(await this.fetchOne(rule, u, f, onProgress));
    }
    const failed = files.filter((f) => f.status === "failed");
    if (failed.length > 0) {
      const codes = [...new Set(failed.map((f) => f.code))].join(", ");
      await this.deps.status.raise({
        messageId: StatusId.ADR_DOWNLOAD_FAILED,
        severity: "error",
        component: "SMS_RULE_ENGINE",
        server: rule.server,
        text: `Automatic deployment rule ${rule.name} failed to download ${failed.length} of ${files.length} files (error ${codes}). See ruleengine.log.`,
        properties: { rule: rule.name, failures: failed.map((f) => ({ update: f.updateId, file: f.file, code: f.code })) },
      });
    }
    log.info(`Automatic deployment rule ${rule.name} done: ${files.length - failed.length} of ${files.length} files in the content library.`);
    return { rule: rule.name, matched: updates.length, files, failed: failed.length };
  }

  private async fetchOne(rule: Adr, u: Update, f: UpdateFile, onProgress?: (p: DownloadProgress & { file: string }) => void): Promise<AdrFileResult> {
    const log = this.deps.logs.component(LOG_FILES.ruleengine);
    let result: AdrFileResult;
    if (await this.library.has(u.id, f)) {
      result = { updateId: u.id, file: f.name, status: "present", code: null, bytes: f.size, message: "already in the content library" };
    } else {
      // Resolved per file: a proxy configuration replaced during a run applies to the next file.
      const { egress, decision } = await this.deps.egress.for(rule.server, "adr-download", log);
      log.info(`Downloading ${f.url} for ${u.id} ${decision.use === "proxy" ? `through proxy ${decision.host}:${decision.port}` : "directly"}.`);
      this.library.prepare(u.id);
      try {
        const r = await downloadToFile(egress, f.url, this.library.pathOf(u.id, f), { expectedSize: f.size, sha256: f.sha256, ...(onProgress ? { onProgress: (p: DownloadProgress) => onProgress({ ...p, file: f.name }) } : {}) });
        log.info(`Downloaded ${f.name} (${r.bytes} bytes, SHA-256 verified) for ${u.id}.`);
        result = { updateId: u.id, file: f.name, status: "downloaded", code: null, bytes: r.bytes, message: "downloaded and verified" };
      } catch (e) {
        if (e instanceof NetError) {
          log.error(`Failed to download the update from internet. Error = ${e.code}.`);
          log.error(`${f.url}: ${e.message}`);
          result = { updateId: u.id, file: f.name, status: "failed", code: e.code, bytes: 0, message: e.message };
        } else if (e instanceof OpenCmgError) {
          log.error(`Content of ${f.name} for ${u.id} refused: ${e.message}. Error = ${e.code}.`);
          result = { updateId: u.id, file: f.name, status: "failed", code: e.code, bytes: 0, message: e.message };
        } else throw e;
      }
    }
    const a = rule;
    await this.deps.ctx.db
      .insertInto("adr_downloads")
      .values({ adr_id: a.id, update_id: u.id, file_name: f.name, status: result.status, code: typeof result.code === "number" ? result.code : null, bytes: result.bytes, sha256: result.status === "failed" ? null : f.sha256, message: result.message, time: this.deps.ctx.now().toISOString() })
      .execute();
    return result;
  }
}
