/**
 * The service connection point's endpoint monitor (SPEC section 2): on a schedule (default
 * hourly) and on demand (`opencmg check --site`), it checks the internet endpoints of the cloud
 * features the site uses (the catalog's entries for the roles installed at the site, with the
 * CMGs' service names), through the proxy of the server hosting the service connection point.
 *
 * When a required endpoint fails, it raises status message 11488 (severity error, component
 * SMS_SERVICE_CONNECTOR, naming the endpoints and their codes) and sets the SMS_SERVICE_CONNECTOR
 * component Critical on that server; when they all pass again the component returns to OK with
 * the informational message 11489.
 *
 * No flood: 11488 is raised again only when the set of failing endpoints (URL and code) changes,
 * or once a day while it stays the same. The state is the site's own record: the last 11488/11489
 * of the component on that server, whose properties carry the failing set. No table of its own,
 * so a restart or a second site process sees the same state.
 */
import { OpenCmgError, ValidationError } from "../../errors.ts";
import type { EgressProvider } from "../../egress/pool.ts";
import type { LogSet } from "../../logs/cmtrace.ts";
import { selectEndpoints, type ResolvedEndpoint, type Role as CatalogRole, type Selection, type SelectOptions } from "../../endpoints/catalog.ts";
import { checkEndpoints, checkTargets, summaryLine, type CheckReport, type CheckResult, type CheckTarget } from "../../endpoints/checker.ts";
import type { StatusMessage } from "../../site/model.ts";
import type { CmgsService } from "../../site/services/cmgs.ts";
import type { RolesService } from "../../site/services/roles.ts";
import type { ServersService } from "../../site/services/servers.ts";
import type { StatusService } from "../../site/services/status.ts";
import { StatusId } from "../../site/status-ids.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { every, type Schedule } from "../../schedule.ts";

/** The component whose status the monitor sets (and that raises 11488). */
export const SERVICE_CONNECTOR = LOG_FILES.endpointCheck.component;
export const DEFAULT_CHECK_INTERVAL_MS = 60 * 60_000;
/** A failing set that does not change is raised again once a day. */
export const DEFAULT_REMINDER_MS = 24 * 60 * 60_000;
/** The first scheduled run waits a little after start-up (the site has just come up). */
export const DEFAULT_FIRST_RUN_DELAY_MS = 60_000;

/** The cloud features a site uses, as catalog selections. */
export interface SiteUsage {
  /** Catalog roles of the roles installed at the site (and `site-server` when one is recorded). */
  roles: CatalogRole[];
  /** The cloud of the site's CMGs (public unless they are all US Government). */
  cloud: "public" | "usgov";
  /** Service names of the site's CMGs in that cloud (fill `<name>`). */
  cmgNames: string[];
  /** The server hosting the service connection point, if one is installed. */
  scpServer: string | undefined;
  /** Things worth saying about what was left out (custom-cloud CMGs). */
  notes: string[];
}

export interface UsageDeps {
  roles: RolesService;
  servers: ServersService;
  cmgs: CmgsService;
}

export async function siteUsage(d: UsageDeps): Promise<SiteUsage> {
  const installed = await d.roles.list();
  const roles = new Set<CatalogRole>(installed.map((r) => r.kind));
  if ((await d.servers.list()).some((s) => s.isSiteServer)) roles.add("site-server");
  const cmgs = await d.cmgs.list();
  const notes: string[] = [];
  const clouds = new Set(cmgs.map((c) => c.cloud).filter((c) => c !== "custom"));
  const cloud = clouds.size === 1 && clouds.has("usgov") ? "usgov" : "public";
  const cmgNames: string[] = [];
  for (const c of cmgs) {
    if (c.cloud === "custom") notes.push(`CMG ${c.name} runs in a custom cloud (${c.serviceFqdn}): the catalog's <name> endpoints do not apply to it`);
    else if (c.cloud === cloud) cmgNames.push(c.serviceName);
  }
  const scp = installed.find((r) => r.kind === "service-connection-point");
  return { roles: [...roles], cloud, cmgNames: [...new Set(cmgNames)], scpServer: scp?.serverFqdn, notes };
}

/**
 * One selection for several CMG service names: `selectEndpoints` once per name, merged (an entry
 * without `<name>` once). With no name, the `<name>` entries are in `omitted`.
 */
export function selectForNames(opts: Omit<SelectOptions, "cmgName">, names: readonly string[]): Selection {
  if (names.length === 0) return selectEndpoints(opts);
  const seen = new Set<string>();
  const endpoints: ResolvedEndpoint[] = [];
  for (const name of names) {
    for (const e of selectEndpoints({ ...opts, cmgName: name }).endpoints) {
      const key = `${e.id}|${e.resolvedAddress}`;
      if (seen.has(key)) continue;
      seen.add(key);
      endpoints.push(e);
    }
  }
  return { endpoints, omitted: [] };
}

/** A failing endpoint as the status message and its properties carry it. */
export interface FailingEndpoint {
  url: string;
  stage: string;
  code: number;
}

export type Transition =
  /** 11488 raised (first failure, a changed failing set, or the daily reminder). */
  | "raised"
  /** Still failing with the same endpoints: component stays Critical, no new message. */
  | "unchanged"
  /** Everything passes again: component OK and 11489. */
  | "recovered"
  /** Everything passes, as before. */
  | "ok";

export interface MonitorRun {
  server: string;
  report: CheckReport;
  failing: FailingEndpoint[];
  transition: Transition;
  /** The status message raised by this run, if any. */
  message: StatusMessage | undefined;
}

export interface EndpointMonitorDeps extends UsageDeps {
  now: () => Date;
  status: StatusService;
  egress: EgressProvider;
  logs: LogSet;
}

export interface EndpointMonitorOptions {
  /** Time between scheduled runs (default hourly). */
  intervalMs?: number;
  /** Reads the time between runs before each one (the site's endpoint-check-interval; null: off). Wins over `intervalMs`. */
  readIntervalMs?: () => Promise<number | null>;
  /** Delay of the first scheduled run after `start()` (default one minute). */
  firstRunDelayMs?: number;
  /** How often an unchanged failing set is raised again (default daily). */
  reminderMs?: number;
  concurrency?: number;
  stageTimeoutMs?: number;
  /** Extra trusted roots (PEM) for the endpoints' TLS (a TLS-inspecting proxy's CA). */
  ca?: string[];
  /** Known hosts under wildcard entries, to try them instead of reporting them not testable. */
  wildcardHosts?: Record<string, string>;
  /**
   * Where each target is really tried. Tests and benchmarks put loopback stand-ins on other
   * ports than 443/80; production leaves this out.
   */
  mapTarget?: (t: CheckTarget) => CheckTarget;
}

/**
 * @example
 * const monitor = new EndpointMonitor(deps, { intervalMs: 3_600_000 }); // deps: app/role-deps.ts scpDeps(site)
 * monitor.start();                       // scheduled runs
 * const run = await monitor.runOnce();   // on demand: `opencmg check --site`
 * await monitor.stop();
 */
export class EndpointMonitor {
  readonly #deps: EndpointMonitorDeps;
  readonly #opts: EndpointMonitorOptions;
  #schedule: Schedule | undefined;
  #running: Promise<MonitorRun | undefined> | undefined;
  #abort: AbortController | undefined;
  #stopped = false;

  constructor(deps: EndpointMonitorDeps, opts: EndpointMonitorOptions = {}) {
    for (const k of ["intervalMs", "firstRunDelayMs", "reminderMs"] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new ValidationError(k, "a positive number of milliseconds");
    }
    this.#deps = deps;
    this.#opts = opts;
  }

  get log() {
    return this.#deps.logs.component(LOG_FILES.endpointCheck);
  }

  /** Starts the schedule: a first run after `firstRunDelayMs`, then one every interval (read again after each run). */
  start(): void {
    if (this.#schedule || this.#stopped) return;
    const fixed = this.#opts.intervalMs;
    const read = this.#opts.readIntervalMs ?? (async () => fixed ?? DEFAULT_CHECK_INTERVAL_MS);
    this.log.info(fixed !== undefined && !this.#opts.readIntervalMs ? `Endpoint checks scheduled every ${Math.round(fixed / 1000)} s.` : "Endpoint checks scheduled at the site's endpoint-check-interval.");
    this.#schedule = every(read, async () => void (await this.runOnce()), {
      firstDelayMs: this.#opts.firstRunDelayMs ?? DEFAULT_FIRST_RUN_DELAY_MS,
      onError: (e) => this.log.error(`Scheduled endpoint check failed: ${e instanceof Error ? e.message : String(e)}`),
    });
  }

  /** Stops the schedule and cuts a running check short (its results are not recorded). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.abort();
    await this.#schedule?.stop();
    this.#schedule = undefined;
    await this.#running?.catch(() => undefined);
  }

  /**
   * Runs the check now and records the outcome (status message, component status). A run that is
   * already going is shared, not doubled. Resolves undefined when no service connection point is
   * installed (nothing to check from).
   */
  runOnce(): Promise<MonitorRun | undefined> {
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
      this.#abort = undefined;
    });
    return this.#running;
  }

  async #run(): Promise<MonitorRun | undefined> {
    const log = this.log;
    const usage = await siteUsage(this.#deps);
    const server = usage.scpServer;
    if (!server) {
      log.info("No service connection point is installed: no endpoints to check.");
      return undefined;
    }
    for (const n of usage.notes) log.info(`${n}.`);
    const selection = selectForNames({ roles: usage.roles, cloud: usage.cloud }, usage.cmgNames);
    for (const o of selection.omitted) log.info(`Not checked: ${o.endpoint.address} (${o.reason}).`);
    let targets = checkTargets(selection, this.#opts.wildcardHosts ? { wildcardHosts: this.#opts.wildcardHosts } : {});
    if (this.#opts.mapTarget) targets = targets.map(this.#opts.mapTarget);

    const { egress } = await this.#deps.egress.for(server, "service-connection-point", log);
    this.#abort = new AbortController();
    log.info(`Checking the endpoints of the cloud features in use (roles: ${usage.roles.join(", ")}; cloud ${usage.cloud}${usage.cmgNames.length ? `; CMG ${usage.cmgNames.join(", ")}` : ""}) from ${server}.`);
    const report = await checkEndpoints(targets, {
      egress,
      log,
      signal: this.#abort.signal,
      ...(this.#opts.concurrency !== undefined ? { concurrency: this.#opts.concurrency } : {}),
      ...(this.#opts.stageTimeoutMs !== undefined ? { stageTimeoutMs: this.#opts.stageTimeoutMs } : {}),
      ...(this.#opts.ca ? { ca: this.#opts.ca } : {}),
    });
    if (report.aborted) throw new OpenCmgError("internal", "CHECK_STOPPED", "the endpoint check was stopped before it finished; nothing was recorded");
    return this.record(server, report);
  }

  /** Turns a finished check into status: 11488 + Critical, or OK (+ 11489 after a failure). */
  async record(server: string, report: CheckReport): Promise<MonitorRun> {
    const log = this.log;
    const status = this.#deps.status;
    const failing = failingOf(report.results);
    const last = await this.#lastTransitionMessage(server);
    if (failing.length === 0) {
      const required = report.results.filter((r) => r.required && r.result === "pass").length;
      await status.setComponent(server, SERVICE_CONNECTOR, "OK", `The ${required} required endpoint(s) that could be checked are reachable (${summaryLine(report)}).`);
      if (last?.messageId === StatusId.ENDPOINTS_UNREACHABLE) {
        const text = `The internet endpoints that the site's cloud services need are reachable again from ${server} (${report.route}): ${summaryLine(report)}.`;
        const message = await status.raise({ messageId: StatusId.ENDPOINTS_REACHABLE, severity: "informational", component: SERVICE_CONNECTOR, server, text, properties: { route: report.route, summary: report.summary } });
        log.info(text);
        return { server, report, failing, transition: "recovered", message };
      }
      return { server, report, failing, transition: "ok", message: undefined };
    }

    const signature = failing.map((f) => `${f.url} ${f.code}`).join("\n");
    const list = failing.map((f) => `${f.url} (error ${f.code} at the ${f.stage} stage)`);
    await status.setComponent(server, SERVICE_CONNECTOR, "Critical", `${failing.length} required endpoint(s) unreachable: ${truncate(list.join(", "), 900)}`);
    const lastProps = last?.properties as { signature?: string } | undefined;
    const age = last ? this.#deps.now().getTime() - Date.parse(last.time) : Infinity;
    if (last?.messageId === StatusId.ENDPOINTS_UNREACHABLE && lastProps?.signature === signature && age < (this.#opts.reminderMs ?? DEFAULT_REMINDER_MS)) {
      log.warn(`Still unreachable, as already reported at ${last.time}: ${list.join(", ")}.`);
      return { server, report, failing, transition: "unchanged", message: undefined };
    }
    const text = truncate(
      `The site cannot reach ${failing.length} internet endpoint(s) that its cloud services need, from ${server} (${report.route}): ${list.join("; ")}. ` +
        `Allow them on the firewall and the proxy (opencmg endpoints --format squid), then run opencmg check --site.`,
      8000,
    );
    const message = await status.raise({
      messageId: StatusId.ENDPOINTS_UNREACHABLE,
      severity: "error",
      component: SERVICE_CONNECTOR,
      server,
      text,
      properties: { signature, failing, route: report.route, summary: report.summary },
    });
    log.error(text);
    return { server, report, failing, transition: "raised", message };
  }

  /** The newest 11488 or 11489 of the component on `server`: the monitor's memory. */
  #lastTransitionMessage(server: string) {
    return this.#deps.status.latest(SERVICE_CONNECTOR, server, [StatusId.ENDPOINTS_UNREACHABLE, StatusId.ENDPOINTS_REACHABLE]);
  }
}

/** Required endpoints that failed (a warn reached the endpoint: not an 11488), sorted for comparison. */
export function failingOf(results: readonly CheckResult[]): FailingEndpoint[] {
  return results
    .filter((r) => r.required && r.result === "fail")
    .map((r) => ({ url: r.url, stage: r.stage ?? "connect", code: r.code ?? 0 }))
    .sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : a.code - b.code));
}

/** `OPENCMG_ENDPOINT_CHECK_INTERVAL` (seconds; `0` turns the schedule off) -> options for `site serve`. */
export function scheduleFromEnv(value: string | undefined): { intervalMs?: number } | false {
  if (value === undefined || value.trim() === "") return {};
  const s = Number(value);
  if (!Number.isFinite(s) || s < 0) throw new ValidationError("OPENCMG_ENDPOINT_CHECK_INTERVAL", "a number of seconds (0 turns the scheduled endpoint check off)");
  return s === 0 ? false : { intervalMs: s * 1000 };
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
