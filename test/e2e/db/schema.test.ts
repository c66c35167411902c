/**
 * The schema types (src/site/db/schema.ts) and the migrations describe the same tables and
 * columns: a column added to a migration only, or to the types only, fails here. Runs on a
 * freshly migrated SQLite and PostgreSQL database.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { it } from "node:test";
import { openDatabase } from "../../../src/site/db/connect.ts";
import { SCHEMA_COLUMNS } from "../../../src/site/db/schema.ts";
import { forEachDatabase } from "../../helpers/databases.ts";

forEachDatabase("schema types match the migrations", (tdb) => {
  it("every table and column of the migrated database is in schema.ts, and nothing else", async () => {
    const { dataDir, databaseUrl } = await tdb.fresh();
    const site = await openDatabase({ databaseUrl, sqlitePath: join(dataDir, "site.db") });
    try {
      const tables = await site.db.introspection.getTables();
      const migrated = Object.fromEntries(tables.map((t) => [t.name, t.columns.map((c) => c.name).sort()]));
      const typed = Object.fromEntries(Object.entries(SCHEMA_COLUMNS).map(([t, cols]) => [t, [...cols].sort()]));
      assert.deepEqual(Object.keys(migrated).sort(), Object.keys(typed).sort(), "tables: migrations vs schema.ts");
      for (const t of Object.keys(typed)) assert.deepEqual(migrated[t], typed[t], `columns of ${t}: migrations vs schema.ts`);
    } finally {
      await site.close();
    }
  });
});
