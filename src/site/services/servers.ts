import { ConflictError, NotFoundError } from "../../errors.ts";
import type { SiteSystemServer } from "../model.ts";
import { check, fqdn as fqdnRule, siteCode } from "../validation.ts";
import { iso, type Db, type ServiceContext } from "./context.ts";
import { writeTransaction } from "../db/transaction.ts";
import { toServer } from "./snapshot.ts";
import type { SitesService } from "./sites.ts";
import { LOG_FILES } from "../../logs/files.ts";

export interface ServerInput {
  fqdn: string;
  /** Site code; the top-level site when left out. */
  site?: string | undefined;
  /** This server is its site's site server (one per site). */
  siteServer?: boolean | undefined;
}

/** Site system servers: unique FQDNs, each in one site. */
export class ServersService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly sites: SitesService,
  ) {}

  async add(input: ServerInput): Promise<SiteSystemServer> {
    const fqdn = check("fqdn", fqdnRule, input.fqdn);
    const site = input.site ? await this.sites.get(check("site", siteCode, input.site)) : await this.sites.requireTop();
    const isSiteServer = input.siteServer === true;
    return writeTransaction(this.ctx.db, async (tx) => {
      if (await findServer(tx, fqdn)) throw new ConflictError("fqdn", `site system server ${fqdn} already exists`);
      if (isSiteServer) {
        const other = await tx.selectFrom("servers").select("fqdn").where("site_code", "=", site.code).where("is_site_server", "=", 1).executeTakeFirst();
        if (other) throw new ConflictError("siteServer", `site ${site.code} already has a site server (${other.fqdn})`);
      }
      const row = await tx
        .insertInto("servers")
        .values({ fqdn, site_code: site.code, is_site_server: isSiteServer ? 1 : 0, created_at: iso(this.ctx.now()) })
        .returning(["id"])
        .executeTakeFirstOrThrow();
      this.ctx.logs.component(LOG_FILES.smsprov).info(`Added site system server ${fqdn} to site ${site.code}${isSiteServer ? " as its site server" : ""}.`);
      return { id: row.id, fqdn, siteCode: site.code, isSiteServer };
    });
  }

  async list(): Promise<SiteSystemServer[]> {
    return (await this.ctx.db.selectFrom("servers").selectAll().orderBy("fqdn").execute()).map(toServer);
  }

  async get(fqdn: string): Promise<SiteSystemServer> {
    return getServer(this.ctx.db, fqdn);
  }

  /** Removes a server that has no roles left (roles first, so nothing is orphaned silently). */
  async remove(fqdnInput: string): Promise<void> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    await writeTransaction(this.ctx.db, async (tx) => {
      const s = await getServer(tx, fqdn);
      const role = await tx.selectFrom("roles").select("kind").where("server_id", "=", s.id).executeTakeFirst();
      if (role) throw new ConflictError("fqdn", `${fqdn} still hosts the ${role.kind} role; remove its roles first (opencmg role remove ${fqdn} ${role.kind})`);
      await tx.deleteFrom("proxy_configs").where("server_id", "=", s.id).execute();
      await tx.deleteFrom("servers").where("id", "=", s.id).execute();
    });
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Removed site system server ${fqdn}.`);
  }
}

export async function findServer(db: Db, fqdn: string): Promise<SiteSystemServer | undefined> {
  const r = await db.selectFrom("servers").selectAll().where("fqdn", "=", fqdn.toLowerCase()).executeTakeFirst();
  return r ? toServer(r) : undefined;
}

export async function getServer(db: Db, fqdn: string): Promise<SiteSystemServer> {
  const s = await findServer(db, fqdn);
  if (!s) throw new NotFoundError("server", `site system server ${fqdn}`);
  return s;
}
