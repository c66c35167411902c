/**
 * The admin API as the console calls it: same-origin fetch with the session cookie, the CSRF
 * header on every change, and the API's one error shape turned into `ApiError` (with the field a
 * validation error names, so a form shows the message next to that field).
 */
import type { components, paths } from "./api-types.gen.ts";

/** One field's problem of a refused request: the API's field path, the rule, the field in words with the rule. */
export interface FieldProblem {
  field: string;
  rule?: string;
  message: string;
}

export interface ApiErrorBody {
  error?: string;
  kind?: string;
  code?: string | number;
  field?: string;
  rule?: string;
  message?: string;
  /** Validation: every field problem of the request (the top-level field first). */
  errors?: FieldProblem[];
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
  /** Every field problem the API named (an older site names one: the top-level field). */
  get problems(): FieldProblem[] {
    if (this.body.errors && this.body.errors.length > 0) return this.body.errors;
    return this.body.field ? [{ field: this.body.field, ...(this.body.rule ? { rule: this.body.rule } : {}), message: this.message }] : [];
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
    // The API's one error shape is { error: { code, kind, message, field?, rule?, errors? } }.
    const raw = (data ?? {}) as { error?: unknown };
    const err = new ApiError(res.status, (raw.error && typeof raw.error === "object" ? raw.error : raw) as ApiErrorBody);
    if (res.status === 401 && path !== "/api/v1/session") onSignedOut();
    throw err;
  }
  return data as T;
}

export const get = <T>(path: string): Promise<T> => api<T>("GET", path);

// ---- shapes generated from the API's OpenAPI document (api-types.gen.ts, `npm run build`) ----

/** A shape the OpenAPI document names (components/schemas). */
export type Shape<N extends keyof components["schemas"]> = components["schemas"][N];
/** The JSON a route answers with on success (200, 201 or 202), as the OpenAPI document describes it. */
type JsonOf<R> = R extends { content: { "application/json": infer T } } ? T : never;
export type Answer<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends { responses: infer R }
  ? R extends { 200: infer S }
    ? JsonOf<S>
    : R extends { 201: infer S }
      ? JsonOf<S>
      : R extends { 202: infer S }
        ? JsonOf<S>
        : never
  : never;

export type Cmg = Shape<"Cmg">;
/** Every status the service gives a CMG (the API's schema takes the service's list). */
export type CmgStatus = Cmg["status"];
export type CertInfo = Shape<"CertInfo">;
export type CmgInstance = Shape<"CmgInstance">;

// ---- shapes the API returns (the site's model) ----

export type Site = Shape<"Site">;
export type Server = Shape<"Server">;
export type Role = Shape<"Role">;
export type Account = Shape<"Account">;
export type ProxyConfig = Shape<"ProxyConfig">;
export type ComponentStatus = Shape<"ComponentStatus">;
export type StatusMessage = Shape<"StatusMessage">;
/** A page of a paged list (status messages): `nextCursor` asks for the next, older page. */
export interface Paged<T> {
  items: T[];
  nextCursor: number | null;
}

export type Client = Shape<"Client">;

export type SiteSetting = Shape<"Setting">;

export interface TrafficTotals {
  requests: number;
  failed: number;
  bytesToClients: number;
  bytesFromClients: number;
}
/** GET /api/v1/cmgs/:name/traffic (CmgTrafficSummary with the traffic alert). */
export type CmgTraffic = Shape<"CmgTraffic">;

export type AnalyzeCheck = Shape<"AnalyzeCheck">;
export type CmgAnalysis = Shape<"CmgAnalysis">;

export type Endpoint = Shape<"Endpoint">;
/** GET /api/v1/endpoints: the selection, and what the filters left out with why. */
export type EndpointSelection = Shape<"EndpointSelection">;
export type CheckStageOutcome = EndpointCheckResult["stages"][number];
export type EndpointCheckResult = Shape<"CheckResult">;
/** POST /api/v1/endpoints/checks answers with it at once (running); GET .../checks/:id when done. */
export type CheckRecord = Shape<"CheckRecord">;

export type Permission = Me["permissions"][number];
export type AdminRole = Me["role"];
export const ROLE_LABELS: Record<AdminRole, string> = { "full-administrator": "Full Administrator", "infrastructure-administrator": "Infrastructure Administrator", "read-only-analyst": "Read-only Analyst" };
/** GET /api/v1/whoami: who is signed in, with which role. */
export type Me = Answer<"/api/v1/whoami", "get">;
export type AdminUser = Shape<"AdminUser">;
export type AdminToken = Shape<"AdminToken">;
export type AuditEntry = Shape<"AuditEntry">;
