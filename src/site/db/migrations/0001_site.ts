import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";
import { withId } from "./helpers.ts";

export function m0001Site(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("sites")
        .addColumn("code", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("parent_code", "text", (c) => c.references("sites.code"))
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await withId(db.schema.createTable("servers"), dialect)
        .addColumn("fqdn", "text", (c) => c.notNull().unique())
        .addColumn("site_code", "text", (c) => c.notNull().references("sites.code"))
        .addColumn("is_site_server", "integer", (c) => c.notNull().defaultTo(0))
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await withId(db.schema.createTable("roles"), dialect)
        .addColumn("server_id", "integer", (c) => c.notNull().references("servers.id"))
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("settings", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addUniqueConstraint("roles_server_kind", ["server_id", "kind"])
        .execute();
      await withId(db.schema.createTable("accounts"), dialect)
        .addColumn("name", "text", (c) => c.notNull().unique())
        .addColumn("username", "text", (c) => c.notNull())
        .addColumn("secret", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("proxy_configs")
        .addColumn("server_id", "integer", (c) => c.primaryKey().references("servers.id"))
        .addColumn("enabled", "integer", (c) => c.notNull())
        .addColumn("host", "text", (c) => c.notNull())
        .addColumn("port", "integer", (c) => c.notNull())
        .addColumn("account_id", "integer", (c) => c.references("accounts.id"))
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await withId(db.schema.createTable("status_messages"), dialect)
        .addColumn("message_id", "integer", (c) => c.notNull())
        .addColumn("severity", "text", (c) => c.notNull())
        .addColumn("component", "text", (c) => c.notNull())
        .addColumn("server", "text", (c) => c.notNull())
        .addColumn("time", "text", (c) => c.notNull())
        .addColumn("text", "text", (c) => c.notNull())
        .addColumn("properties", "text", (c) => c.notNull())
        .addColumn("source", "text", (c) => c.notNull())
        .addColumn("dedupe_key", "text", (c) => c.unique())
        .execute();
      await db.schema.createIndex("status_messages_time").on("status_messages").columns(["time"]).execute();
      await db.schema
        .createTable("component_status")
        .addColumn("server", "text", (c) => c.notNull())
        .addColumn("component", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("reason", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("component_status_pk", ["server", "component"])
        .execute();
      await withId(db.schema.createTable("admin_tokens"), dialect)
        .addColumn("token_sha256", "text", (c) => c.notNull().unique())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
    },
  };
}
