/**
 * What a route of the admin API is made of: its table entry, its input, downloads, and the query
 * and body helpers. Apart from routes.ts so that each routes-<area>.ts can import it without a cycle.
 */
import { z } from "zod";
import type { SiteServices } from "../site/site.ts";
import type { Actor } from "../site/services/audit.ts";
import type { SiteOperations } from "./operations.ts";

export interface RouteInput {
  params: Record<string, string>;
  /** The query as sent (already checked against the route's query schema). */
  query: Record<string, string | undefined>;
  /** The query as the route's schema parsed it (numbers, booleans, defaults): read it with `parsedQuery`. */
  parsed: Record<string, unknown>;
  body: unknown;
  /** Who is asking (an admin token's name), for the audit log. */
  actor: Actor;
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
  handle(s: SiteServices, i: RouteInput): Promise<unknown>;
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

/** Query helpers: numbers and times arrive as text. */
export const q = {
  limit: (max: number, dflt: number) => z.coerce.number({ error: `must be a whole number from 1 to ${max}` }).int(`must be a whole number from 1 to ${max}`).min(1, `must be from 1 to ${max}`).max(max, `must be from 1 to ${max}`).default(dflt),
  cursor: z.coerce.number({ error: "must be the nextCursor of the previous page" }).int("must be the nextCursor of the previous page").min(1, "must be the nextCursor of the previous page").optional(),
  time: z.iso.datetime({ offset: true, error: "must be an ISO-8601 time, e.g. 2026-12-01T08:00:00Z" }).optional(),
  bool: z.enum(["true", "false"], { error: "must be true or false" }).transform((v) => v === "true").optional(),
};

