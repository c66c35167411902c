import { sql, type Kysely, type Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * Trust in devices that register with tokens: a bulk registration token registers many devices
 * (each device, known by its key, once), optionally up to `max_uses`; a directory ID token
 * registers once (its one-use key kept until it expires); a key an administrator approved to
 * replace a client's bound key.
 */
export function m0013DeviceTrust(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      // Null: any number of devices until expiry or revocation.
      await db.schema.alterTable("bulk_tokens").addColumn("max_uses", "integer").execute();
      // Tokens handed out before were meant for one device each: they stay so.
      await sql`update bulk_tokens set max_uses = 1`.execute(db);
      await db.schema
        .createTable("bulk_token_uses")
        .addColumn("bulk_id", "text", (c) => c.notNull())
        // The RFC 7638 thumbprint of the device's key: the same key is the same device.
        .addColumn("jkt", "text", (c) => c.notNull())
        .addColumn("client_id", "text", (c) => c.notNull())
        .addColumn("used_at", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("bulk_token_uses_pk", ["bulk_id", "jkt"])
        .execute();
      await sql`insert into bulk_token_uses (bulk_id, jkt, client_id, used_at)
        select b.id, coalesce(c.token_jkt, 'unknown:' || b.used_by), b.used_by, b.used_at
        from bulk_tokens b left join clients c on c.id = b.used_by
        where b.used_by is not null and b.used_at is not null`.execute(db);
      await db.schema
        .createTable("id_token_uses")
        // `<issuer> jti:<jti>` or `<issuer> sha256:<hash of the token>`.
        .addColumn("use_key", "text", (c) => c.primaryKey())
        .addColumn("client_id", "text")
        .addColumn("used_at", "text", (c) => c.notNull())
        // Forgotten after this (the token is refused by its own expiry from then on).
        .addColumn("expires_at", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("id_token_uses_expires_at").on("id_token_uses").column("expires_at").execute();
      // A key an administrator approved to replace the bound one (`site clients approve-key`), until used.
      await db.schema.alterTable("clients").addColumn("approved_jkt", "text").execute();
    },
  };
}
