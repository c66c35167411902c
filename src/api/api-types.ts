/**
 * The console's API types (console/src/api-types.gen.ts) as openapi-typescript makes them from the
 * OpenAPI document the server serves: one source for the API's shapes. `npm run build` writes the
 * file (scripts/api-types.ts); a unit test fails when the committed one is stale.
 */
import { fileURLToPath } from "node:url";
import { servedOpenApiDocument } from "./served-openapi.ts";

export const API_TYPES_FILE = fileURLToPath(new URL("../../console/src/api-types.gen.ts", import.meta.url));

export async function apiTypesSource(): Promise<string> {
  // A development dependency: only the build and the tests load it, never `opencmg` at run time.
  const { default: openapiTS, astToString, COMMENT_HEADER } = await import("openapi-typescript");
  // The version is left out: it is no part of any type, and a release must not make the file stale.
  const doc = servedOpenApiDocument("0.0.0");
  const ast = await openapiTS(doc as unknown as Parameters<typeof openapiTS>[0]);
  return `${COMMENT_HEADER.replace("openapi-typescript.", "openapi-typescript from the admin API's OpenAPI document (scripts/api-types.ts).")}${astToString(ast)}`;
}
