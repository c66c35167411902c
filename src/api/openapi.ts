import { z } from "zod";
import type { ApiRoute } from "./routes.ts";

/** The OpenAPI 3.1 description of the admin API, generated from the route table. */
export function openApiDocument(routes: readonly ApiRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:([a-zA-Z]+)/g, "{$1}");
    const params = [...r.path.matchAll(/:([a-zA-Z]+)/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } }));
    const query = Object.entries(r.query ?? {}).map(([name, description]) => ({ name, in: "query", required: false, description, schema: { type: "string" } }));
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      tags: [r.tag],
      parameters: [...params, ...query],
      ...(r.body ? { requestBody: { required: true, content: { "application/json": { schema: z.toJSONSchema(r.body) } } } } : {}),
      responses: {
        [String(r.status ?? 200)]: { description: "Success" },
        "400": { description: "Validation error: `field` names the setting, `rule` the rule it breaks", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
        "401": { description: "Missing or invalid admin token" },
        "404": { description: "Not found" },
        "409": { description: "Conflict with the current state" },
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "OpenCMG admin API", version },
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "The admin token created by `opencmg site init`" } },
      schemas: {
        Error: { type: "object", properties: { error: { type: "string" }, kind: { type: "string" }, code: {}, message: { type: "string" }, field: { type: "string" }, rule: { type: "string" } } },
      },
    },
    paths,
  };
}
