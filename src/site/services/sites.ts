import { z } from "zod";
import { ConflictError, NotFoundError, ValidationError } from "../../errors.ts";
import { SITE_TYPES, type Site, type SiteType } from "../model.ts";
import { check, checkObject, siteCode } from "../validation.ts";
import { iso, type ServiceContext } from "./context.ts";
import { toSite } from "./snapshot.ts";
import { LOG_FILES } from "../../logs/files.ts";

const siteName = z.string().trim().min(1, "must not be empty").max(128, "must be at most 128 characters");
const siteType = z.enum(SITE_TYPES, { error: `must be one of ${SITE_TYPES.join(", ")}` });

/**
 * The primary site's Client Computer Communication settings (the documents' names), sent to
 * clients with their policy and enforced by them.
 */
export interface ClientCommunication {
  /** "Use PKI client certificate (client authentication capability) when available". */
  usePkiClientCertificate: boolean;
  /** "Clients check the certificate revocation list (CRL) for site systems". */
  clientsCheckCrl: boolean;
}

/** Both on: clients present their PKI certificate (as before the setting existed) and check site systems' CRLs. */
export const DEFAULT_CLIENT_COMMUNICATION: ClientCommunication = { usePkiClientCertificate: true, clientsCheckCrl: true };

/** A change of the Client Computer Communication settings: the given ones change, the others keep their values. */
export const clientCommunicationPatch = z.strictObject({
  usePkiClientCertificate: z.boolean({ error: "must be true or false" }).optional(),
  clientsCheckCrl: z.boolean({ error: "must be true or false" }).optional(),
});

export interface SiteInput {
  code: string;
  name: string;
  type?: string;
  parentCode?: string | undefined;
}

/** Sites of the hierarchy. The top-level site (no parent) is where CMGs are created. */
export class SitesService {
  constructor(private readonly ctx: ServiceContext) {}

  /** Creates the top-level site, or returns it when it already exists with the same code. */
  async init(input: SiteInput): Promise<Site> {
    const code = check("siteCode", siteCode, input.code);
    const name = check("siteName", siteName, input.name);
    const type = check("type", siteType, input.type ?? "primary") as SiteType;
    if (type === "secondary") throw new ValidationError("type", "the top-level site must be a primary or central administration site");
    const existing = await this.top();
    if (existing) {
      if (existing.code !== code) throw new ConflictError("siteCode", `this data folder already holds site ${existing.code}`);
      return existing;
    }
    await this.ctx.db.insertInto("sites").values({ code, name, type, parent_code: null, created_at: iso(this.ctx.now()) }).execute();
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Created site ${code} (${name}), type ${type}.`);
    return { code, name, type, parentCode: null };
  }

  /** Adds a child site: a primary under a central administration site, or a secondary under a primary. */
  async add(input: SiteInput): Promise<Site> {
    const code = check("siteCode", siteCode, input.code);
    const name = check("siteName", siteName, input.name);
    const type = check("type", siteType, input.type ?? "secondary") as SiteType;
    if (!input.parentCode) throw new ValidationError("parent", "a child site needs its parent site's code");
    const parentCode = check("parent", siteCode, input.parentCode);
    const parent = await this.get(parentCode);
    if (type === "cas") throw new ValidationError("type", "a central administration site can only be the top-level site");
    if (type === "primary" && parent.type !== "cas") throw new ValidationError("parent", "a primary site can only be a child of a central administration site");
    if (type === "secondary" && parent.type !== "primary") throw new ValidationError("parent", "a secondary site can only be a child of a primary site");
    if (await this.find(code)) throw new ConflictError("siteCode", `site ${code} already exists`);
    await this.ctx.db.insertInto("sites").values({ code, name, type, parent_code: parentCode, created_at: iso(this.ctx.now()) }).execute();
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Created site ${code} (${name}), type ${type}, parent ${parentCode}.`);
    return { code, name, type, parentCode };
  }

  async top(): Promise<Site | undefined> {
    const r = await this.ctx.db.selectFrom("sites").selectAll().where("parent_code", "is", null).executeTakeFirst();
    return r ? toSite(r) : undefined;
  }

  async requireTop(): Promise<Site> {
    const s = await this.top();
    if (!s) throw new NotFoundError("site", "a site in this data folder (run `opencmg site init` first)");
    return s;
  }

  async find(code: string): Promise<Site | undefined> {
    const r = await this.ctx.db.selectFrom("sites").selectAll().where("code", "=", code.toUpperCase()).executeTakeFirst();
    return r ? toSite(r) : undefined;
  }

  async get(code: string): Promise<Site> {
    const s = await this.find(code);
    if (!s) throw new NotFoundError("site", `site ${code}`);
    return s;
  }

  async list(): Promise<Site[]> {
    return (await this.ctx.db.selectFrom("sites").selectAll().orderBy("code").execute()).map(toSite);
  }

  /** The site's Client Computer Communication settings. */
  async clientCommunication(code: string): Promise<ClientCommunication> {
    const s = await this.get(code);
    const r = await this.ctx.db.selectFrom("sites").select(["use_pki_client_cert", "clients_check_crl"]).where("code", "=", s.code).executeTakeFirstOrThrow();
    return { usePkiClientCertificate: r.use_pki_client_cert === 1, clientsCheckCrl: r.clients_check_crl === 1 };
  }

  /**
   * Changes the given Client Computer Communication settings of a primary site (the site clients
   * are assigned to: a secondary site or a central administration site has no clients of its own).
   */
  async setClientCommunication(code: string, patch: unknown): Promise<ClientCommunication> {
    const s = await this.get(code);
    if (s.type !== "primary") throw new ValidationError("siteCode", `site ${s.code} is a ${s.type === "cas" ? "central administration" : "secondary"} site: client computer communication is set on a primary site`);
    const given = checkObject(clientCommunicationPatch, patch);
    const next = { ...(await this.clientCommunication(s.code)) };
    if (given.usePkiClientCertificate !== undefined) next.usePkiClientCertificate = given.usePkiClientCertificate;
    if (given.clientsCheckCrl !== undefined) next.clientsCheckCrl = given.clientsCheckCrl;
    await this.ctx.db
      .updateTable("sites")
      .set({ use_pki_client_cert: next.usePkiClientCertificate ? 1 : 0, clients_check_crl: next.clientsCheckCrl ? 1 : 0 })
      .where("code", "=", s.code)
      .execute();
    this.ctx.logs
      .component(LOG_FILES.smsprov)
      .info(`Changed client computer communication of site ${s.code}: use PKI client certificate when available ${next.usePkiClientCertificate ? "on" : "off"}, clients check the CRL for site systems ${next.clientsCheckCrl ? "on" : "off"}.`);
    return next;
  }

  async rename(code: string, name: string): Promise<Site> {
    const s = await this.get(code);
    const n = check("siteName", siteName, name);
    await this.ctx.db.updateTable("sites").set({ name: n }).where("code", "=", s.code).execute();
    return { ...s, name: n };
  }

  async remove(code: string): Promise<void> {
    const s = await this.get(code);
    const child = await this.ctx.db.selectFrom("sites").select("code").where("parent_code", "=", s.code).executeTakeFirst();
    if (child) throw new ConflictError("siteCode", `site ${s.code} has child site ${child.code}; remove it first`);
    const server = await this.ctx.db.selectFrom("servers").select("fqdn").where("site_code", "=", s.code).executeTakeFirst();
    if (server) throw new ConflictError("siteCode", `site ${s.code} still has site system server ${server.fqdn}; remove it first`);
    await this.ctx.db.deleteFrom("sites").where("code", "=", s.code).execute();
  }
}
