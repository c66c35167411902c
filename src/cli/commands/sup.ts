import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { pino } from "pino";
import { siteOperations } from "../../app/operations.ts";
import { runSoftwareUpdatePoint } from "../../app/software-update-point.ts";
import { waitForStop } from "../../app/signals.ts";
import { ValidationError } from "../../errors.ts";
import type { AdrChanges } from "../../site/services/adrs.ts";
import { PINO_LEVEL } from "../../logs/cmtrace.ts";
import { commandPath, type CliContext } from "../context.ts";
import { LOG_LEVEL_HELP, LOG_SIZE_HELP, LOG_SIZE_MB, logLevelOpt, logSizeOpt } from "../options.ts";
import { table } from "../output.ts";
import { parseListen } from "./site.ts";
import { syncSchedule, type RuleAfterSync } from "../../roles/sup/sync-schedule.ts";
import { SYNC_INTERVAL_HOURS } from "../../site/services/roles.ts";

function readPem(field: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new ValidationError(field, "must be a readable file", `${field}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** A whole number of hours as typed; anything else goes on as NaN for the service to refuse by name. */
const hoursOpt = (v: string): number => (/^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : Number.NaN);

const ruleAfterSyncLine = (r: RuleAfterSync): string =>
  r.error !== undefined ? `Rule ${r.rule} did not run after the synchronization: ${r.error}\n` : `Ran rule ${r.rule} after the synchronization: ${r.matched} update(s) matched, ${(r.files ?? 0) - (r.failed ?? 0)} of ${r.files} file(s) in the content library.\n`;

interface AdrEditOptions {
  name?: string;
  product?: string[];
  clearProducts?: boolean;
  classification?: string[];
  clearClassifications?: boolean;
  title?: string;
  clearTitle?: boolean;
  runAfterSync?: boolean;
}

function adrChanges(o: AdrEditOptions): AdrChanges {
  if (o.product && o.clearProducts) throw new ValidationError("clear-products", "--product and --clear-products do not go together");
  if (o.classification && o.clearClassifications) throw new ValidationError("clear-classifications", "--classification and --clear-classifications do not go together");
  if (o.title !== undefined && o.clearTitle) throw new ValidationError("clear-title", "--title and --clear-title do not go together");
  return {
    ...(o.name !== undefined ? { name: o.name } : {}),
    ...(o.product ? { products: o.product } : o.clearProducts ? { products: [] } : {}),
    ...(o.classification ? { classifications: o.classification } : o.clearClassifications ? { classifications: [] } : {}),
    ...(o.title !== undefined ? { titleContains: o.title } : o.clearTitle ? { titleContains: null } : {}),
    ...(o.runAfterSync !== undefined ? { runAfterSync: o.runAfterSync } : {}),
  };
}

export function registerSupCommands(program: Command, ctx: CliContext): void {
  const sup = program.command("sup").description("software update point: synchronisation and update metadata");
  sup
    .command("serve")
    .description("serve the software-update-point role of a site system server over HTTPS (update metadata and content)")
    .requiredOption("--server <fqdn>", "the site system server whose software-update-point role this is")
    .option("--listen <host:port>", "where to listen", "0.0.0.0:8531")
    .option("--cert <file>", "server certificate (PEM; default: issued by the site CA for --server)")
    .option("--key <file>", "its private key (PEM)")
    .option("--log-level <level>", LOG_LEVEL_HELP, "info")
    .option("--log-size-mb <MB>", LOG_SIZE_HELP, LOG_SIZE_MB.default)
    .action(async (o: { server: string; listen: string; cert?: string; key?: string; logLevel: string; logSizeMb: string }, cmd: Command) => {
      const listen = parseListen(o.listen);
      const logLevel = logLevelOpt(o.logLevel);
      const logSizeBytes = logSizeOpt(o.logSizeMb);
      if (Boolean(o.cert) !== Boolean(o.key)) throw new ValidationError(o.cert ? "key" : "cert", "--cert and --key go together");
      const g = ctx.globals(cmd);
      const running = await runSoftwareUpdatePoint({
        dataDir: g.data,
        databaseUrl: g.database,
        work: commandPath(cmd),
        pino: pino({ level: PINO_LEVEL[logLevel] }),
        logLevel,
        logSizeBytes,
        serverFqdn: o.server,
        listen,
        tls: o.cert && o.key ? { certPem: readPem("cert", o.cert), keyPem: readPem("key", o.key) } : undefined,
      });
      const stopped = waitForStop(); // before the line that says it runs: a stop may follow at once
      ctx.io.err.write(`OpenCMG software update point ${o.server.toLowerCase()} (role ${running.sup.roleId}) serving ${running.sup.url}; Ctrl-C stops it\n`);
      const cause = await stopped;
      await running.stop();
      ctx.io.err.write(`OpenCMG software update point ${o.server.toLowerCase()} stopped (${cause})\n`);
    });
  sup
    .command("sync <fqdn>")
    .description("synchronise update metadata from the upstream update source now")
    .action(async (fqdn: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await siteOperations(s, s.actor).supSync(fqdn);
        ctx.print(cmd, r, () => `Synchronized ${r.updates} updates (${r.added} new) from ${r.upstreamUrl} ${r.route}.\n` + r.rulesRun.map(ruleAfterSyncLine).join(""));
      });
    });
  sup
    .command("schedule <fqdn>")
    .description(`show the synchronisation schedule (interval, last and next synchronisation); --every or --off changes it (site serve runs it)`)
    .option("--every <hours>", `synchronise every this many hours (${SYNC_INTERVAL_HOURS.min} to ${SYNC_INTERVAL_HOURS.max})`)
    .option("--off", "turn the schedule off (synchronise only when asked; the default)")
    .action(async (fqdn: string, o: { every?: string; off?: boolean }, cmd: Command) => {
      if (o.every !== undefined && o.off) throw new ValidationError("off", "--every and --off do not go together");
      await ctx.withSite(cmd, async (s) => {
        if (o.every !== undefined || o.off) await s.services.roles.set(fqdn, "software-update-point", { syncIntervalHours: o.off ? null : hoursOpt(o.every!) });
        const r = await syncSchedule({ roles: s.services.roles, status: s.services.status, now: s.ctx.now }, fqdn);
        ctx.print(cmd, r, () => {
          const every = r.syncIntervalHours === null ? "off (synchronizes only when asked)" : `every ${r.syncIntervalHours} hour(s)`;
          const last = r.lastSync ? `${r.lastSync.time} (${r.lastSync.succeeded ? "succeeded" : "failed"}: ${r.lastSync.text})` : "never";
          return `Schedule of ${r.server}: ${every}.\nLast synchronization: ${last}.\nNext synchronization: ${r.nextSync ?? "none (the schedule is off)"}.\n`;
        });
      });
    });
  sup
    .command("updates")
    .description("list synchronised updates")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.updates.list();
        ctx.print(cmd, list, () => table(list.map((u) => ({ id: u.id, product: u.product, classification: u.classification, released: u.releaseDate, files: u.files.length, title: u.title })), ["id", "product", "classification", "released", "files", "title"]));
      });
    });

  const adr = program.command("adr").description("automatic deployment rules");
  adr
    .command("add <name>")
    .description("create a rule matching updates by product, classification and title")
    .requiredOption("--server <fqdn>", "the software update point whose proxy settings apply")
    .option("--product <name>", "match this product (repeatable)", collect)
    .option("--classification <name>", "match this classification (repeatable)", collect)
    .option("--title <text>", "match titles containing this text")
    .option("--run-after-sync", "run the rule after each successful synchronisation of its software update point")
    .action(async (name: string, o: { server: string; product?: string[]; classification?: string[]; title?: string; runAfterSync?: boolean }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const a = await s.services.adrs.add({ name, server: o.server, products: o.product, classifications: o.classification, titleContains: o.title, runAfterSync: o.runAfterSync });
        ctx.print(cmd, a, () => `Created automatic deployment rule ${a.name}.\n`);
      });
    });
  adr
    .command("edit <name>")
    .description("change a rule: the options given change, the others keep their values")
    .option("--name <new>", "rename the rule")
    .option("--product <name>", "match this product (repeatable; replaces the rule's products)", collect)
    .option("--clear-products", "match any product")
    .option("--classification <name>", "match this classification (repeatable; replaces the rule's classifications)", collect)
    .option("--clear-classifications", "match any classification")
    .option("--title <text>", "match titles containing this text")
    .option("--clear-title", "match any title")
    .option("--run-after-sync", "run after each successful synchronisation")
    .option("--no-run-after-sync", "run only when asked")
    .action(async (name: string, o: AdrEditOptions, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const a = await s.services.adrs.edit(name, adrChanges(o));
        ctx.print(cmd, a, () => `Changed automatic deployment rule ${a.name}.\n`);
      });
    });
  for (const [verb, on] of [["enable", true], ["disable", false]] as const) {
    adr
      .command(`${verb} <name>`)
      .description(on ? "enable a rule" : "disable a rule: it runs neither now nor after a synchronisation")
      .action(async (name: string, _o: unknown, cmd: Command) => {
        await ctx.withSite(cmd, async (s) => {
          const a = await s.services.adrs.setEnabled(name, on);
          ctx.print(cmd, a, () => `${on ? "Enabled" : "Disabled"} automatic deployment rule ${a.name}.\n`);
        });
      });
  }
  adr
    .command("delete <name>")
    .description("delete a rule and its recorded download results (the content library keeps the files)")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const a = await s.services.adrs.remove(name);
        ctx.print(cmd, a, () => `Deleted automatic deployment rule ${a.name} and its ${a.resultsDeleted} recorded download result(s).\n`);
      });
    });
  adr
    .command("list")
    .description("list rules")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.adrs.list();
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["name", "server", "enabled", "runAfterSync", "products", "classifications", "titleContains"]));
      });
    });
  adr
    .command("run <name>")
    .description("run a rule now: download the matching updates' content (exit 1 if any download failed)")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        let last = 0;
        const r = await siteOperations(s, s.actor).adrRun(name, (p) => {
          const now = Date.now();
          if (now - last < 1000 && p.bytes !== p.total) return;
          last = now;
          const pct = p.total ? ` ${Math.floor((100 * p.bytes) / p.total)}%` : "";
          ctx.io.err.write(`  ${p.file}: ${(p.bytes / 1048576).toFixed(1)} MB${p.total ? ` of ${(p.total / 1048576).toFixed(1)} MB` : ""}${pct}\n`);
        });
        ctx.print(cmd, r, () => table(r.files as unknown as Record<string, unknown>[], ["updateId", "file", "status", "code", "bytes", "message"]) + `${r.files.length - r.failed} of ${r.files.length} files in the content library.\n`);
        if (r.failed > 0) {
          ctx.io.err.write(`error: ${r.failed} download(s) failed: ${[...new Set(r.files.filter((f) => f.status === "failed").map((f) => `error ${f.code}: ${f.message}`))].join("; ")}\n`);
          throw Object.assign(new Error("adr run failed"), { silent: true });
        }
      });
    });
  adr
    .command("results <name>")
    .description("the recorded download results of a rule")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.adrs.results(name);
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["updateId", "file", "status", "code", "bytes", "message"]));
      });
    });

  const scp = program.command("scp").description("service connection point");
  scp
    .command("check-updates <fqdn>")
    .description("check the product update feed now, through the server's proxy")
    .action(async (fqdn: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await siteOperations(s, s.actor).scpCheckUpdates(fqdn);
        ctx.print(cmd, r, () => `Latest version ${r.latestVersion} (${r.releases} releases) from ${r.url} ${r.route}.\n`);
      });
    });
}
