import { sql, type Kysely, type Migration } from "kysely";
import type { Dialect } from "../dialect.ts";
import { withId } from "./helpers.ts";

/**
 * Who did what: admin tokens get a name, a read-only flag and a revocation time (the token made by
 * `site init` becomes "admin"); every administrative change is kept in `audit_log`; connectivity
 * checks started over the admin API keep their results in `endpoint_checks`.
 */
export function m0011AdminAudit(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("admin_tokens").addColumn("name", "text").execute();
      await db.schema.alterTable("admin_tokens").addColumn("read_only", "integer", (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable("admin_tokens").addColumn("revoked_at", "text").execute();
      // The oldest token is the one `site init` wrote to admin.token; any other gets its id in its name.
      await sql`update admin_tokens set name = case when id = (select min(id) from admin_tokens) then 'admin' else 'admin-' || cast(id as text) end`.execute(db);
      await db.schema.createIndex("admin_tokens_name").on("admin_tokens").column("name").unique().execute();

      await withId(db.schema.createTable("audit_log"), dialect)
        .addColumn("time", "text", (c) => c.notNull())
        // The admin token's name, or the local user for the CLI.
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("via", "text", (c) => c.notNull())
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("object", "text", (c) => c.notNull())
        // JSON, secrets redacted; null when the object did not exist before (or after).
        .addColumn("before_json", "text")
        .addColumn("after_json", "text")
        .execute();
      await db.schema.createIndex("audit_log_time").on("audit_log").column("time").execute();

      await withId(db.schema.createTable("endpoint_checks"), dialect)
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("requested_by", "text", (c) => c.notNull())
        .addColumn("server", "text")
        .addColumn("request", "text", (c) => c.notNull())
        .addColumn("result", "text")
        .addColumn("error", "text")
        .addColumn("started_at", "text", (c) => c.notNull())
        .addColumn("finished_at", "text")
        .execute();
    },
  };
}
