/**
 * Runs automatic deployment rules: matches synchronised updates by product, classification and
 * title, downloads their content files into the content library (size and SHA-256 verified) through
 * the route the proxy rules give `adr-download`, and records each result. Logs to ruleengine.log.
 */
import { NetError, OpenCmgError } from "../../errors.ts";
import { downloadToFile } from "../../egress/download.ts";
import type { EgressProvider } from "../../egress/pool.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import { LOG_FILES } from "../../logs/files.ts";
import type { Adr, AdrFileResult, AdrsService } from "../../site/services/adrs.ts";
import type { StatusService } from "../../site/services/status.ts";
import type { SoftwareUpdate, SoftwareUpdateFile, UpdatesService } from "../../site/services/updates.ts";
import { StatusId } from "../../site/status-ids.ts";
import type { ContentLibrary } from "./content-library.ts";

export interface AdrRunResult {
  rule: string;
  matched: number;
  files: AdrFileResult[];
  failed: number;
}

export interface DownloadProgress {
  bytes: number;
  total?: number | undefined;
}

/** What running a rule needs, and nothing more. */
export interface AdrRunnerDeps {
  adrs: AdrsService;
  updates: UpdatesService;
  status: StatusService;
  egress: EgressProvider;
  logs: LogSet;
  library: ContentLibrary;
}

export function matches(rule: Pick<Adr, "products" | "classifications" | "titleContains">, u: SoftwareUpdate): boolean {
  const inList = (list: string[], v: string): boolean => list.length === 0 || list.some((x) => x.toLowerCase() === v.toLowerCase());
  return inList(rule.products, u.product) && inList(rule.classifications, u.classification) && (!rule.titleContains || u.title.toLowerCase().includes(rule.titleContains.toLowerCase()));
}

export class AdrRunner {
  constructor(private readonly deps: AdrRunnerDeps) {}

  /** Runs a rule now. Files already in the library are not downloaded again. */
  async run(name: string, onProgress?: (p: DownloadProgress & { file: string }) => void): Promise<AdrRunResult> {
    const rule = await this.deps.adrs.get(name);
    if (!rule.enabled) throw new OpenCmgError("conflict", "ADR_DISABLED", `rule: automatic deployment rule ${rule.name} is disabled; enable it first (opencmg adr enable "${rule.name}")`);
    const log = this.deps.logs.component(LOG_FILES.ruleengine);
    const updates = (await this.deps.updates.list()).filter((u) => matches(rule, u));
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

  private async fetchOne(rule: Adr, u: SoftwareUpdate, f: SoftwareUpdateFile, onProgress?: (p: DownloadProgress & { file: string }) => void): Promise<AdrFileResult> {
    const log = this.deps.logs.component(LOG_FILES.ruleengine);
    let result: AdrFileResult;
    if (await this.deps.library.has(u.id, f)) {
      result = { updateId: u.id, file: f.name, status: "present", code: null, bytes: f.size, message: "already in the content library" };
    } else {
      // Resolved per file: a proxy configuration replaced during a run applies to the next file.
      const { egress, decision } = await this.deps.egress.for(rule.server, "adr-download", log);
      log.info(`Downloading ${f.url} for ${u.id} ${decision.use === "proxy" ? `through proxy ${decision.host}:${decision.port}` : "directly"}.`);
      this.deps.library.prepare(u.id);
      try {
        const r = await downloadToFile(egress, f.url, this.deps.library.pathOf(u.id, f), { expectedSize: f.size, sha256: f.sha256, ...(onProgress ? { onProgress: (p: DownloadProgress) => onProgress({ ...p, file: f.name }) } : {}) });
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
    await this.deps.adrs.recordDownload(rule, u.id, { ...result, sha256: result.status === "failed" ? null : f.sha256 });
    return result;
  }
}
