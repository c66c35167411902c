import { sql, type Kysely, type Migration } from "kysely";
import type { Dialect } from "../dialect.ts";
import { withId } from "./helpers.ts";

/**
 * Security roles: a named admin token gets a role (a read-only token becomes a Read-only Analyst,
 * any other a Full Administrator; `read_only` stays, kept equal to "the role changes nothing" for
 * older readers), and `admin_users` assigns roles to directory users and groups (a claim value).
 */
export function m0017AdminRoles(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("admin_tokens").addColumn("role", "text", (c) => c.notNull().defaultTo("full-administrator")).execute();
      await sql`update admin_tokens set role = case when read_only = 1 then 'read-only-analyst' else 'full-administrator' end`.execute(db);
      await withId(db.schema.createTable("admin_users"), dialect)
        // user: the value of the name claim; group: one value of the groups claim.
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("value", "text", (c) => c.notNull())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("admin_users_kind_value").on("admin_users").columns(["kind", "value"]).unique().execute();
    },
  };
}
