/**
 * A site opened from its data folder: the database (SQLite in the folder, or PostgreSQL), the site
 * key, the log files, the services and the egress pool, each built once here. The wiring layer
 * (app/, cli/, api/) opens it and hands each role runner the narrow part it needs.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Logger as PinoLogger } from "pino";
import { EgressPool, type EgressPoolOptions, type EgressProvider } from "../egress/pool.ts";
import { LogSet } from "../logs/cmtrace.ts";
import { openDatabase, type SiteDb } from "./db/connect.ts";
import type { Site } from "./model.ts";
import { SiteKeyFile } from "./secrets.ts";
import { AccountsService } from "./services/accounts.ts";
import { AdrsService } from "./services/adrs.ts";
import { ClientsService } from "./services/clients.ts";
import { CmgsService } from "./services/cmgs.ts";
import type { ServiceContext } from "./services/context.ts";
import { ProxiesService } from "./services/proxies.ts";
import { RolesService } from "./services/roles.ts";
import { ServersService } from "./services/servers.ts";
import { SettingsService } from "./services/settings.ts";
import { SitesService } from "./services/sites.ts";
import { StatusService } from "./services/status.ts";
import { UpdatesService } from "./services/updates.ts";

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
  updates: UpdatesService;
  adrs: AdrsService;
  settings: SettingsService;
}

export interface OpenSiteOptions {
  dataDir: string;
  /** PostgreSQL URL; the embedded SQLite database in the data folder when left out. */
  databaseUrl?: string | undefined;
  /** Structured copy of the log lines (servers log to stdout). */
  pino?: PinoLogger | undefined;
  now?: () => Date;
  /** Extra trusted roots for outbound TLS, added to those of `<data>/egress-ca.pem`. */
  egressCa?: string[] | undefined;
  /** Name resolution for outbound connections (tests map names to loopback stand-ins). */
  egressLookup?: EgressPoolOptions["lookup"];
  /** What this process does (`server add`, `site serve`), told to other writers that wait on it. */
  work?: string | undefined;
  /** How long a write waits for another writer's lock (default 15 s); short for writers that must not stall. */
  busyTimeoutMs?: number | undefined;
}

export interface OpenedSite {
  paths: SitePaths;
  database: SiteDb;
  logs: LogSet;
  services: SiteServices;
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
  const logs = new LogSet({ dir: paths.logs, pino: o.pino });
  const database = await openDatabase({ databaseUrl: o.databaseUrl, sqlitePath: paths.sqlite, work: o.work, busyTimeoutMs: o.busyTimeoutMs });
  const keyFile = new SiteKeyFile(paths.key);
  const ctx: ServiceContext = {
    db: database.db,
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
  const services: SiteServices = {
    sites,
    servers: new ServersService(ctx, sites),
    roles,
    accounts,
    proxies,
    status: new StatusService(ctx),
    clients,
    cmgs: new CmgsService(ctx, sites, roles, paths.data),
    updates: new UpdatesService(ctx),
    adrs: new AdrsService(ctx, roles),
    settings: new SettingsService(ctx, clients),
  };
  return {
    paths,
    database,
    logs,
    services,
    ctx,
    egress,
    async close() {
      await egress.close();
      await database.close();
      logs.close();
    },
  };
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

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");

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
  const hash = sha256(adminToken);
  const known = await site.database.db.selectFrom("admin_tokens").select("id").where("token_sha256", "=", hash).executeTakeFirst();
  if (!known) await site.database.db.insertInto("admin_tokens").values({ token_sha256: hash, created_at: new Date().toISOString() }).execute();
  return { site: s, adminToken };
}

/** True when `token` is an admin token of this site (compared by hash, in constant time). */
export async function verifyAdminToken(site: OpenedSite, token: string | undefined): Promise<boolean> {
  if (!token) return false;
  const hash = sha256(token);
  const rows = await site.database.db.selectFrom("admin_tokens").select("token_sha256").execute();
  return rows.some((r) => timingSafeEqual(Buffer.from(r.token_sha256), Buffer.from(hash)));
}
