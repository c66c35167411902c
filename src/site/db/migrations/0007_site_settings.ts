import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/** Site-wide settings that differ from their defaults (`opencmg settings set`); a missing key means the default. */
export function m0007SiteSettings(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("site_settings")
        .addColumn("key", "text", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
    },
  };
}
