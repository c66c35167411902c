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

export interface Database {
  sites: SitesTable;
  servers: ServersTable;
  roles: RolesTable;
  accounts: AccountsTable;
  proxy_configs: ProxyConfigsTable;
  status_messages: StatusMessagesTable;
  component_status: ComponentStatusTable;
  admin_tokens: AdminTokensTable;
}

export type { ColumnType };
