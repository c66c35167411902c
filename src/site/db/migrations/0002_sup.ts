import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";
import { withId } from "./helpers.ts";

/** Software update point: synchronised update metadata, automatic deployment rules and their downloads. */
export function m0002Sup(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("updates")
        .addColumn("update_id", "text", (c) => c.primaryKey())
        .addColumn("title", "text", (c) => c.notNull())
        .addColumn("classification", "text", (c) => c.notNull())
        .addColumn("product", "text", (c) => c.notNull())
        .addColumn("release_date", "text", (c) => c.notNull())
        .addColumn("files", "text", (c) => c.notNull())
        .addColumn("synced_from", "text", (c) => c.notNull())
        .addColumn("synced_at", "text", (c) => c.notNull())
        .execute();
      await withId(db.schema.createTable("adrs"), dialect)
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("server", "text", (c) => c.notNull())
        .addColumn("products", "text", (c) => c.notNull())
        .addColumn("classifications", "text", (c) => c.notNull())
        .addColumn("title_contains", "text")
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await withId(db.schema.createTable("adr_downloads"), dialect)
        .addColumn("adr_id", "integer", (c) => c.notNull().references("adrs.id"))
        .addColumn("update_id", "text", (c) => c.notNull())
        .addColumn("file_name", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("code", "integer")
        .addColumn("bytes", "integer", (c) => c.notNull())
        .addColumn("sha256", "text")
        .addColumn("message", "text", (c) => c.notNull())
        .addColumn("time", "text", (c) => c.notNull())
        .execute();
    },
  };
}
