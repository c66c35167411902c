import { sql, type Kysely, type Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * Devices' status messages apart from the site's: `source` becomes "site" or "client", the
 * uploading client's ID moves to `client_id`, and the time the client claimed is kept in
 * `claimed_time` (`time` is when the site received it). Clients get a unique `name_key` (two
 * clients cannot take one name) and a count of the status messages refused for their limits.
 */
export function m0014ClientMessages(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("status_messages").addColumn("client_id", "text").execute();
      await db.schema.alterTable("status_messages").addColumn("claimed_time", "text").execute();
      await sql`update status_messages set client_id = source, source = 'client', claimed_time = time where source <> 'site'`.execute(db);
      // A time a client claimed beyond now (dated 2099) was never when it arrived: the latest it can have arrived is now.
      const now = new Date().toISOString();
      await sql`update status_messages set time = ${now} where source = 'client' and time > ${now}`.execute(db);
      // The per-client daily count and the per-client view.
      await db.schema.createIndex("status_messages_client_time").on("status_messages").columns(["client_id", "time"]).execute();

      await db.schema.alterTable("clients").addColumn("name_key", "text").execute();
      // Names already shared by several clients stay with the oldest registration; the others keep
      // their name but no key, so the next registration under that name is refused, not theirs.
      await sql`update clients set name_key = lower(name) where id in (select min(id) from clients group by lower(name))`.execute(db);
      await db.schema.createIndex("clients_name_key").on("clients").column("name_key").unique().execute();
      await db.schema.alterTable("clients").addColumn("status_refused", "integer", (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable("clients").addColumn("status_refused_at", "text").execute();
    },
  };
}
