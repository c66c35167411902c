/**
 * The admin API as the console calls it: same-origin fetch with the session cookie, the CSRF
 * header on every change, and the API's one error shape turned into `ApiError` (with the field a
 * validation error names, so a form shows the message next to that field).
 */

export interface ApiErrorBody {
  error?: string;
  kind?: string;
  code?: string | number;
  field?: string;
  rule?: string;
  message?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(body.message ?? `HTTP ${status}`);
  }
  get field(): string | undefined {
    return this.body.field;
  }
  /**
   * The route is not on this site's API yet (an older or partial server): a 404 that names no
   * field (a missing object's 404 names the field that named it).
   */
  get notAvailable(): boolean {
    return this.status === 404 && (this.body.code === "ROUTE_NOT_FOUND" || !this.body.field);
  }
}

let csrfToken = "";
let onSignedOut: () => void = () => undefined;

export function setSession(csrf: string): void {
  csrfToken = csrf;
}

export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET") headers["x-opencmg-csrf"] = csrfToken;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text };
  }
  if (!res.ok) {
    // The API's one error shape is { error: { code, kind, message, field?, rule? } }.
    const raw = (data ?? {}) as { error?: unknown };
    const err = new ApiError(res.status, (raw.error && typeof raw.error === "object" ? raw.error : raw) as ApiErrorBody);
    if (res.status === 401 && path !== "/api/v1/session") onSignedOut();
    throw err;
  }
  return data as T;
}

export const get = <T>(path: string): Promise<T> => api<T>("GET", path);

// ---- shapes the API returns (the site's model) ----

export interface Site {
  code: string;
  name: string;
  type: string;
  parentCode: string | null;
}
export interface Server {
  id: number;
  fqdn: string;
  siteCode: string;
  isSiteServer: boolean;
}
export interface Role {
  id: number;
  serverFqdn: string;
  kind: string;
  settings: Record<string, unknown>;
}
export interface Account {
  id: number;
  name: string;
  username: string;
}
export interface ProxyConfig {
  server: string;
  enabled: boolean;
  host: string;
  port: number;
  account: string | null;
}
export interface ComponentStatus {
  server: string;
  component: string;
  status: "OK" | "Warning" | "Critical";
  reason: string;
  updatedAt: string;
}
export interface StatusMessage {
  id: number;
  messageId: number;
  severity: "informational" | "warning" | "error";
  component: string;
  server: string;
  /** When the site raised or received it. */
  time: string;
  text: string;
  /** site: the site's own components; client: a device uploaded it. */
  source: "site" | "client";
  clientId: string | null;
  /** When the device says it happened (not trusted). */
  claimedTime: string | null;
}
export interface CertInfo {
  subject: string;
  thumbprint: string;
  notAfter: string;
  dnsNames?: string[];
}
export interface CmgInstance {
  index: number;
  clientUrl: string;
  tunnelHost: string;
  tunnelPort: number;
  connectionPoints: { server: string; connected: boolean; detail: string; reportedAt: string }[];
  restarts: number;
}
export interface Cmg {
  name: string;
  serviceFqdn: string;
  serviceName: string;
  cloud: string;
  provider: string;
  region: string;
  resourceGroup: string;
  instanceCount: number;
  crlCheck: boolean;
  minRsaBits: number;
  serverCertificate: CertInfo;
  trustedRoots: CertInfo[];
  intermediates: CertInfo[];
  deploy: { listenHost: string; publicHost: string; clientPortBase: number; tunnelPortBase: number; instanceHost: string; trafficAlert: { thresholdGb: number; warningPct: number; criticalPct: number; stopOnCritical?: boolean } | null };
  connectionPointServers: string[];
  /** Stopping, Stopped, Starting and Deleting come with the lifecycle routes (start, stop, delete). */
  status: "Provisioning" | "Ready" | "Degraded" | "Error" | "Stopping" | "Stopped" | "Starting" | "Deleting";
  statusReason: string;
  instances: CmgInstance[];
  revision: number;
  /** running, stopped or deleting, with the lifecycle routes. */
  runState?: string;
}

/** A page of a paged list (status messages): `nextCursor` asks for the next, older page. */
export interface Paged<T> {
  items: T[];
  nextCursor: number | null;
}

export interface Client {
  id: string;
  name: string;
  thumbprint: string | null;
  subject: string | null;
  approved: boolean;
  alwaysInternet: boolean;
  lastContactAt: string | null;
  connectionType: "intranet" | "internet" | null;
  registeredAt: string;
  blocked: boolean;
}

export interface SiteSetting {
  key: string;
  value: string;
  default: string;
  isDefault: boolean;
  description: string;
  rule: string;
  updatedAt: string | null;
}

export interface TrafficTotals {
  requests: number;
  failed: number;
  bytesToClients: number;
  bytesFromClients: number;
}
/** GET /api/v1/cmgs/:name/traffic (CmgTrafficSummary with the traffic alert). */
export interface CmgTraffic {
  cmg: string;
  days: number;
  from: string;
  to: string;
  total: TrafficTotals;
  outbound14Days: number;
  perDay: ({ day: string } & TrafficTotals)[];
  byRoleKind: ({ roleKind: string } & TrafficTotals)[];
  perDayByRoleKind: ({ day: string; roleKind: string } & TrafficTotals)[];
  alert: { thresholdGb: number; warningPct: number; criticalPct: number } | null;
}

/** One check of POST /api/v1/cmgs/:name/analyze. */
export interface AnalyzeCheck {
  check: string;
  status: "pass" | "fail" | "skip" | string;
  detail: string;
  /** What to do, in the console's words. */
  fix?: string;
  /** The same for the command line (the console does not show it). */
  cliFix?: string;
  reason?: string;
  cause?: string;
  instance?: number;
}
export interface CmgAnalysis {
  cmg: string;
  serviceFqdn: string;
  checks: AnalyzeCheck[];
  passed: number;
  failed: number;
  skipped: number;
  ok: boolean;
}

export interface Endpoint {
  id: string;
  address: string;
  resolvedAddress: string;
  roles?: string[];
  features?: string[];
  ports?: { scheme?: string; port?: number }[];
  required?: boolean;
  description?: string;
}
export interface EndpointSelection {
  endpoints: Endpoint[];
  omitted: { id: string; address: string; reason: string }[];
}
export interface CheckStageOutcome {
  stage: string;
  result: string;
  ms: number;
  detail: string;
}
export interface EndpointCheckResult {
  url: string;
  address: string;
  required: boolean;
  result: string;
  stage: string | null;
  code: number | null;
  hop: string | null;
  httpStatus: number | null;
  message: string;
  stages: CheckStageOutcome[];
}
/** POST /api/v1/endpoints/checks answers with it at once (running); GET .../checks/:id when done. */
export interface CheckRecord {
  id: number;
  state: "running" | "done" | "failed";
  requestedBy: string;
  server: string | null;
  result?: { report: { ok: boolean; route: string; summary: Record<string, number>; results: EndpointCheckResult[] } } | null;
  error: { code: string | number; message: string } | null;
  startedAt: string;
  finishedAt: string | null;
}

export type Permission = "read" | "infrastructure" | "security";
export type AdminRole = "full-administrator" | "infrastructure-administrator" | "read-only-analyst";
export const ROLE_LABELS: Record<AdminRole, string> = { "full-administrator": "Full Administrator", "infrastructure-administrator": "Infrastructure Administrator", "read-only-analyst": "Read-only Analyst" };
/** GET /api/v1/whoami: who is signed in, with which role. */
export interface Me {
  name: string;
  role: AdminRole;
  roleLabel: string;
  readOnly: boolean;
  permissions: Permission[];
  source: "token" | "directory" | "cli";
}
export interface AdminUser {
  kind: "user" | "group";
  value: string;
  role: AdminRole;
  createdAt: string;
  updatedAt: string;
}
export interface AdminToken {
  name: string;
  role: AdminRole;
  readOnly: boolean;
  createdAt: string;
  revokedAt: string | null;
}
export interface AuditEntry {
  id: number;
  time: string;
  actor: string;
  via: string;
  action: string;
  object: string;
  before: unknown;
  after: unknown;
}
