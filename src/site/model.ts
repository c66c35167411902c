/**
 * The site's domain model: what the services return and the proxy rules reason about.
 * Words are the documents' own: site, site system server, role, proxy account, status message.
 */

export const SITE_TYPES = ["primary", "cas", "secondary"] as const;
export type SiteType = (typeof SITE_TYPES)[number];

export interface Site {
  code: string;
  name: string;
  type: SiteType;
  /** The parent site's code; null for the top-level site. */
  parentCode: string | null;
}

export interface SiteSystemServer {
  id: number;
  fqdn: string;
  siteCode: string;
  /** The site server of its site (the primary site server's proxy serves cloud distribution points). */
  isSiteServer: boolean;
}

export const ROLE_KINDS = [
  "management-point",
  "software-update-point",
  "service-connection-point",
  "asset-intelligence-sync-point",
  "exchange-connector",
  "distribution-point",
  "cloud-distribution-point",
  "cmg-connection-point",
] as const;
export type RoleKind = (typeof ROLE_KINDS)[number];

/** Features that are not roles but reach the internet through a role's server. */
export const FEATURES = [
  "software-update-sync",
  "adr-download",
  "directory-user-discovery",
  "directory-group-discovery",
  "group-sync",
] as const;
export type Feature = (typeof FEATURES)[number];

export interface ManagementPointSettings {
  allowCmgTraffic: boolean;
  /** Where the CMG connection point forwards to (default `https://FQDN`). */
  internalUrl?: string | undefined;
}
export interface SoftwareUpdatePointSettings {
  allowCmgTraffic: boolean;
  useProxyForSync: boolean;
  useProxyForAdr: boolean;
  internalUrl?: string | undefined;
  /** The upstream update source (a JSON catalog). */
  upstreamUrl?: string | undefined;
  /** Synchronise on a schedule, every this many hours; absent or null: only when asked (the default). */
  syncIntervalHours?: number | null | undefined;
}
export interface ServiceConnectionPointSettings {
  updateFeedUrl?: string | undefined;
}
export interface DistributionPointSettings {
  connectedCache: boolean;
}
export interface CmgConnectionPointSettings {
  cmgName?: string | undefined;
}
export type EmptySettings = Record<string, never>;

export interface RoleSettingsByKind {
  "management-point": ManagementPointSettings;
  "software-update-point": SoftwareUpdatePointSettings;
  "service-connection-point": ServiceConnectionPointSettings;
  "asset-intelligence-sync-point": EmptySettings;
  "exchange-connector": EmptySettings;
  "distribution-point": DistributionPointSettings;
  "cloud-distribution-point": EmptySettings;
  "cmg-connection-point": CmgConnectionPointSettings;
}

export type Role = {
  [K in RoleKind]: { id: number; serverFqdn: string; kind: K; settings: RoleSettingsByKind[K] };
}[RoleKind];

/** An account as anyone outside the secrets module sees it: never with its secret. */
export interface AccountInfo {
  id: number;
  name: string;
  username: string;
}

/** The one proxy configuration of a site system server. */
export interface ProxyConfig {
  server: string;
  enabled: boolean;
  host: string;
  port: number;
  /** The site system proxy server account's name, or null to go out as the server itself. */
  account: string | null;
}

export const DEFAULT_PROXY_PORT = 80;

export type StatusSeverity = "informational" | "warning" | "error";

export interface StatusMessage {
  id: number;
  messageId: number;
  severity: StatusSeverity;
  component: string;
  server: string;
  time: string;
  text: string;
  properties: Record<string, unknown>;
  /** "site" for the site's own components; "client" for a message a device uploaded. */
  source: StatusSource;
  /** The client that uploaded it (source "client"); null for the site's own. */
  clientId: string | null;
  /** When the client says it happened (source "client"); `time` is when the site received it. */
  claimedTime: string | null;
}

export type StatusSource = "site" | "client";

export type ComponentState = "OK" | "Warning" | "Critical";

export interface ComponentStatus {
  server: string;
  component: string;
  status: ComponentState;
  reason: string;
  updatedAt: string;
}
