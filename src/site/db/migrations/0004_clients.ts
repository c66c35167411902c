import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/** Managed clients registered at a management point, and the site's client settings. */
export function m0004Clients(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("clients")
        // The platform's SMS unique identifier, "GUID:<uuid>".
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull())
        // SHA-1 of the client authentication certificate; null for a client registered without one.
        .addColumn("thumbprint", "text", (c) => c.unique())
        .addColumn("subject", "text")
        // SHA-256 of the token a client without certificate authenticates with; never the token.
        .addColumn("token_sha256", "text", (c) => c.unique())
        .addColumn("approved", "integer", (c) => c.notNull())
        .addColumn("always_internet", "integer", (c) => c.notNull())
        .addColumn("last_contact_at", "text")
        .addColumn("connection_type", "text")
        .addColumn("registered_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("client_settings")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("location_interval_minutes", "integer", (c) => c.notNull())
        .addColumn("policy_interval_minutes", "integer", (c) => c.notNull())
        .addColumn("use_cmg", "integer", (c) => c.notNull())
        .addColumn("always_on_internet", "integer", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
    },
  };
}
