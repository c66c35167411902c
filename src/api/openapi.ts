/**
 * The OpenAPI 3.1 description of the admin API, generated from the route table: parameters,
 * request bodies and responses come from the routes' zod schemas (JSON Schema 2020-12, which
 * OpenAPI 3.1 uses as is).
 */
import { z } from "zod";
import { queryShape, type ApiRoute } from "./route-kit.ts";
import * as S from "./schemas.ts";

type Json = Record<string, unknown>;

/** A zod schema as JSON Schema: what a client sends (`input`) or receives (`output`). */
function jsonSchema(schema: z.ZodType, io: "input" | "output"): Json {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" }) as Json;
  return rest;
}

/**
 * An answer's schema, the shapes of schemas.ts's `named` referred to by name: their definitions go
 * to `components` (the same definition whichever answer brings it).
 */
function responseSchema(schema: z.ZodType, components: Record<string, unknown>): Json {
  const { $schema: _drop, $defs, ...rest } = z.toJSONSchema(schema, { io: "output", unrepresentable: "any", target: "draft-2020-12", metadata: S.named }) as Json;
  for (const [id, def] of Object.entries(($defs ?? {}) as Json)) components[id] = toComponentRefs(def);
  return toComponentRefs(rest) as Json;
}

function toComponentRefs(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(toComponentRefs);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, k === "$ref" && typeof x === "string" ? x.replace("#/$defs/", "#/components/schemas/") : toComponentRefs(x)]));
}

const errorRef = { $ref: "#/components/schemas/Error" };
const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: errorRef } } });

/** GET /api/v1/site -> getApiV1Site; path parameters become By<Name>. */
function operationId(r: Pick<ApiRoute, "method" | "path">): string {
  const words = r.path
    .split("/")
    .filter(Boolean)
    .map((p) => (p.startsWith(":") ? `by-${p.slice(1)}` : p))
    .flatMap((p) => p.split(/[^A-Za-z0-9]+/))
    .filter(Boolean);
  return r.method.toLowerCase() + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join("");
}

function operation(r: ApiRoute, components: Record<string, unknown>): Json {
  const params = [...r.path.matchAll(/:([a-zA-Z]+)/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } }));
  const shape = queryShape(r).shape as Record<string, z.ZodType>;
  const query = Object.entries(shape).map(([name, schema]) => {
    const js = jsonSchema(schema, "input");
    const { description, ...rest } = js;
    return { name, in: "query", required: !schema.safeParse(undefined).success, ...(description ? { description } : {}), schema: rest };
  });
  const status = String(r.status ?? 200);
  const success =
    status === "204"
      ? { description: "Done; no content" }
      : r.produces
        ? { description: "A file to download", content: Object.fromEntries(r.produces.map((t) => [t, { schema: { type: "string" } }])) }
        : { description: "Success", content: { "application/json": { schema: r.response ? responseSchema(r.response, components) : {} } } };
  return {
    operationId: operationId(r),
    summary: r.summary,
    tags: [r.tag],
    ...(r.auth === false ? { security: [] } : {}),
    parameters: [...params, ...query],
    ...(r.body ? { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(r.body, "input") } } } } : {}),
    responses: {
      [status]: success,
      "400": errorResponse("Validation error: `field` names the field (an unknown one too), `rule` the rule it breaks; `errors` lists every field problem of the request"),
      "401": errorResponse("Missing, unknown or revoked admin token"),
      "403": errorResponse("A read-only admin token asked for a change"),
      "404": errorResponse("Not found (the object, or the route)"),
      "409": errorResponse("Conflict with the current state"),
      "500": errorResponse("Internal error (see smsprov.log)"),
    },
  };
}

/** Routes every admin API has besides the table's: this document and the health check. */
const BUILT_IN: { method: "GET"; path: string; summary: string; tag: string }[] = [
  { method: "GET", path: "/api/v1/openapi.json", summary: "This OpenAPI document (no token needed)", tag: "meta" },
  { method: "GET", path: "/healthz", summary: "Liveness check (no token needed)", tag: "meta" },
];

export function openApiDocument(routes: readonly ApiRoute[], version: string): Json {
  const paths: Record<string, Record<string, unknown>> = {};
  const shapes: Record<string, unknown> = {};
  for (const r of routes) (paths[r.path.replace(/:([a-zA-Z]+)/g, "{$1}")] ??= {})[r.method.toLowerCase()] = operation(r, shapes);
  for (const b of BUILT_IN) {
    (paths[b.path] ??= {}).get = { operationId: operationId(b), summary: b.summary, tags: [b.tag], security: [], responses: { "200": { description: "Success", content: { "application/json": { schema: {} } } } } };
  }
  const tags = [...new Set([...routes.map((r) => r.tag), "meta"])].map((name) => ({ name }));
  return {
    openapi: "3.1.0",
    info: { title: "OpenCMG admin API", version, description: "Every change is made as the admin token's name and kept in the audit log (GET /api/v1/audit). Every error is { error: { code, kind, message, field?, rule? } }." },
    security: [{ bearer: [] }],
    tags,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "An admin token: <data>/admin.token (named admin), or one made by `opencmg site token create NAME [--read-only]`" } },
      schemas: { Error: jsonSchema(S.error, "output"), ...Object.fromEntries(Object.entries(shapes).sort(([a], [b]) => a.localeCompare(b))) },
    },
    paths,
  };
}
