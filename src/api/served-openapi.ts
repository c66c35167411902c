/**
 * The OpenAPI document the admin API serves at /api/v1/openapi.json: the route table and the
 * console's own routes. Apart from server.ts so that the console's types can be generated from the
 * same document without starting a server (scripts/api-types.ts).
 */
import { CONSOLE_ROUTE_DOCS } from "./console.ts";
import { openApiDocument } from "./openapi.ts";
import type { ApiRoute } from "./route-kit.ts";
import { ROUTES } from "./routes.ts";

export function servedOpenApiDocument(version: string, extraRoutes: readonly ApiRoute[] = []): Record<string, unknown> {
  return openApiDocument([...ROUTES, ...extraRoutes, ...CONSOLE_ROUTE_DOCS], version);
}
