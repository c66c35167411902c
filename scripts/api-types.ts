// Writes console/src/api-types.gen.ts from the admin API's OpenAPI document (built from the route
// table, no server started). Run by scripts/build.mjs through tsx; `--check` only says whether the
// committed file is current (exit 1 when stale).
import { readFileSync, writeFileSync } from "node:fs";
import { API_TYPES_FILE, apiTypesSource } from "../src/api/api-types.ts";

const source = await apiTypesSource();
let current = "";
try {
  current = readFileSync(API_TYPES_FILE, "utf8");
} catch {
  // not written yet
}
if (process.argv.includes("--check")) {
  if (current !== source) {
    console.error(`${API_TYPES_FILE} is stale: run npm run build (or node --import tsx scripts/api-types.ts) and commit it`);
    process.exit(1);
  }
} else if (current !== source) {
  writeFileSync(API_TYPES_FILE, source);
}
