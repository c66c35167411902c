/**
 * The site database's tables, as kysely sees them. Booleans are stored as integers 0/1 and
 * times as ISO-8601 text in both SQLite and PostgreSQL, so one data-access layer serves both.
 */
import type { ColumnType, Generated } from "kysely";

type Id = Generated<number>;
type Bool = number; // 0 | 1

export interface SitesTable {
  code: string;
  name: string;
  type: string; // SiteType
  parent_code: string | null;
  created_at: string;
}

export interface ServersTable {
  id: Id;
  fqdn: string;
  site_code: string;
  is_site_server: Bool;
  created_at: string;
}

export interface RolesTable {
  id: Id;
  server_id: number;
  kind: string; // RoleKind
  settings: string; // JSON of the role's settings
  created_at: string;
  updated_at: string;
}

export interface AccountsTable {
  id: Id;
  name: string;
  username: string;
  secret: string; // sealed with the site key, never plain text
  created_at: string;
  updated_at: string;
}

export interface ProxyConfigsTable {
  server_id: number;
  enabled: Bool;
  host: string;
  port: number;
  account_id: number | null;
  updated_at: string;
}

export interface StatusMessagesTable {
  id: Id;
  message_id: number;
  severity: string;
  component: string;
  server: string;
  time: string;
  text: string;
  properties: string; // JSON
  source: string; // "site" or a client id
  dedupe_key: string | null;
}

export interface ComponentStatusTable {
  server: string;
  component: string;
  status: string;
  reason: string;
  updated_at: string;
}

export interface AdminTokensTable {
  id: Id;
  token_sha256: string;
  created_at: string;
}

export interface UpdatesTable {
  update_id: string;
  title: string;
  classification: string;
  product: string;
  release_date: string;
  files: string; // JSON UpdateFile[]
  synced_from: string;
  synced_at: string;
}

export interface AdrsTable {
  id: Id;
  name: string;
  server: string;
  products: string; // JSON string[]
  classifications: string; // JSON string[]
  title_contains: string | null;
  created_at: string;
}

export interface AdrDownloadsTable {
  id: Id;
  adr_id: number;
  update_id: string;
  file_name: string;
  status: string; // "downloaded" | "present" | "failed"
  code: number | null;
  bytes: number;
  sha256: string | null;
  message: string;
  time: string;
}

export interface CmgsTable {
  name: string;
  service_fqdn: string;
  service_name: string;
  cloud: string;
  provider: string;
  region: string;
  resource_group: string;
  instances: number;
  crl_check: Bool;
  /** Smallest RSA key of a client certificate chain the CMG accepts (bits, 2048..16384). */
  min_rsa_bits: Generated<number>;
  server_cert: string;
  server_key: string; // sealed with the site key
  trusted_roots: string; // JSON string[] (PEM)
  intermediates: string; // JSON string[] (PEM)
  settings: string; // JSON CmgDeploySettings
  revision: number;
  created_at: string;
  updated_at: string;
  /** "running", "stopped" or "deleting": what the administrator asked for (cmg start/stop/delete). */
  run_state: Generated<string>;
  run_state_at: string | null;
  run_state_reason: string | null;
}

export interface CmgTunnelsTable {
  cmg_name: string;
  instance: number;
  connection_point: string;
  connected: Bool;
  detail: string;
  reported_at: string;
}

export interface CmgTrafficTable {
  id: Id;
  cmg_name: string;
  connection_point: string;
  period_end: string;
  requests: number;
  bytes_in: number;
  bytes_out: number;
}

export interface CmgInstanceRestartsTable {
  cmg_name: string;
  instance: number;
  restarts: number;
  last_restart_at: string;
  last_exit: string; // exit code or signal name
}

export interface ClientsTable {
  id: string; // "GUID:<uuid>"
  name: string;
  thumbprint: string | null;
  subject: string | null;
  token_sha256: string | null;
  approved: Bool;
  always_internet: Bool;
  last_contact_at: string | null;
  connection_type: string | null; // "intranet" | "internet"
  registered_at: string;
  /** Thumbprint of the root CA the certificate chained to at the CMG, when it last registered through one. */
  root_thumbprint: Generated<string | null>;
}

export interface ClientSettingsTable {
  name: string; // "default"
  location_interval_minutes: number;
  policy_interval_minutes: number;
  use_cmg: Bool;
  always_on_internet: Bool;
  updated_at: string;
}

export interface SiteSettingsTable {
  key: string;
  /** The normalized value as `opencmg settings get` shows it. */
  value: string;
  updated_at: string;
}

export interface Database {
  sites: SitesTable;
  servers: ServersTable;
  roles: RolesTable;
  accounts: AccountsTable;
  proxy_configs: ProxyConfigsTable;
  status_messages: StatusMessagesTable;
  component_status: ComponentStatusTable;
  admin_tokens: AdminTokensTable;
  updates: UpdatesTable;
  adrs: AdrsTable;
  adr_downloads: AdrDownloadsTable;
  cmgs: CmgsTable;
  cmg_tunnels: CmgTunnelsTable;
  cmg_traffic: CmgTrafficTable;
  cmg_instance_restarts: CmgInstanceRestartsTable;
  clients: ClientsTable;
  client_settings: ClientSettingsTable;
  site_settings: SiteSettingsTable;
}

/** Every table and column of `Database`, at run time (interfaces vanish when compiled). */
type ColumnLists = { readonly [T in keyof Database]: readonly (keyof Database[T] & string)[] };

/**
 * The columns of each table, as the migrations must create them (a test compares the two).
 * tsc refuses a name that is not a column of the interface, and the check below refuses a list
 * that misses one.
 */
export const SCHEMA_COLUMNS = {
  sites: ["code", "name", "type", "parent_code", "created_at"],
  servers: ["id", "fqdn", "site_code", "is_site_server", "created_at"],
  roles: ["id", "server_id", "kind", "settings", "created_at", "updated_at"],
  accounts: ["id", "name", "username", "secret", "created_at", "updated_at"],
  proxy_configs: ["server_id", "enabled", "host", "port", "account_id", "updated_at"],
  status_messages: ["id", "message_id", "severity", "component", "server", "time", "text", "properties", "source", "dedupe_key"],
  component_status: ["server", "component", "status", "reason", "updated_at"],
  admin_tokens: ["id", "token_sha256", "created_at"],
  updates: ["update_id", "title", "classification", "product", "release_date", "files", "synced_from", "synced_at"],
  adrs: ["id", "name", "server", "products", "classifications", "title_contains", "created_at"],
  adr_downloads: ["id", "adr_id", "update_id", "file_name", "status", "code", "bytes", "sha256", "message", "time"],
  cmgs: ["name", "service_fqdn", "service_name", "cloud", "provider", "region", "resource_group", "instances", "crl_check", "min_rsa_bits", "server_cert", "server_key", "trusted_roots", "intermediates", "settings", "revision", "created_at", "updated_at", "run_state", "run_state_at", "run_state_reason"],
  cmg_tunnels: ["cmg_name", "instance", "connection_point", "connected", "detail", "reported_at"],
  cmg_traffic: ["id", "cmg_name", "connection_point", "period_end", "requests", "bytes_in", "bytes_out"],
  cmg_instance_restarts: ["cmg_name", "instance", "restarts", "last_restart_at", "last_exit"],
  clients: ["id", "name", "thumbprint", "subject", "token_sha256", "approved", "always_internet", "last_contact_at", "connection_type", "registered_at", "root_thumbprint"],
  client_settings: ["name", "location_interval_minutes", "policy_interval_minutes", "use_cmg", "always_on_internet", "updated_at"],
  site_settings: ["key", "value", "updated_at"],
} as const satisfies ColumnLists;

type Unlisted<T extends keyof Database> = Exclude<keyof Database[T], (typeof SCHEMA_COLUMNS)[T][number]>;
/** Fails to compile, naming the column, when SCHEMA_COLUMNS misses a column of an interface. */
type EveryColumnListed = { [T in keyof Database]: [Unlisted<T>] extends [never] ? true : { unlisted: Unlisted<T> } };
type AllTrue<T extends { [K in keyof Database]: true }> = T;
export type SchemaColumnsComplete = AllTrue<EveryColumnListed>;

export type { ColumnType };
