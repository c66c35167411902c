import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * What the gateway instances trust, decided by the site alone: the keys that sign CMG settings
 * (private keys sealed with the site key, rotated with an overlap), the tunnel certificates issued
 * to connection points (so the signed settings can admit them by serial and key, and an
 * administrator can revoke one), and the settings revision of each CMG (a counter the site raises
 * when the signed document changes; kept when a CMG is deleted, so a CMG of the same name never
 * reuses a revision).
 */
export function m0012SettingsTrust(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("settings_signing_keys")
        .addColumn("kid", "text", (c) => c.primaryKey())
        .addColumn("alg", "text", (c) => c.notNull())
        .addColumn("public_jwk", "text", (c) => c.notNull())
        // PKCS#8 PEM sealed with the site key (secrets.ts), bound to the kid.
        .addColumn("private_key", "text", (c) => c.notNull())
        // current: signs; previous: signs too (rotation overlap); retired: neither; pending: being made.
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("retired_at", "text")
        .execute();
      await db.schema
        .createTable("connection_point_certs")
        // Uppercase hex.
        .addColumn("serial", "text", (c) => c.primaryKey())
        .addColumn("fqdn", "text", (c) => c.notNull())
        // SHA-256 of the SubjectPublicKeyInfo, base64url.
        .addColumn("spki", "text", (c) => c.notNull())
        .addColumn("issued_at", "text", (c) => c.notNull())
        .addColumn("not_after", "text", (c) => c.notNull())
        .addColumn("revoked_at", "text")
        .addColumn("revoked_reason", "text")
        .execute();
      await db.schema.createIndex("connection_point_certs_fqdn").on("connection_point_certs").column("fqdn").execute();
      await db.schema
        .createTable("cmg_settings_revisions")
        .addColumn("cmg_name", "text", (c) => c.primaryKey())
        .addColumn("revision", "integer", (c) => c.notNull())
        // SHA-256 of the document's content without its revision.
        .addColumn("content_hash", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
    },
  };
}
