/**
 * What a route of the admin API is made of: its table entry, its input, downloads, and the query
 * and body helpers. Apart from routes.ts so that each routes-<area>.ts can import it without a cycle.
 */
import { z } from "zod";
import { fieldProblem, issueProblems, type FieldChecks } from "../errors.ts";
import type { SiteServices } from "../site/site.ts";
import type { Actor } from "../site/services/audit.ts";
import type { Permission } from "../site/services/admin-roles.ts";
import type { SiteOperations } from "./operations.ts";

export interface RouteInput {
  params: Record<string, string>;
  /** The query as sent (already checked against the route's query schema). */
  query: Record<string, string | undefined>;
  /** The query as the route's schema parsed it (numbers, booleans, defaults): read it with `parsedQuery`. */
  parsed: Record<string, unknown>;
  body: unknown;
  /** Who is asking (an admin token's or a directory user's name, and role), for the audit log. */
  actor: Actor;
  /** How the identity was established (a token, the directory); absent in tests that call a handler directly. */
  identitySource?: "token" | "directory";
  /** Runs beyond one service call, for this actor. */
  ops: SiteOperations;
}

export interface ApiRoute {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Fastify path syntax (`:name`). */
  path: string;
  summary: string;
  tag: string;
  /** A strict object (z.strictObject): unknown fields are refused. */
  body?: z.ZodType;
  /** Query parameters: a strict zod object, or name -> description for optional strings. */
  query?: z.ZodObject | Record<string, string>;
  /** What a success answers with (the OpenAPI response schema). */
  response?: z.ZodType;
  /** The status of a success (200 unless said). */
  status?: number;
  /** Content types of a download (the handler returns a Download). */
  produces?: readonly string[];
  /** false: no admin identity needed (a console's sign-in). */
  auth?: false;
  /**
   * The permission the caller's security role must grant (site/services/admin-roles.ts), or how to
   * tell from the request (a setting of security needs more than another). Every route declares
   * one (`needing` fills in a table's); the API refuses a route that declares none, and a test
   * enumerates them.
   */
  needs?: Permission | ((i: Pick<RouteInput, "params">) => Permission);
  handle(s: SiteServices, i: RouteInput): Promise<unknown>;
}

/**
 * A table of routes of one area: a route that declares nothing needs "read" when it is a GET, else
 * the area's permission (a change).
 */
export function needing(area: Exclude<Permission, "read">, routes: ApiRoute[]): ApiRoute[] {
  return routes.map((r) => (r.needs !== undefined || r.auth === false ? r : { ...r, needs: r.method === "GET" ? "read" : area }));
}

/** What the route needs for this request; undefined when it declares nothing (refused). */
export function routeNeeds(r: ApiRoute, params: Record<string, string>): Permission | undefined {
  return typeof r.needs === "function" ? r.needs({ params }) : r.needs;
}

/** A file to download rather than JSON: exports with their own content type. */
export class Download {
  constructor(
    readonly contentType: string,
    readonly filename: string,
    readonly body: string,
  ) {}
}

/** The route's query as a strict zod object (no query: none allowed). */
export function queryShape(r: Pick<ApiRoute, "query">): z.ZodObject {
  if (r.query instanceof z.ZodObject) return r.query;
  return z.strictObject(Object.fromEntries(Object.entries(r.query ?? {}).map(([k, d]) => [k, z.string().optional().describe(d)])));
}

/** The route's parsed query, typed by its schema. */
export function parsedQuery<T extends z.ZodObject>(_schema: T, i: RouteInput): z.output<T> {
  return i.parsed as z.output<T>;
}

/** Body shape errors are reported like every other validation failure (field + rule). */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  return schema.parse(body ?? {});
}

/**
 * A strict object body parsed field by field: each field's problems (and each unknown field) go to
 * `checks` and the fields that passed come back, so the route's later checks of them still run and
 * the answer names every problem of the request at once.
 */
export function parseFields<T extends z.ZodObject>(schema: T, body: unknown, checks: FieldChecks): Partial<z.output<T>> {
  const value = body ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    checks.add(fieldProblem("body", "must be a JSON object"));
    return {};
  }
  const given = value as Record<string, unknown>;
  const shape = schema.shape as Record<string, z.ZodType>;
  for (const k of Object.keys(given)) if (!(k in shape)) checks.add(fieldProblem(k, "is not a known field; check its spelling"));
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(shape)) {
    const r = s.safeParse(given[k]);
    if (!r.success) checks.add(...r.error.issues.flatMap((i) => issueProblems(i, [k])));
    else if (r.data !== undefined) out[k] = r.data;
  }
  return out as Partial<z.output<T>>;
}

/** The body of a change that takes no fields: none, or `{}` (unknown fields refused). */
export const emptyBody = z.strictObject({});

/** Query helpers: numbers and times arrive as text. */
export const q = {
  limit: (max: number, dflt: number) => z.coerce.number({ error: `must be a whole number from 1 to ${max}` }).int(`must be a whole number from 1 to ${max}`).min(1, `must be from 1 to ${max}`).max(max, `must be from 1 to ${max}`).default(dflt),
  cursor: z.coerce.number({ error: "must be the nextCursor of the previous page" }).int("must be the nextCursor of the previous page").min(1, "must be the nextCursor of the previous page").optional(),
  time: z.iso.datetime({ offset: true, error: "must be an ISO-8601 time, e.g. 2026-12-01T08:00:00Z" }).optional(),
  bool: z.enum(["true", "false"], { error: "must be true or false" }).transform((v) => v === "true").optional(),
};

