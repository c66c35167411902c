/**
 * The console's API types are generated from the OpenAPI document the server serves: the committed
 * console/src/api-types.gen.ts must be what the generator makes now (else a schema changed without
 * `npm run build`, and the console compiles against shapes the API no longer has).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { it } from "node:test";
import { API_TYPES_FILE, apiTypesSource } from "./api-types.ts";

it("the committed console API types are those of the current OpenAPI document", async () => {
  const generated = await apiTypesSource();
  assert.ok(generated.includes('"Stopping" | "Stopped" | "Starting" | "Deleting"'), "the CMG statuses are the service's");
  assert.ok(readFileSync(API_TYPES_FILE, "utf8") === generated, `${API_TYPES_FILE} is stale: run npm run build and commit it`);
});
