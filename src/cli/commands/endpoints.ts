/**
 * `opencmg endpoints` (the allow-list exports) and `opencmg check` (the connectivity checker).
 * Both work without a site (the whole catalog); with a site in --data they default to what the
 * site uses: its installed roles, its CMGs' service names and cloud, its servers' proxies.
 */
import { existsSync, readFileSync } from "node:fs";
import type { Command } from "commander";
import { ValidationError } from "../../errors.ts";
import { nullLog } from "../../logs/cmtrace.ts";
import { bundledCatalog, type Selection } from "../../endpoints/catalog.ts";
import { CHECK_CONCURRENCY, STAGE_TIMEOUT_MS, checkEndpoints, checkTargets, summaryLine, type CheckReport } from "../../endpoints/checker.ts";
import { wildcardHostsUnder } from "../../endpoints/check-targets.ts";
import { checkPath, parseProxyUrl } from "../../endpoints/check-path.ts";
import { EXPORT_FORMATS, exportEndpoints, parseProxyAddress, type ExportFormat } from "../../endpoints/export.ts";
import type { MonitorRun } from "../../roles/scp/endpoint-monitor.ts";
import { endpointSelection } from "../../roles/scp/endpoint-selection.ts";
import { openSite, sitePaths, type OpenedSite } from "../../site/site.ts";
import type { CliContext, GlobalOptions } from "../context.ts";
import { table } from "../output.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { endpointMonitor } from "../../app/role-deps.ts";
import { auditedAction } from "../../site/audited.ts";

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

interface FilterOptions {
  role?: string[];
  feature?: string[];
  cloud?: string;
  cmgName?: string;
  childSupFqdn?: string;
  parentSupFqdn?: string;
}

interface EndpointsOptions extends FilterOptions {
  format?: string;
  proxy?: string;
}

interface CheckOptions extends FilterOptions {
  server?: string;
  proxy?: string;
  timeout: string;
  concurrency: string;
  ca?: string[];
  wildcardHost?: string[];
  site?: boolean;
}

export function registerEndpointsCommands(program: Command, ctx: CliContext): void {
  registerEndpoints(program, ctx);
  registerCheck(program, ctx);
}

/** `endpoints`: the allow-list exports. */
function registerEndpoints(program: Command, ctx: CliContext): void {
  program
    .command("endpoints")
    .description(
      "the internet endpoints to allow on firewalls and proxies. With no filters: those of the roles installed at the site " +
        "when a site exists in --data, else the whole catalog. Entries that take <name> need --cmg-name (or the site's CMGs)",
    )
    .option("--role <role>", `only what this role or machine needs (repeatable): ${bundledRoles()}`, collect)
    .option("--feature <feature>", "only this feature (repeatable), e.g. cmg, software-updates, delivery-optimization", collect)
    .option("--cloud <cloud>", "public or usgov (default: both clouds' variants)")
    .option("--cmg-name <name>", "the CMG or cloud distribution point service name (GraniteFalls or GraniteFalls.cloudapp.net): fills <name>")
    .option("--child-sup-fqdn <fqdn>", "software update point of the child site (intranet firewall entries)")
    .option("--parent-sup-fqdn <fqdn>", "software update point of the parent site (intranet firewall entries)")
    .option("--format <format>", `${EXPORT_FORMATS.join(", ")} (default text; json with --json)`)
    .option("--proxy <host:port>", "for --format pac: the proxy that the catalog's hosts go to")
    .action(async (o: EndpointsOptions, cmd: Command) => {
      const g = ctx.globals(cmd);
      const format = (o.format ?? (g.json ? "json" : "text")) as ExportFormat;
      if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new ValidationError("format", `one of ${EXPORT_FORMATS.join(", ")}`);
      if (o.proxy !== undefined && format !== "pac") throw new ValidationError("proxy", "applies to --format pac only");
      const proxy = o.proxy === undefined ? undefined : parseProxyAddress(o.proxy);
      if (format === "pac" && proxy === undefined) throw new ValidationError("proxy", "--format pac needs --proxy host:port");
      const cloud = checkCloud(o.cloud);
      await withExistingSite(ctx, g, async (site) => {
        const selection = await selection_(ctx, site, o, cloud, undefined);
        noteOmitted(ctx, selection);
        ctx.io.out.write(exportEndpoints(format, selection, proxy ? { proxy } : {}));
      });
    });
}

/** `check`: the connectivity checker, ad hoc or as the site's own check (--site). */
function registerCheck(program: Command, ctx: CliContext): void {
  program
    .command("check")
    .description(
      "check that the internet endpoints can be reached, in stages (dns, proxy, connect, tls, http), through the proxy the roles use. " +
        "Route: --server FQDN (that server's proxy configuration and proxy account), --proxy URL, or by default the service connection " +
        "point's server when a site exists in --data; without a site, $HTTPS_PROXY when set, else direct (the environment is never used when a site exists). " +
        "Exit code 0 when every required endpoint that could be tried passed, 1 otherwise, 2 on bad arguments",
    )
    .option("--server <fqdn>", "check through this site system server's proxy configuration and proxy account (default selection: its roles)")
    .option("--proxy <url>", "an ad-hoc proxy: http://[user:password@]host:port (the password shows in the process list: prefer --server)")
    .option("--role <role>", "only what this role or machine needs (repeatable)", collect)
    .option("--feature <feature>", "only this feature (repeatable)", collect)
    .option("--cloud <cloud>", "public or usgov (default: the site's CMGs' cloud, else public)")
    .option("--cmg-name <name>", "the CMG or cloud distribution point service name: fills <name> (default: the site's CMGs)")
    .option("--timeout <seconds>", "limit of each stage", String(STAGE_TIMEOUT_MS / 1000))
    .option("--concurrency <n>", "endpoints checked at once", String(CHECK_CONCURRENCY))
    .option("--ca <file>", "extra trusted root certificates, PEM (repeatable; e.g. a TLS-inspecting proxy's CA)", collect)
    .option("--wildcard-host <host>", "a host to try for the wildcard entries it falls under (repeatable), e.g. a.manage.microsoft.com", collect)
    .option("--site", "run the site's own check now (as the service connection point's schedule does) and record it: status message 11488, SMS_SERVICE_CONNECTOR")
    .action(async (o: CheckOptions, cmd: Command) => {
      const g = ctx.globals(cmd);
      const stageTimeoutMs = positiveNumber("timeout", o.timeout, "a positive number of seconds") * 1000;
      const concurrency = positiveNumber("concurrency", o.concurrency, "a whole number from 1 to 1024");
      if (!Number.isInteger(concurrency) || concurrency > 1024) throw new ValidationError("concurrency", "a whole number from 1 to 1024");
      if (o.server !== undefined && o.proxy !== undefined) throw new ValidationError("server", "give --server or --proxy, not both");
      const cloud = checkCloud(o.cloud);
      const ca = (o.ca ?? []).map((f) => readPem(f));
      const wildcardHosts = wildcardHostsUnder(o.wildcardHost ?? []);
      if (o.proxy !== undefined) parseProxyUrl("proxy", o.proxy); // a bad URL is a usage error before any site is opened

      if (o.site) {
        const extra = [o.server && "--server", o.proxy && "--proxy", o.role && "--role", o.feature && "--feature", o.cloud && "--cloud", o.cmgName && "--cmg-name"].filter(Boolean);
        if (extra.length > 0) throw new ValidationError("site", `--site checks what the site uses, from its service connection point: leave out ${extra.join(", ")}`);
        await withExistingSite(ctx, g, async (site) => {
          if (!site) throw new ValidationError("site", `there is no site in ${sitePaths(g.data).data} (opencmg site init)`);
          const monitor = endpointMonitor(site, { stageTimeoutMs, concurrency, ca, wildcardHosts });
          const run = await auditedAction(site.services.audit, site.actor, "checks.run", "site/endpoint-check", () => monitor.runOnce(), (r) => (r ? { server: r.server, transition: r.transition, summary: r.report.summary } : null));
          if (!run) throw new ValidationError("site", "no service connection point is installed: the site's check runs from its server (opencmg role add FQDN service-connection-point)");
          printReport(ctx, cmd, run.report, { omitted: [], site: siteOutcome(run) });
        });
        return;
      }

      await withExistingSite(ctx, g, async (site) => {
        if (o.server !== undefined && !site) throw new ValidationError("server", `--server needs a site; there is none in ${sitePaths(g.data).data}`);
        const log = site ? site.logs.component(LOG_FILES.endpointCheck) : nullLog;
        const path = await checkPath({ site, server: o.server, proxy: o.proxy, env: ctx.env, log, connectTimeoutMs: stageTimeoutMs, ca });
        try {
          ctx.io.err.write(`Checking through ${path.describe}.\n`);
          const selection = await selection_(ctx, site, o, cloud ?? "default", o.server);
          noteOmitted(ctx, selection);
          const report = await checkEndpoints(checkTargets(selection, { wildcardHosts }), { egress: path.egress, log, stageTimeoutMs, concurrency, ca: [...path.ca, ...ca] });
          printReport(ctx, cmd, report, { omitted: selection.omitted.map((x) => ({ id: x.endpoint.id, address: x.endpoint.address, reason: x.reason })) });
        } finally {
          await path.close();
        }
      });
    });
}

function bundledRoles(): string {
  return [...new Set(bundledCatalog().endpoints.flatMap((e) => e.roles))].join(", ");
}

function checkCloud(v: string | undefined): "public" | "usgov" | undefined {
  if (v === undefined) return undefined;
  if (v !== "public" && v !== "usgov") throw new ValidationError("cloud", "one of public, usgov");
  return v;
}

function positiveNumber(field: string, v: string, rule: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0) throw new ValidationError(field, rule);
  return n;
}

function readPem(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new ValidationError("ca", `cannot read ${file}`);
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) throw new ValidationError("ca", `${file} holds no PEM certificate`);
  return text;
}

/**
 * Runs `fn` with the site of --data/--database when there is one (an initialised site), else
 * with undefined. Never creates a data folder or database just to look.
 */
async function withExistingSite<T>(ctx: CliContext, g: GlobalOptions, fn: (site: OpenedSite | undefined) => Promise<T>): Promise<T> {
  if (g.database === undefined && !existsSync(sitePaths(g.data).sqlite)) return fn(undefined);
  const site = await openSite({ dataDir: g.data, databaseUrl: g.database });
  try {
    if (!(await site.services.sites.top())) return await fn(undefined);
    return await fn(site);
  } finally {
    await site.close();
  }
}

/** The selection of a command (roles/scp/endpoint-selection.ts), its notes on stderr. */
function selection_(ctx: CliContext, site: OpenedSite | undefined, o: FilterOptions, cloud: "public" | "usgov" | "default" | undefined, server: string | undefined): Promise<Selection> {
  const filters = { roles: o.role, features: o.feature, cmgName: o.cmgName, childSupFqdn: o.childSupFqdn, parentSupFqdn: o.parentSupFqdn };
  return endpointSelection(site?.services, filters, cloud, server, (n) => ctx.io.err.write(`note: ${n}\n`));
}

function noteOmitted(ctx: CliContext, selection: Selection): void {
  const byReason = new Map<string, string[]>();
  for (const o of selection.omitted) byReason.set(o.reason, [...(byReason.get(o.reason) ?? []), o.endpoint.address]);
  for (const [reason, addresses] of byReason) {
    const flag = reason.includes("cmgName") ? "--cmg-name NAME" : reason.includes("child") ? "--child-sup-fqdn FQDN" : "--parent-sup-fqdn FQDN";
    ctx.io.err.write(`note: ${addresses.length} entr${addresses.length === 1 ? "y" : "ies"} left out: ${reason.replace(/ \(\w+\)$/, "")} (give ${flag}): ${addresses.join(", ")}\n`);
  }
}

interface SiteOutcome {
  server: string;
  transition: MonitorRun["transition"];
  statusMessage: number | null;
  component: string;
}

function siteOutcome(run: MonitorRun): SiteOutcome {
  return {
    server: run.server,
    transition: run.transition,
    statusMessage: run.message?.messageId ?? null,
    component: run.failing.length > 0 ? "Critical" : "OK",
  };
}

const TRANSITION_TEXT: Record<MonitorRun["transition"], string> = {
  raised: "status message 11488 raised",
  unchanged: "the same endpoints as already reported: no new status message",
  recovered: "reachable again: status message 11489",
  ok: "nothing to report",
};

function printReport(ctx: CliContext, cmd: Command, report: CheckReport, extra: { omitted: { id: string; address: string; reason: string }[]; site?: SiteOutcome }): void {
  const json = {
    ok: report.ok,
    route: report.route,
    startedAt: report.startedAt,
    ms: report.ms,
    concurrency: report.concurrency,
    stageTimeoutMs: report.stageTimeoutMs,
    summary: report.summary,
    ...(extra.site ? { site: extra.site } : {}),
    results: report.results.map((r) => ({
      url: r.url,
      result: r.result,
      stage: r.stage,
      code: r.code,
      ms: r.ms,
      hop: r.hop,
      httpStatus: r.httpStatus,
      required: r.required,
      address: r.address,
      endpoints: r.endpointIds,
      message: r.message,
      stages: r.stages,
    })),
    omitted: extra.omitted,
  };
  ctx.print(cmd, json, () => {
    const rows = report.results.map((r) => ({
      result: r.result.toUpperCase(),
      req: r.required ? "yes" : "no",
      stage: r.stage ?? "-",
      code: r.code ?? (r.httpStatus !== null ? `HTTP ${r.httpStatus}` : "-"),
      ms: r.stages.length > 0 ? r.ms : "-",
      url: r.url,
      detail: r.result === "pass" ? "" : r.message,
    }));
    let out = table(rows, ["result", "req", "stage", "code", "ms", "url", "detail"]);
    if (extra.site) {
      out += `Site: SMS_SERVICE_CONNECTOR on ${extra.site.server} is ${extra.site.component}; ${TRANSITION_TEXT[extra.site.transition]}.\n`;
    }
    return out + `${summaryLine(report)} (${report.route}, ${report.ms} ms).\n`;
  });
  if (!report.ok) throw Object.assign(new Error("check failed"), { silent: true });
}
