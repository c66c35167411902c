/**
 * Managed clients (devices) as the site knows them: registered at a management point with their
 * client authentication certificate, or registered without one and approved by an administrator;
 * when and how (intranet or internet) they last reached a management point. Also the site's
 * client settings that management points hand out as policy.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { Selectable } from "kysely";
import { z } from "zod";
import { ConflictError, NotFoundError, OpenCmgError, ValidationError } from "../../errors.ts";
import { UniqueViolationError } from "../db/driver.ts";
import type { ClientsTable } from "../db/schema.ts";
import { check, checkObject } from "../validation.ts";
import { iso, type ServiceContext } from "./context.ts";
import { LOG_FILES } from "../../logs/files.ts";

import { DEFAULT_CLIENT_SETTINGS, type ClientSettings, type ConnectionType } from "../../wire/mp.ts";

export { DEFAULT_CLIENT_SETTINGS, type ClientSettings, type ConnectionType };

export interface Client {
  /** The SMS unique identifier, "GUID:<uuid>". */
  id: string;
  name: string;
  /** SHA-1 of the client authentication certificate (uppercase hex); null without a certificate. */
  thumbprint: string | null;
  subject: string | null;
  approved: boolean;
  /** The client was installed with `--always-internet` (the documents' CCMALWAYSINF=1). */
  alwaysInternet: boolean;
  lastContactAt: string | null;
  /** How the client last reached a management point: directly (intranet) or through a CMG (internet). */
  connectionType: ConnectionType | null;
  registeredAt: string;
  /** Blocked by an administrator: refused everywhere (`opencmg site clients block ID`). */
  blocked: boolean;
  /** Thumbprint of the key its client tokens are bound to (RFC 7638); null without tokens. */
  tokenKey: string | null;
  /** "<issuer> <device>" when it registered by directory sign-in. */
  directoryId: string | null;
  /** A key an administrator approved to replace `tokenKey` (`site clients approve-key`), until the device uses it. */
  approvedTokenKey: string | null;
  /** Status messages refused for its limits (rate, count per day), and when last. */
  statusRefused: number;
  statusRefusedAt: string | null;
}

/** Another client already has the name (names are unique, in any letter case). */
export class ClientNameTakenError extends ConflictError {
  constructor(
    readonly takenName: string,
    readonly holder: string,
  ) {
    super("name", `client ${holder} already has the name ${takenName}; two clients cannot take the same name (remove or rename the other one first)`);
  }
}

/** The name is a site system server's: a device may not pass for the site. */
export class ReservedClientNameError extends ValidationError {
  constructor(name: string, server: string) {
    super("name", "must not be the name of a site system server", `name: ${name} is the name of site system server ${server}; a client cannot take a site system's name`);
  }
}

/** A blocked client cannot register again or rename itself. */
export class ClientBlockedError extends OpenCmgError {
  constructor(readonly client: { id: string; name: string }) {
    super("forbidden", "CLIENT_BLOCKED", `client ${client.id} (${client.name}) is blocked by an administrator; it cannot register again or rename itself`);
  }
}

/** A device that registers with a token (bulk registration or directory sign-in) instead of a certificate. */
export interface TokenRegistration {
  name: string;
  /** RFC 7638 thumbprint of the key the device generated: its client tokens are bound to it. */
  jkt: string;
  /** Directory sign-in: the same directory device always gets the same client ID. */
  directoryId?: string | undefined;
  alwaysInternet?: boolean | undefined;
  /** The client ID to give a new device (a bulk token use reserved it); a new one otherwise. */
  id?: string | undefined;
}

/** How a client's bound token key may change: the MP checks the proof, this says whether one is needed. */
export type KeyChange =
  /** No key bound yet, or the same key: nothing to prove. */
  | "none"
  /** An administrator approved exactly this key (`site clients approve-key`). */
  | "approved"
  /** Another key: a proof by the bound key, or an administrator's approval, is needed. */
  | "unproven";


/** Which clients a list shows (all when empty). */
export interface ClientFilter {
  approved?: boolean | undefined;
  connectionType?: ConnectionType | undefined;
  /** Exactly this computer name. */
  name?: string | undefined;
}

const SETTINGS_ROW = "default";

/** A computer name or FQDN as clients report it; no control characters. */
const clientName = z
  .string()
  .min(1, "must not be empty")
  .max(253, "must be at most 253 characters")
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "must be a computer name (letters, digits, dots, hyphens, underscores)");

const tokenKeyThumbprint = z.string().trim().regex(/^[A-Za-z0-9_-]{43}$/, "must be a key thumbprint (RFC 7638 SHA-256, 43 base64url characters, as the refusal and the client's log name it)");

const thumbprint = z
  .string()
  .regex(/^[0-9A-Fa-f]{40}$/, "must be a SHA-1 thumbprint (40 hex digits)")
  .transform((s) => s.toUpperCase());

export const clientId = z
  .string()
  .trim()
  .regex(/^GUID:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/i, "must be a client ID (GUID:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
  .transform((s) => "GUID:" + s.slice(5).toUpperCase());

const minutes = (max: number) =>
  z.preprocess(
    (v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
    z.number({ error: `must be a whole number of minutes from 1 to ${max}` }).int(`must be a whole number of minutes from 1 to ${max}`).min(1, `must be from 1 to ${max} minutes`).max(max, `must be from 1 to ${max} minutes`),
  );

/** The client settings a change may give (the admin API's body is this, strict). */
export const settingsPatch = z.object({
  locationIntervalMinutes: minutes(7 * 24 * 60).optional(),
  policyIntervalMinutes: minutes(7 * 24 * 60).optional(),
  useCmg: z.boolean().optional(),
  alwaysOnInternet: z.boolean().optional(),
});

export interface CertificateRegistration {
  name: string;
  thumbprint: string;
  subject: string;
  connectionType: ConnectionType;
  alwaysInternet?: boolean | undefined;
  /** The root CA the certificate chained to at the CMG (internet registrations). */
  rootThumbprint?: string | undefined;
}

export interface PendingRegistration {
  name: string;
  connectionType: ConnectionType;
  alwaysInternet?: boolean | undefined;
}

const sha256 = (s: string): string => createHash("sha256").update(s).digest("hex");
const newClientId = (): string => `GUID:${randomUUID().toUpperCase()}`;

function toClient(r: Selectable<ClientsTable>): Client {
  return {
    id: r.id,
    name: r.name,
    thumbprint: r.thumbprint,
    subject: r.subject,
    approved: r.approved === 1,
    alwaysInternet: r.always_internet === 1,
    lastContactAt: r.last_contact_at,
    connectionType: r.connection_type as ConnectionType | null,
    registeredAt: r.registered_at,
    blocked: r.blocked === 1,
    tokenKey: r.token_jkt,
    directoryId: r.directory_id,
    approvedTokenKey: r.approved_jkt ?? null,
    statusRefused: Number(r.status_refused ?? 0),
    statusRefusedAt: r.status_refused_at ?? null,
  };
}

const nameKey = (name: string): string => name.toLowerCase();

/**
 * @example
 * const clients = new ClientsService(site.ctx);
 * const { client } = await clients.registerWithCertificate({ name: "PC-001", thumbprint, subject, connectionType: "intranet" });
 * await clients.approve(pendingId); // `opencmg site clients approve ID`
 */
export class ClientsService {
  constructor(private readonly ctx: ServiceContext) {}

  private log() {
    return this.ctx.logs.component(LOG_FILES.mpRegistration);
  }

  /**
   * Registers (or re-registers) the client that proved it holds this client authentication
   * certificate. A PKI certificate is its own approval. The same certificate always gives the same
   * client ID, so a reinstalled client keeps its history.
   */
  async registerWithCertificate(input: CertificateRegistration): Promise<{ client: Client; created: boolean }> {
    const name = check("name", clientName, input.name);
    const tp = check("thumbprint", thumbprint, input.thumbprint);
    const now = iso(this.ctx.now());
    const known = await this.findByThumbprint(tp);
    if (known?.blocked) throw new ClientBlockedError(known);
    await this.checkNameFree(name, known?.id);
    const inserted = await this.uniqueName(name, () => this.ctx.db
      .insertInto("clients")
      .values({
        id: newClientId(),
        name,
        name_key: nameKey(name),
        thumbprint: tp,
        subject: input.subject,
        token_sha256: null,
        approved: 1,
        always_internet: input.alwaysInternet ? 1 : 0,
        last_contact_at: now,
        connection_type: input.connectionType,
        registered_at: now,
        token_jkt: null,
        directory_id: null,
        blocked: 0,
        blocked_at: null,
        root_thumbprint: input.rootThumbprint ?? null,
      })
      .onConflict((oc) => oc.column("thumbprint").doNothing())
      .returning(["id"])
      .executeTakeFirst());
    if (!inserted) {
      // `blocked = 0`: a block that came in since the look above still holds.
      const r = await this.uniqueName(name, () => this.ctx.db
        .updateTable("clients")
        .set({ name, name_key: nameKey(name), subject: input.subject, always_internet: input.alwaysInternet ? 1 : 0, last_contact_at: now, connection_type: input.connectionType, ...(input.rootThumbprint ? { root_thumbprint: input.rootThumbprint } : {}) })
        .where("thumbprint", "=", tp)
        .where("blocked", "=", 0)
        .executeTakeFirst());
      if (Number(r.numUpdatedRows) === 0) {
        const current = await this.findByThumbprint(tp);
        if (current?.blocked) throw new ClientBlockedError(current);
      }
    }
    const client = await this.findByThumbprint(tp);
    if (!client) throw new NotFoundError("thumbprint", `client with certificate ${tp}`);
    return { client, created: inserted !== undefined };
  }

  /**
   * A registration request without a certificate: the client is recorded as pending until an
   * administrator approves it. Returns the token the client authenticates with from now on (only
   * its hash is kept).
   */
  async requestRegistration(input: PendingRegistration): Promise<{ client: Client; token: string }> {
    const name = check("name", clientName, input.name);
    await this.checkNameFree(name, undefined);
    const token = randomBytes(32).toString("base64url");
    const now = iso(this.ctx.now());
    const id = newClientId();
    await this.uniqueName(name, () => this.ctx.db
      .insertInto("clients")
      .values({
        id,
        name,
        name_key: nameKey(name),
        thumbprint: null,
        subject: null,
        token_sha256: sha256(token),
        approved: 0,
        always_internet: input.alwaysInternet ? 1 : 0,
        last_contact_at: now,
        connection_type: input.connectionType,
        registered_at: now,
        token_jkt: null,
        directory_id: null,
        blocked: 0,
        blocked_at: null,
      })
      .execute());
    return { client: await this.get(id), token };
  }

  /**
   * A device that proved a bulk registration token or a directory ID token (the gateway checked it,
   * the management point checked its use): approved at once, bound to its key. A directory device
   * registering again keeps its client ID; its key changes only as `keyChange` allowed (the MP
   * checked the old key's proof or found the administrator's approval).
   */
  async registerWithToken(input: TokenRegistration): Promise<{ client: Client; created: boolean }> {
    const name = check("name", clientName, input.name);
    const now = iso(this.ctx.now());
    const known = input.directoryId
      ? await this.ctx.db.selectFrom("clients").select(["id", "name", "blocked"]).where("directory_id", "=", input.directoryId).executeTakeFirst()
      : input.id
        ? await this.ctx.db.selectFrom("clients").select(["id", "name", "blocked"]).where("id", "=", input.id).executeTakeFirst()
        : undefined;
    if (known) {
      if (known.blocked === 1) throw new ClientBlockedError(known);
      await this.checkNameFree(name, known.id);
      await this.uniqueName(name, () => this.ctx.db.updateTable("clients").set({ name, name_key: nameKey(name), token_jkt: input.jkt, approved_jkt: null, always_internet: input.alwaysInternet ? 1 : 0, last_contact_at: now, connection_type: "internet" }).where("id", "=", known.id).where("blocked", "=", 0).execute());
      const client = await this.get(known.id);
      if (client.blocked) throw new ClientBlockedError(client);
      return { client, created: false };
    }
    await this.checkNameFree(name, undefined);
    const id = input.id ?? newClientId();
    await this.uniqueName(name, () => this.ctx.db
      .insertInto("clients")
      .values({
        id,
        name,
        name_key: nameKey(name),
        thumbprint: null,
        subject: null,
        token_sha256: null,
        approved: 1,
        always_internet: input.alwaysInternet ? 1 : 0,
        last_contact_at: now,
        connection_type: "internet",
        registered_at: now,
        token_jkt: input.jkt,
        directory_id: input.directoryId ?? null,
        blocked: 0,
        blocked_at: null,
      })
      .execute());
    return { client: await this.get(id), created: true };
  }

  /** The client registered by directory sign-in as `directoryId`, if any. */
  async findByDirectoryId(directoryId: string): Promise<Client | undefined> {
    const r = await this.ctx.db.selectFrom("clients").selectAll().where("directory_id", "=", directoryId).executeTakeFirst();
    return r ? toClient(r) : undefined;
  }

  /** What binding `jkt` to `client` needs (see KeyChange). */
  keyChange(client: Client, jkt: string): KeyChange {
    if (client.tokenKey === null || client.tokenKey === jkt) return "none";
    return client.approvedTokenKey === jkt ? "approved" : "unproven";
  }


  /**
   * Refuses a name another client holds (in any letter case) or a site system server's (its FQDN
   * or its first label): a device must not pass for another device or for the site.
   */
  private async checkNameFree(name: string, self: string | undefined): Promise<void> {
    const key = nameKey(name);
    for (const s of await this.ctx.db.selectFrom("servers").select("fqdn").execute()) {
      const fqdn = s.fqdn.toLowerCase();
      if (key === fqdn || key === fqdn.split(".")[0]) throw new ReservedClientNameError(name, s.fqdn);
    }
    const holder = await this.ctx.db.selectFrom("clients").select("id").where("name_key", "=", key).executeTakeFirst();
    if (holder && holder.id !== self) throw new ClientNameTakenError(name, holder.id);
  }

  /** Runs a write that sets `name_key`; a registration that took the name meanwhile makes it ClientNameTakenError. */
  private async uniqueName<T>(name: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (e) {
      if (e instanceof UniqueViolationError && /name_key/.test(e.message + String(e.field))) {
        const holder = await this.ctx.db.selectFrom("clients").select("id").where("name_key", "=", nameKey(name)).executeTakeFirst();
        throw new ClientNameTakenError(name, holder?.id ?? "(another registration)");
      }
      throw e;
    }
  }

  /** Adds `n` to the client's count of status messages refused for its limits. */
  async noteStatusRefused(id: string, n: number): Promise<void> {
    await this.ctx.db
      .updateTable("clients")
      .set((eb) => ({ status_refused: eb("status_refused", "+", n), status_refused_at: iso(this.ctx.now()) }))
      .where("id", "=", id)
      .execute();
  }


  /** Binds the client's tokens to a key (a certificate or request-token client that proved it); an approval is used up. */
  async bindTokenKey(id: string, jkt: string): Promise<void> {
    await this.ctx.db.updateTable("clients").set({ token_jkt: jkt, approved_jkt: null }).where("id", "=", id).execute();
  }

  /**
   * `opencmg site clients approve-key ID JKT`: the device may bind the key with thumbprint `jkt`
   * in place of its bound key at its next registration (a device that lost its key: reinstalled,
   * disk replaced). Without this, only a proof made by the bound key replaces it.
   */
  async approveKey(idInput: string, jktInput: string): Promise<Client> {
    const client = await this.get(idInput);
    const jkt = check("jkt", tokenKeyThumbprint, jktInput);
    await this.ctx.db.updateTable("clients").set({ approved_jkt: jkt }).where("id", "=", client.id).execute();
    this.log().info(`Client ${client.id} (${client.name}): an administrator approved key ${jkt} to replace ${client.tokenKey ?? "(no key)"} at its next registration.`);
    return this.get(client.id);
  }

  /**
   * `opencmg site clients block ID`: the client is refused by every management point at once,
   * and by every CMG instance with the next settings push (the connection points look every few seconds).
   */
  async block(idInput: string, blocked = true): Promise<Client> {
    const client = await this.get(idInput);
    if (client.blocked !== blocked) {
      await this.ctx.db.updateTable("clients").set({ blocked: blocked ? 1 : 0, blocked_at: blocked ? iso(this.ctx.now()) : null }).where("id", "=", client.id).execute();
      this.log().info(`Client ${client.id} (${client.name}) ${blocked ? "blocked" : "unblocked"} by an administrator.`);
    }
    return { ...client, blocked };
  }

  async findByThumbprint(tp: string): Promise<Client | undefined> {
    const r = await this.ctx.db.selectFrom("clients").selectAll().where("thumbprint", "=", tp.toUpperCase()).executeTakeFirst();
    return r ? toClient(r) : undefined;
  }

  async findByToken(token: string): Promise<Client | undefined> {
    const r = await this.ctx.db.selectFrom("clients").selectAll().where("token_sha256", "=", sha256(token)).executeTakeFirst();
    return r ? toClient(r) : undefined;
  }

  async get(idInput: string): Promise<Client> {
    const id = check("id", clientId, idInput);
    const r = await this.ctx.db.selectFrom("clients").selectAll().where("id", "=", id).executeTakeFirst();
    if (!r) throw new NotFoundError("id", `client ${id}`);
    return toClient(r);
  }

  /** Clients that registered without a certificate and await approval. */
  async pendingCount(): Promise<number> {
    const r = await this.ctx.db.selectFrom("clients").select((eb) => eb.fn.countAll<number>().as("n")).where("approved", "=", 0).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async list(filter: ClientFilter = {}): Promise<Client[]> {
    let q = this.ctx.db.selectFrom("clients").selectAll();
    if (filter.approved !== undefined) q = q.where("approved", "=", filter.approved ? 1 : 0);
    if (filter.connectionType !== undefined) q = q.where("connection_type", "=", filter.connectionType);
    if (filter.name !== undefined) q = q.where("name", "=", filter.name);
    return (await q.orderBy("name").orderBy("id").execute()).map(toClient);
  }

  /** Approves a client that registered without a certificate (`opencmg site clients approve ID`). */
  async approve(idInput: string): Promise<Client> {
    const client = await this.get(idInput);
    if (!client.approved) {
      await this.ctx.db.updateTable("clients").set({ approved: 1 }).where("id", "=", client.id).execute();
      this.log().info(`Client ${client.id} (${client.name}) approved by an administrator.`);
    }
    return { ...client, approved: true };
  }

  /** Records that the client reached a management point now, and how. */
  async touch(id: string, connectionType: ConnectionType): Promise<void> {
    await this.ctx.db.updateTable("clients").set({ last_contact_at: iso(this.ctx.now()), connection_type: connectionType }).where("id", "=", id).execute();
  }

  async settings(): Promise<ClientSettings> {
    const r = await this.ctx.db.selectFrom("client_settings").selectAll().where("name", "=", SETTINGS_ROW).executeTakeFirst();
    if (!r) return { ...DEFAULT_CLIENT_SETTINGS };
    return {
      locationIntervalMinutes: r.location_interval_minutes,
      policyIntervalMinutes: r.policy_interval_minutes,
      useCmg: r.use_cmg === 1,
      alwaysOnInternet: r.always_on_internet === 1,
    };
  }

  /** Changes the given client settings; the others keep their values. */
  async setSettings(patch: Partial<Record<keyof ClientSettings, unknown>>): Promise<ClientSettings> {
    const given = checkObject(settingsPatch, patch);
    const next: ClientSettings = { ...(await this.settings()) };
    for (const [k, v] of Object.entries(given)) if (v !== undefined) (next as unknown as Record<string, unknown>)[k] = v;
    const row = {
      location_interval_minutes: next.locationIntervalMinutes,
      policy_interval_minutes: next.policyIntervalMinutes,
      use_cmg: next.useCmg ? 1 : 0,
      always_on_internet: next.alwaysOnInternet ? 1 : 0,
      updated_at: iso(this.ctx.now()),
    };
    await this.ctx.db
      .insertInto("client_settings")
      .values({ name: SETTINGS_ROW, ...row })
      .onConflict((oc) => oc.column("name").doUpdateSet(row))
      .execute();
    this.ctx.logs.component(LOG_FILES.smsprov).info(`Changed the default client settings: ${JSON.stringify(next)}.`);
    return next;
  }
}
