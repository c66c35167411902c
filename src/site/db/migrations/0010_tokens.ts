import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * Site-issued tokens: the site's token signing keys (private keys sealed with the site key), the
 * bulk registration tokens it handed out (their ID and expiry only, never the token), and what a
 * client registered with a token is bound to (its key's thumbprint, a directory identity) and
 * whether an administrator blocked it.
 */
export function m0010Tokens(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("token_signing_keys")
        .addColumn("kid", "text", (c) => c.primaryKey())
        .addColumn("alg", "text", (c) => c.notNull())
        // Public JWK (JSON): pushed to the gateway instances.
        .addColumn("public_jwk", "text", (c) => c.notNull())
        // PKCS#8 PEM sealed with the site key (secrets.ts), bound to the kid.
        .addColumn("private_key", "text", (c) => c.notNull())
        // current: signs; previous: still accepted (rotation overlap); retired: neither.
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("retired_at", "text")
        .execute();
      await db.schema
        .createTable("bulk_tokens")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("expires_at", "text", (c) => c.notNull())
        .addColumn("used_at", "text")
        .addColumn("used_by", "text")
        .addColumn("revoked_at", "text")
        .execute();
      await db.schema.alterTable("clients").addColumn("token_jkt", "text").execute();
      await db.schema.alterTable("clients").addColumn("directory_id", "text").execute();
      // SQLite cannot add a UNIQUE column: a unique index does the same on both databases.
      await db.schema.createIndex("clients_directory_id").unique().on("clients").column("directory_id").execute();
      await db.schema.alterTable("clients").addColumn("blocked", "integer", (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable("clients").addColumn("blocked_at", "text").execute();
    },
  };
}
