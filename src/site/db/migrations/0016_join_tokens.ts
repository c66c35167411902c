import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * One-time join tokens: a site system server joins the site with one (`opencmg server join`) and
 * gets its host certificate from the site CA. The site keeps the token's SHA-256 only, and the
 * serial of the certificate it issued with it: configuration is answered to that certificate
 * while the token is not revoked.
 */
export function m0016JoinTokens(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("join_tokens")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("server_fqdn", "text", (c) => c.notNull())
        // SHA-256 of the token's secret part, hex.
        .addColumn("token_hash", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("expires_at", "text", (c) => c.notNull())
        .addColumn("used_at", "text")
        .addColumn("revoked_at", "text")
        // The host certificate issued with it (uppercase hex) and its end.
        .addColumn("cert_serial", "text")
        .addColumn("cert_not_after", "text")
        .execute();
      await db.schema.createIndex("join_tokens_server").on("join_tokens").column("server_fqdn").execute();
      await db.schema.createIndex("join_tokens_cert").on("join_tokens").column("cert_serial").execute();
    },
  };
}
