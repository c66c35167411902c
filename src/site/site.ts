/**
 * A site opened from its data folder: the database (SQLite in the folder, or PostgreSQL), the site
 * key, the log files, the services and the egress pool, each built once here. The wiring layer
 * (app/, cli/, api/) opens it and hands each role runner the narrow part it needs.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import type { Logger as PinoLogger } from "pino";
import { EgressPool, type EgressPoolOptions, type EgressProvider } from "../egress/pool.ts";
import { LogSet, type LogLevel } from "../logs/cmtrace.ts";
import { openDatabase, type SiteDb } from "./db/connect.ts";
import { ambientDb } from "./db/scope.ts";
import { scopedTransaction } from "./db/transaction.ts";
import type { Site } from "./model.ts";
import { SiteKeyFile } from "./secrets.ts";
import { auditedServices } from "./audited.ts";
import { AccountsService } from "./services/accounts.ts";
import { AuditService, type Actor } from "./services/audit.ts";
import { AdrsService } from "./services/adrs.ts";
import { ClientsService } from "./services/clients.ts";
import { EndpointChecksService } from "./services/checks.ts";
import { CmgsService } from "./services/cmgs.ts";
import { CmgTrustService } from "./services/cmg-trust.ts";
import { CmgAlertsService } from "./services/cmg-alerts.ts";
import { CmgTrafficService } from "./services/cmg-traffic.ts";
import type { ServiceContext } from "./services/context.ts";
import { ProxiesService } from "./services/proxies.ts";
import { RolesService } from "./services/roles.ts";
import { ServersService } from "./services/servers.ts";
import { SettingsService } from "./services/settings.ts";
import { SitesService } from "./services/sites.ts";
import { StatusService } from "./services/status.ts";
import { AdminTokensService, type AdminIdentity } from "./services/admin-tokens.ts";
import { UpdatesService } from "./services/updates.ts";
import { AdminUsersService } from "./services/admin-users.ts";
import { TokensService } from "./services/tokens.ts";
import { JoinsService } from "./services/joins.ts";
import { DirectoryTrust, directoryConfigFrom, fetchJson } from "./services/directory.ts";
import { LOG_FILES } from "../logs/files.ts";

export interface SitePaths {
  data: string;
  sqlite: string;
  key: string;
  adminToken: string;
  logs: string;
  content: string;
  /** Extra trusted roots for outbound TLS (a TLS-inspecting proxy's CA), PEM; optional. */
  egressCa: string;
}

export function sitePaths(dataDir: string): SitePaths {
  const data = resolve(dataDir);
  return { data, sqlite: join(data, "site.db"), key: join(data, "site.key"), adminToken: join(data, "admin.token"), logs: join(data, "logs"), content: join(data, "content"), egressCa: join(data, "egress-ca.pem") };
}

export interface SiteServices {
  sites: SitesService;
  servers: ServersService;
  roles: RolesService;
  accounts: AccountsService;
  proxies: ProxiesService;
  status: StatusService;
  clients: ClientsService;
  cmgs: CmgsService;
  /** What the instances trust: settings-signing keys, connection point certificates, the signed settings. */
  cmgTrust: CmgTrustService;
  /** A CMG's traffic as its connection points report it. */
  cmgTraffic: CmgTrafficService;
  /** A CMG's alert settings and the state they were raised in. */
  cmgAlerts: CmgAlertsService;
  updates: UpdatesService;
  adrs: AdrsService;
  tokens: TokensService;
  settings: SettingsService;
  adminTokens: AdminTokensService;
  adminUsers: AdminUsersService;
  audit: AuditService;
  checks: EndpointChecksService;
  /** One-time join tokens and the servers that joined with them. */
  joins: JoinsService;
}

export interface OpenSiteOptions {
  dataDir: string;
  /** PostgreSQL URL; the embedded SQLite database in the data folder when left out. */
  databaseUrl?: string | undefined;
  /** Structured copy of the log lines (servers log to stdout). */
  pino?: PinoLogger | undefined;
  /** The least severe CMTrace line written (default info: all). */
  logLevel?: LogLevel | undefined;
  /** The size at which each CMTrace file rotates, in bytes (default 2.5 MB, LogSet's). */
  logSizeBytes?: number | undefined;
  now?: () => Date;
  /** Extra trusted roots for outbound TLS, added to those of `<data>/egress-ca.pem`. */
  egressCa?: string[] | undefined;
  /** Name resolution for outbound connections (tests map names to loopback stand-ins). */
  egressLookup?: EgressPoolOptions["lookup"];
  /** What this process does (`server add`, `site serve`), told to other writers that wait on it. */
  work?: string | undefined;
  /** How long a write waits for another writer's lock (default 15 s); short for writers that must not stall. */
  busyTimeoutMs?: number | undefined;
  /** Who the opened site's `services` act for (default: the local user, via the CLI). */
  actor?: Actor | undefined;
}

export interface OpenedSite {
  paths: SitePaths;
  database: SiteDb;
  logs: LogSet;
  /** The services, acting for `actor`: every change is audited (site/audited.ts). */
  services: SiteServices;
  actor: Actor;
  /** The same services acting for someone else (an admin API request's token). */
  servicesAs(actor: Actor): SiteServices;
  /** What the services share; for the few readers that are not a service yet (tests, the endpoint monitor). */
  ctx: ServiceContext;
  /** Outbound connections of every role, through the proxy the rules give. */
  egress: EgressProvider;
  close(): Promise<void>;
}

/** Opens (and migrates) the site database of a data folder. The site key is loaded when present. */
export async function openSite(o: OpenSiteOptions): Promise<OpenedSite> {
  const paths = sitePaths(o.dataDir);
  // The data folder holds the site key, sealed secrets and CMG keys: 0700 whatever mode it had.
  mkdirSync(paths.data, { recursive: true, mode: 0o700 });
  if ((statSync(paths.data).mode & 0o077) !== 0) chmodSync(paths.data, 0o700);
  if (!o.databaseUrl) ownerOnly(paths.sqlite);
  const logs = new LogSet({ dir: paths.logs, pino: o.pino, ...(o.logLevel ? { level: o.logLevel } : {}), ...(o.logSizeBytes ? { maxBytes: o.logSizeBytes } : {}) });
  const database = await openDatabase({
    databaseUrl: o.databaseUrl,
    sqlitePath: paths.sqlite,
    work: o.work,
    busyTimeoutMs: o.busyTimeoutMs,
    onConnection: (event, message) => (event === "lost" ? logs.component(LOG_FILES.smsprov).warn(message) : logs.component(LOG_FILES.smsprov).info(message)),
  });
  const keyFile = new SiteKeyFile(paths.key);
  const ctx: ServiceContext = {
    // Inside an audited change: that change's transaction (site/db/scope.ts).
    get db() {
      return ambientDb(database.db);
    },
    // Read when a secret is first sealed or opened: `site init` may create the file after this.
    get key() {
      return keyFile.current();
    },
    logs,
    now: o.now ?? (() => new Date()),
  };
  const sites = new SitesService(ctx);
  const accounts = new AccountsService(ctx);
  const proxies = new ProxiesService(ctx, accounts);
  const roles = new RolesService(ctx);
  const ca = [...(existsSync(paths.egressCa) ? [readFileSync(paths.egressCa, "utf8")] : []), ...(o.egressCa ?? [])];
  const egress = new EgressPool((fqdn, subject) => proxies.route(fqdn, subject), { ca: ca.length > 0 ? ca : undefined, lookup: o.egressLookup });
  const clients = new ClientsService(ctx);
  const settings = new SettingsService(ctx, clients);
  const directory = new DirectoryTrust(directoryConfigFrom(settings), fetchJson, () => logs.component(LOG_FILES.smsprov));
  const tokens = new TokensService(ctx, directory);
  const cmgs = new CmgsService(ctx, sites, roles, tokens, paths.data);
  // X.509 issuing is loaded only when a connection point certificate is issued.
  const sitePki = async () => new (await import("./site-pki.ts")).SitePki(paths.data);
  const servers = new ServersService(ctx, sites);
  const raw: SiteServices = {
    sites,
    servers,
    roles,
    accounts,
    proxies,
    status: new StatusService(ctx),
    clients,
    cmgs,
    cmgTrust: new CmgTrustService(ctx, roles, cmgs, sitePki),
    cmgTraffic: new CmgTrafficService(ctx),
    cmgAlerts: new CmgAlertsService(ctx),
    updates: new UpdatesService(ctx),
    adrs: new AdrsService(ctx, roles),
    settings,
    tokens,
    adminTokens: new AdminTokensService(ctx),
    adminUsers: new AdminUsersService(ctx),
    audit: new AuditService(ctx),
    checks: new EndpointChecksService(ctx),
    joins: new JoinsService(ctx, servers, sitePki, roles),
  };
  const actor = o.actor ?? localActor();
  const servicesAs = (a: Actor): SiteServices => auditedServices(raw, a, raw.audit, (fn) => scopedTransaction(database.db, fn));
  return {
    paths,
    database,
    logs,
    services: servicesAs(actor),
    actor,
    servicesAs,
    ctx,
    egress,
    async close() {
      await egress.close();
      await database.close();
      logs.close();
    },
  };
}

/** The user running this process, as the audit log names a CLI change. */
export function localActor(): Actor {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = process.env.USER ?? process.env.USERNAME ?? `uid ${process.getuid?.() ?? "?"}`;
  }
  return { name, via: "cli" };
}

/**
 * The SQLite file holds the site's settings and sealed secrets: created 0600 before SQLite opens it
 * (its -wal and -shm files take the same mode), and tightened if someone loosened it.
 */
function ownerOnly(file: string): void {
  if (!existsSync(file)) closeSync(openSync(file, "a", 0o600));
  else if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
}

/** Creates the site key file if missing (`site init`). */
export function ensureSiteKey(site: OpenedSite): void {
  new SiteKeyFile(site.paths.key).ensure();
}

export interface InitSiteInput {
  code: string;
  name: string;
  type?: string | undefined;
}

/**
 * `site init`: creates the site key (0600), the admin token (0600 file; only its hash is in the
 * database) and the top-level site. Running it again keeps everything and returns the same token.
 */
export async function initSite(site: OpenedSite, input: InitSiteInput): Promise<{ site: Site; adminToken: string }> {
  ensureSiteKey(site);
  const s = await site.services.sites.init(input);
  const { SitePki } = await import("./site-pki.ts"); // X.509 issuing: only `site init` needs it here
  await new SitePki(site.paths.data).ensureCa(s.code);
  if (!existsSync(site.paths.adminToken)) writeFileSync(site.paths.adminToken, randomBytes(32).toString("base64url") + "\n", { mode: 0o600, flag: "wx" });
  const adminToken = readFileSync(site.paths.adminToken, "utf8").trim();
  await site.services.adminTokens.adoptAdminFile(adminToken);
  return { site: s, adminToken };
}

/** The identity of an admin token of this site that is not revoked; undefined for anything else. */
export async function verifyAdminToken(site: OpenedSite, token: string | undefined): Promise<AdminIdentity | undefined> {
  return site.services.adminTokens.verify(token);
}
