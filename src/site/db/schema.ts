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
  use_pki_client_cert: ColumnType<Bool, Bool | undefined, Bool>;
  clients_check_crl: ColumnType<Bool, Bool | undefined, Bool>;
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
  source: string; // "site" or "client"
  dedupe_key: string | null;
  /** The uploading client's ID (source "client"); null for the site's own. */
  client_id: Generated<string | null>;
  /** The time the client claimed; `time` is when the site received it. */
  claimed_time: Generated<string | null>;
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
  name: string | null;
  read_only: ColumnType<Bool, Bool | undefined, Bool>;
  revoked_at: string | null;
  /** A security role (src/site/services/admin-roles.ts). */
  role: ColumnType<string, string | undefined, string>;
}

/** Roles of directory users and groups in the console (0017). */
export interface AdminUsersTable {
  id: Id;
  /** user: a value of the name claim; group: a value of the groups claim. */
  kind: string;
  value: string;
  role: string;
  created_at: string;
  updated_at: string;
}

export interface AuditLogTable {
  id: Id;
  time: string;
  actor: string;
  via: string; // "api" | "cli"
  action: string;
  object: string;
  before_json: string | null; // JSON, secrets redacted
  after_json: string | null;
}

export interface EndpointChecksTable {
  id: Id;
  state: string; // "running" | "done" | "failed"
  requested_by: string;
  server: string | null;
  request: string; // JSON
  result: string | null; // JSON
  error: string | null; // JSON
  started_at: string;
  finished_at: string | null;
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
  enabled: ColumnType<Bool, Bool | undefined, Bool>;
  run_after_sync: ColumnType<Bool, Bool | undefined, Bool>;
  updated_at: string | null;
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
  /** Bytes from the devices. */
  bytes_in: number;
  /** Bytes to the devices (the gateway's outbound traffic). */
  bytes_out: number;
  /** Instance index; null in rows written before the breakdown. */
  instance: number | null;
  /** "mp", "sup", "-" (role not in the URL map), "tunnel" (TLS, framing, headers); "" before the breakdown. */
  role_kind: Generated<string>;
  failed: Generated<number>;
}

export interface CmgAlertsTable {
  cmg_name: string;
  alert: string; // "traffic" | "certificate-30d" | "certificate-7d"
  level: string; // traffic: "ok" | "warning" | "critical"; certificate: "raised"
  subject: string; // certificate thumbprint; "" for traffic
  changed_at: string;
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
  /** RFC 7638 thumbprint of the key its client tokens are bound to; null without tokens. */
  token_jkt: string | null;
  /** "<issuer> <device claim>" of a client registered by directory sign-in. */
  directory_id: string | null;
  blocked: Bool;
  blocked_at: string | null;
  /** Thumbprint of the root CA the certificate chained to at the CMG, when it last registered through one. */
  root_thumbprint: Generated<string | null>;
  /** A key an administrator approved to replace `token_jkt` (`site clients approve-key`), until it is used. */
  approved_jkt: Generated<string | null>;
  /** lower(name), unique: two clients cannot take the same name. */
  name_key: Generated<string | null>;
  /** Status messages refused for the client's limits (rate, count per day), and when last. */
  status_refused: Generated<number>;
  status_refused_at: Generated<string | null>;
}

export interface TokenSigningKeysTable {
  kid: string;
  alg: string;
  public_jwk: string;
  private_key: string; // sealed
  state: string; // "current" | "previous" | "retired"
  created_at: string;
  retired_at: string | null;
}

export interface SettingsSigningKeysTable {
  kid: string;
  alg: string;
  public_jwk: string;
  private_key: string; // sealed
  state: string; // "current" | "previous" | "retired" | "pending"
  created_at: string;
  retired_at: string | null;
}

export interface ConnectionPointCertsTable {
  serial: string;
  fqdn: string;
  spki: string;
  issued_at: string;
  not_after: string;
  revoked_at: string | null;
  revoked_reason: string | null;
}

export interface CmgSettingsRevisionsTable {
  cmg_name: string;
  revision: number;
  content_hash: string;
  updated_at: string;
}

export interface BulkTokensTable {
  id: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  used_by: string | null;
  revoked_at: string | null;
  /** Most devices it registers; null: any number until it expires or is revoked. */
  max_uses: Generated<number | null>;
}

/** A one-time join token of a site system server (its hash only) and the host certificate issued with it. */
export interface JoinTokensTable {
  id: string;
  server_fqdn: string;
  token_hash: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  revoked_at: string | null;
  cert_serial: string | null;
  cert_not_after: string | null;
}

/** Each device a bulk token registered, known by its key. */
export interface BulkTokenUsesTable {
  bulk_id: string;
  jkt: string;
  client_id: string;
  used_at: string;
}

/** Directory ID tokens that registered a device, until they expire: each registers once. */
export interface IdTokenUsesTable {
  use_key: string;
  client_id: string | null;
  used_at: string;
  expires_at: string;
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

/** What the kubernetes provider last saw of a CMG in its cluster (migration 0019). */
export interface CmgClusterStateTable {
  cmg_name: string;
  applied_revision: string;
  replicas: number;
  ready_replicas: number;
  objects: number;
  error: string;
  observed_at: string;
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
  admin_users: AdminUsersTable;
  updates: UpdatesTable;
  adrs: AdrsTable;
  adr_downloads: AdrDownloadsTable;
  cmgs: CmgsTable;
  cmg_tunnels: CmgTunnelsTable;
  cmg_traffic: CmgTrafficTable;
  cmg_instance_restarts: CmgInstanceRestartsTable;
  cmg_alerts: CmgAlertsTable;
  clients: ClientsTable;
  client_settings: ClientSettingsTable;
  site_settings: SiteSettingsTable;
  audit_log: AuditLogTable;
  endpoint_checks: EndpointChecksTable;
  token_signing_keys: TokenSigningKeysTable;
  bulk_tokens: BulkTokensTable;
  bulk_token_uses: BulkTokenUsesTable;
  id_token_uses: IdTokenUsesTable;
  settings_signing_keys: SettingsSigningKeysTable;
  connection_point_certs: ConnectionPointCertsTable;
  cmg_settings_revisions: CmgSettingsRevisionsTable;
  join_tokens: JoinTokensTable;
  cmg_cluster_state: CmgClusterStateTable;
}

/** Every table and column of `Database`, at run time (interfaces vanish when compiled). */
type ColumnLists = { readonly [T in keyof Database]: readonly (keyof Database[T] & string)[] };

/**
 * The columns of each table, as the migrations must create them (a test compares the two).
 * tsc refuses a name that is not a column of the interface, and the check below refuses a list
 * that misses one.
 */
export const SCHEMA_COLUMNS = {
  sites: ["code", "name", "type", "parent_code", "created_at", "use_pki_client_cert", "clients_check_crl"],
  servers: ["id", "fqdn", "site_code", "is_site_server", "created_at"],
  roles: ["id", "server_id", "kind", "settings", "created_at", "updated_at"],
  accounts: ["id", "name", "username", "secret", "created_at", "updated_at"],
  proxy_configs: ["server_id", "enabled", "host", "port", "account_id", "updated_at"],
  status_messages: ["id", "message_id", "severity", "component", "server", "time", "text", "properties", "source", "dedupe_key", "client_id", "claimed_time"],
  component_status: ["server", "component", "status", "reason", "updated_at"],
  admin_tokens: ["id", "token_sha256", "created_at", "name", "read_only", "revoked_at", "role"],
  admin_users: ["id", "kind", "value", "role", "created_at", "updated_at"],
  updates: ["update_id", "title", "classification", "product", "release_date", "files", "synced_from", "synced_at"],
  adrs: ["id", "name", "server", "products", "classifications", "title_contains", "created_at", "enabled", "run_after_sync", "updated_at"],
  adr_downloads: ["id", "adr_id", "update_id", "file_name", "status", "code", "bytes", "sha256", "message", "time"],
  cmgs: ["name", "service_fqdn", "service_name", "cloud", "provider", "region", "resource_group", "instances", "crl_check", "min_rsa_bits", "server_cert", "server_key", "trusted_roots", "intermediates", "settings", "revision", "created_at", "updated_at", "run_state", "run_state_at", "run_state_reason"],
  cmg_tunnels: ["cmg_name", "instance", "connection_point", "connected", "detail", "reported_at"],
  cmg_traffic: ["id", "cmg_name", "connection_point", "period_end", "requests", "bytes_in", "bytes_out", "instance", "role_kind", "failed"],
  cmg_alerts: ["cmg_name", "alert", "level", "subject", "changed_at"],
  cmg_instance_restarts: ["cmg_name", "instance", "restarts", "last_restart_at", "last_exit"],
  cmg_cluster_state: ["cmg_name", "applied_revision", "replicas", "ready_replicas", "objects", "error", "observed_at"],
  clients: ["id", "name", "thumbprint", "subject", "token_sha256", "approved", "always_internet", "last_contact_at", "connection_type", "registered_at", "token_jkt", "directory_id", "blocked", "blocked_at", "root_thumbprint", "approved_jkt", "name_key", "status_refused", "status_refused_at"],
  client_settings: ["name", "location_interval_minutes", "policy_interval_minutes", "use_cmg", "always_on_internet", "updated_at"],
  site_settings: ["key", "value", "updated_at"],
  audit_log: ["id", "time", "actor", "via", "action", "object", "before_json", "after_json"],
  endpoint_checks: ["id", "state", "requested_by", "server", "request", "result", "error", "started_at", "finished_at"],
  token_signing_keys: ["kid", "alg", "public_jwk", "private_key", "state", "created_at", "retired_at"],
  bulk_tokens: ["id", "created_at", "expires_at", "used_at", "used_by", "revoked_at", "max_uses"],
  bulk_token_uses: ["bulk_id", "jkt", "client_id", "used_at"],
  id_token_uses: ["use_key", "client_id", "used_at", "expires_at"],
  settings_signing_keys: ["kid", "alg", "public_jwk", "private_key", "state", "created_at", "retired_at"],
  connection_point_certs: ["serial", "fqdn", "spki", "issued_at", "not_after", "revoked_at", "revoked_reason"],
  cmg_settings_revisions: ["cmg_name", "revision", "content_hash", "updated_at"],
  join_tokens: ["id", "server_fqdn", "token_hash", "created_at", "expires_at", "used_at", "revoked_at", "cert_serial", "cert_not_after"],
} as const satisfies ColumnLists;

type Unlisted<T extends keyof Database> = Exclude<keyof Database[T], (typeof SCHEMA_COLUMNS)[T][number]>;
/** Fails to compile, naming the column, when SCHEMA_COLUMNS misses a column of an interface. */
type EveryColumnListed = { [T in keyof Database]: [Unlisted<T>] extends [never] ? true : { unlisted: Unlisted<T> } };
type AllTrue<T extends { [K in keyof Database]: true }> = T;
export type SchemaColumnsComplete = AllTrue<EveryColumnListed>;

export type { ColumnType };
