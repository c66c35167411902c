import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * Automatic deployment rules get their lifecycle: enabled (a disabled rule neither runs now nor
 * after a synchronisation), run after each software update point synchronisation, and when last
 * changed. Existing rules stay enabled and run only when asked, as before.
 */
export function m0020AdrLifecycle(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("adrs").addColumn("enabled", "integer", (c) => c.notNull().defaultTo(1)).execute();
      await db.schema.alterTable("adrs").addColumn("run_after_sync", "integer", (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable("adrs").addColumn("updated_at", "text").execute();
    },
  };
}
