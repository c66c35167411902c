import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../dialect.ts";

/**
 * The site's Client Computer Communication settings: clients use their PKI client-authentication
 * certificate when they have one (on: what clients did before the setting existed), and clients
 * check the CRL of the site systems' server certificates (on, the documents' default).
 */
export function m0021SiteClientCommunication(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("sites").addColumn("use_pki_client_cert", "integer", (c) => c.notNull().defaultTo(1)).execute();
      await db.schema.alterTable("sites").addColumn("clients_check_crl", "integer", (c) => c.notNull().defaultTo(1)).execute();
    },
  };
}
