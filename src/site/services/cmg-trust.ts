/**
 * What a CMG's gateway instances trust, decided by the site alone (docs/protocol.md section 2):
 *
 * - the settings-signing keys (Ed25519; private keys sealed with the site key, never leaving the
 *   site). Rotated with an overlap, as the token signing keys are: after a rotation the previous
 *   key still signs beside the new one, so an instance that knows only the old key accepts the
 *   document that announces the new one;
 * - the tunnel certificates issued to connection points, recorded by serial and public key, so the
 *   signed settings admit exactly the certificates of the connection point roles bound to the CMG,
 *   and an administrator can revoke one (removing the role revokes its certificates);
 * - the signed settings document itself, with a revision the site assigns from a counter it keeps
 *   per CMG and raises only when the content changes.
 */
import { createHash, generateKeyPairSync, randomUUID, X509Certificate } from "node:crypto";
import { z } from "zod";
import { NotFoundError, OpenCmgError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import type { CertKeyPem } from "../../pki/issue.ts";
import type { StartupTrust } from "../../gateway/settings-store.ts";
import { MAX_SETTINGS_KEYS, type AdmittedConnectionPoint, type CmgSettings, type CmgSettingsBase, type PublicJwk } from "../../wire/tunnel/protocol.ts";
import { connectionPointIdentity, SETTINGS_ALG, signSettings, type SignedSettings } from "../../wire/tunnel/signed-settings.ts";
import { writeTransaction } from "../db/transaction.ts";
import type { SitePki } from "../site-pki.ts";
import { check, fqdn as fqdnRule } from "../validation.ts";
import { iso, type Db, type ServiceContext } from "./context.ts";
import type { RolesService } from "./roles.ts";

/** A signing key as the site shows it (tokens' and settings' alike): never its key material. */
export const signingKeyView = z.object({ kid: z.string(), alg: z.string(), state: z.enum(["current", "previous", "retired"]), createdAt: z.string(), retiredAt: z.string().nullable() });
export type SettingsKeyView = z.output<typeof signingKeyView>;

export const connectionPointCertView = z.object({
  serial: z.string(),
  fqdn: z.string(),
  spki: z.string().describe("SHA-256 of the public key (SubjectPublicKeyInfo), base64url"),
  issuedAt: z.string(),
  notAfter: z.string(),
  revokedAt: z.string().nullable(),
  revokedReason: z.string().nullable(),
  state: z.enum(["valid", "revoked", "expired"]),
});
export type ConnectionPointCertView = z.output<typeof connectionPointCertView>;

/** What the settings of a CMG are made of at the site (CmgsService.gatewaySettings). */
export interface SettingsSource {
  gatewaySettings(name: string): Promise<CmgSettingsBase>;
  exists(name: string): Promise<boolean>;
}

const reasonRule = z.string().trim().min(1).max(200, "at most 200 characters");

export class CmgTrustService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly roles: RolesService,
    private readonly source: SettingsSource,
    /** The site CA's files, loaded when a certificate is issued (absent: none can be issued here). */
    private readonly pki?: () => Promise<SitePki>,
  ) {}

  private log() {
    return this.ctx.logs.component(LOG_FILES.cloudMgr);
  }

  private requireKey() {
    const key = this.ctx.key;
    if (!key) throw new OpenCmgError("internal", "SITE_KEY_MISSING", "the site key is missing: run opencmg site init first");
    return key;
  }

  private async newKey(db: Db, state: "current" | "pending"): Promise<string> {
    const key = this.requireKey();
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const kid = randomUUID();
    const jwk = { ...(publicKey.export({ format: "jwk" }) as Record<string, string>), kid, alg: SETTINGS_ALG, use: "sig" };
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }) as string;
    await db
      .insertInto("settings_signing_keys")
      .values({ kid, alg: SETTINGS_ALG, public_jwk: JSON.stringify(jwk), private_key: key.seal(pem, `settings-signing-key:${kid}`), state, created_at: iso(this.ctx.now()), retired_at: null })
      .execute();
    return kid;
  }

  /** The keys that sign now, newest first: the current one (made on first use) and the previous one. */
  private async keysInForce(): Promise<{ kid: string; jwk: PublicJwk; privateKeyPem: string }[]> {
    const read = () => this.ctx.db.selectFrom("settings_signing_keys").selectAll().where("state", "in", ["current", "previous"]).orderBy("created_at", "desc").limit(MAX_SETTINGS_KEYS).execute();
    let rows = await read();
    if (!rows.some((r) => r.state === "current")) {
      await writeTransaction(this.ctx.db, async (tx) => {
        // Another process may have made it meanwhile: one current key only.
        if (await tx.selectFrom("settings_signing_keys").select("kid").where("state", "=", "current").executeTakeFirst()) return;
        await this.newKey(tx, "current");
      });
      rows = await read();
    }
    const key = this.requireKey();
    return rows.map((r) => ({ kid: r.kid, jwk: JSON.parse(r.public_jwk) as PublicJwk, privateKeyPem: key.open(r.private_key, `settings-signing-key:${r.kid}`) }));
  }

  /**
   * `opencmg cmg rotate-settings-key`: a new current key; the current one becomes the previous one
   * and keeps signing beside it (instances that know only it accept the document announcing the new
   * one); the previous one is retired. Instances get the new key set with the next settings push,
   * so rotate again only after every instance has had one (`cmg show` revision).
   */
  async rotateSettingsKey(): Promise<{ current: string; previous: string | null; retired: string[] }> {
    const now = iso(this.ctx.now());
    await this.keysInForce();
    const before = await this.ctx.db.selectFrom("settings_signing_keys").select(["kid", "state"]).where("state", "in", ["current", "previous"]).execute();
    const kid = await this.newKey(this.ctx.db, "pending");
    await writeTransaction(this.ctx.db, async (tx) => {
      await tx.updateTable("settings_signing_keys").set({ state: "retired", retired_at: now }).where("state", "=", "previous").execute();
      await tx.updateTable("settings_signing_keys").set({ state: "previous" }).where("state", "=", "current").execute();
      await tx.updateTable("settings_signing_keys").set({ state: "current" }).where("kid", "=", kid).execute();
    });
    const previous = before.find((r) => r.state === "current")?.kid ?? null;
    const retired = before.filter((r) => r.state === "previous").map((r) => r.kid);
    this.log().info(`Settings-signing key rotated: ${kid} signs CMG settings from now on, together with ${previous ?? "no other key"} until the next rotation${retired.length ? `; ${retired.join(", ")} retired` : ""}.`);
    return { current: kid, previous, retired };
  }

  async settingsKeys(): Promise<SettingsKeyView[]> {
    const rows = await this.ctx.db.selectFrom("settings_signing_keys").select(["kid", "alg", "state", "created_at", "retired_at"]).where("state", "!=", "pending").orderBy("created_at", "desc").execute();
    return rows.map((r) => ({ kid: r.kid, alg: r.alg, state: r.state as SettingsKeyView["state"], createdAt: r.created_at, retiredAt: r.retired_at }));
  }

  private requirePki(): Promise<SitePki> {
    if (!this.pki) throw new OpenCmgError("internal", "SITE_PKI_MISSING", "the site CA is not available to this process");
    return this.pki();
  }

  /**
   * The tunnel client certificate of the connection point on `fqdn`, issued by the site CA and
   * recorded (serial, public key) so the signed settings can admit it. Only for a server with a
   * connection point role; a revoked certificate is never handed out again (a new one is issued).
   */
  async connectionPointCertificate(fqdnInput: string): Promise<CertKeyPem> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    if (!(await this.roles.findOn(fqdn, "cmg-connection-point"))) throw new ValidationError("server", `${fqdn} has no CMG connection point role (opencmg role add ${fqdn} cmg-connection-point --cmg NAME)`);
    const pki = await this.requirePki();
    let pair = await pki.connectionPointCert(fqdn);
    const revoked = async (p: CertKeyPem): Promise<boolean> => {
      const serial = new X509Certificate(p.certPem).serialNumber.toUpperCase();
      return (await this.ctx.db.selectFrom("connection_point_certs").select("revoked_at").where("serial", "=", serial).executeTakeFirst())?.revoked_at != null;
    };
    if (await revoked(pair)) pair = await pki.connectionPointCert(fqdn, true);
    const cert = new X509Certificate(pair.certPem);
    const id = connectionPointIdentity(cert);
    const known = await this.ctx.db.selectFrom("connection_point_certs").select("serial").where("serial", "=", id.serial).executeTakeFirst();
    if (!known) {
      await this.ctx.db
        .insertInto("connection_point_certs")
        .values({ serial: id.serial, fqdn, spki: id.spki, issued_at: iso(this.ctx.now()), not_after: iso(new Date(cert.validTo)), revoked_at: null, revoked_reason: null })
        .execute();
      this.log().info(`Connection point certificate of ${fqdn} recorded: serial ${id.serial}, valid until ${cert.validTo}.`);
    }
    return pair;
  }

  /**
   * The tunnel client certificate of a joined connection point (CN `opencmg-cp:<fqdn>`), issued for
   * the key the server holds (`publicKeyDer`: the SubjectPublicKeyInfo of its host certificate) and
   * recorded like the others; the site never has that key.
   */
  async connectionPointCertificateFor(fqdnInput: string, publicKeyDer: Uint8Array): Promise<{ certPem: string }> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    if (!(await this.roles.findOn(fqdn, "cmg-connection-point"))) throw new ValidationError("server", `${fqdn} has no CMG connection point role (opencmg role add ${fqdn} cmg-connection-point --cmg NAME)`);
    const pki = await this.requirePki();
    const { issueCertForKey } = await import("../../pki/issue.ts");
    const { CONNECTION_POINT_CN_PREFIX } = await import("../../wire/tunnel/protocol.ts");
    const issued = await issueCertForKey({ issuer: pki.ca(), publicKey: Uint8Array.from(publicKeyDer), commonName: `${CONNECTION_POINT_CN_PREFIX}${fqdn}`, dnsNames: [fqdn], usage: "client" });
    const cert = new X509Certificate(issued.certPem);
    const id = connectionPointIdentity(cert);
    await this.ctx.db
      .insertInto("connection_point_certs")
      .values({ serial: id.serial, fqdn, spki: id.spki, issued_at: iso(this.ctx.now()), not_after: iso(new Date(cert.validTo)), revoked_at: null, revoked_reason: null })
      .execute();
    this.log().info(`Connection point certificate of joined server ${fqdn} issued for its own key and recorded: serial ${id.serial}, valid until ${cert.validTo}.`);
    return { certPem: issued.certPem };
  }

  async connectionPointCertificates(fqdnInput?: string): Promise<ConnectionPointCertView[]> {
    let q = this.ctx.db.selectFrom("connection_point_certs").selectAll();
    if (fqdnInput !== undefined) q = q.where("fqdn", "=", check("fqdn", fqdnRule, fqdnInput));
    const now = iso(this.ctx.now());
    const rows = await q.orderBy("fqdn").orderBy("issued_at", "desc").execute();
    return rows.map((r) => ({
      serial: r.serial,
      fqdn: r.fqdn,
      spki: r.spki,
      issuedAt: r.issued_at,
      notAfter: r.not_after,
      revokedAt: r.revoked_at,
      revokedReason: r.revoked_reason,
      state: r.revoked_at ? "revoked" : r.not_after <= now ? "expired" : "valid",
    }));
  }

  /**
   * `opencmg connection-point revoke FQDN [--serial S]`: the certificate(s) are admitted nowhere
   * from the next settings push on (the instances close their tunnels), and the connection point
   * gets a new certificate at its next start if it still has its role.
   */
  async revokeConnectionPoint(fqdnInput: string, o: { serial?: string | undefined; reason?: string | undefined } = {}): Promise<ConnectionPointCertView[]> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    const reason = o.reason === undefined ? "revoked by an administrator" : check("reason", reasonRule, o.reason);
    const serial = o.serial === undefined ? undefined : check("serial", z.string().trim().regex(/^[0-9A-Fa-f:]{1,96}$/, "must be a certificate serial number in hex").transform((s) => s.replace(/:/g, "").toUpperCase()), o.serial);
    const revoked = await writeTransaction(this.ctx.db, async (tx) => {
      let q = tx.selectFrom("connection_point_certs").select("serial").where("fqdn", "=", fqdn).where("revoked_at", "is", null);
      if (serial) q = q.where("serial", "=", serial);
      const rows = await q.execute();
      if (rows.length === 0) throw new NotFoundError(serial ? "serial" : "fqdn", serial ? `an unrevoked connection point certificate ${serial} of ${fqdn}` : `an unrevoked connection point certificate of ${fqdn}`);
      await tx.updateTable("connection_point_certs").set({ revoked_at: iso(this.ctx.now()), revoked_reason: reason }).where("serial", "in", rows.map((r) => r.serial)).execute();
      return rows.map((r) => r.serial);
    });
    this.log().warn(`Connection point certificate(s) of ${fqdn} revoked (${reason}): ${revoked.join(", ")}. The instances close their tunnels with the next settings push.`);
    return (await this.connectionPointCertificates(fqdn)).filter((c) => revoked.includes(c.serial));
  }

  /** The connection point certificates admitted to CMG `name`: valid certificates of the servers whose connection point role is bound to it. */
  async admitted(name: string): Promise<AdmittedConnectionPoint[]> {
    const cmg = name.toLowerCase();
    const servers = (await this.roles.list()).filter((r) => r.kind === "cmg-connection-point" && r.settings.cmgName === cmg).map((r) => r.serverFqdn);
    if (servers.length === 0) return [];
    const now = iso(this.ctx.now());
    const rows = await this.ctx.db
      .selectFrom("connection_point_certs")
      .select(["fqdn", "serial", "spki"])
      .where("fqdn", "in", servers)
      .where("revoked_at", "is", null)
      .where("not_after", ">", now)
      .orderBy("fqdn")
      .orderBy("serial")
      .execute();
    return rows.map((r) => ({ name: r.fqdn, serial: r.serial, spki: r.spki }));
  }

  /**
   * The settings document of CMG `name`, signed by the site. Its revision is the site's counter
   * for the CMG, raised here when the content changed since the last document (never a clock).
   * Carries the server certificate's key: for the connection points to carry, never to log.
   */
  async signedSettings(nameInput: string): Promise<SignedSettings> {
    const { settings, keys } = await this.currentSettings(nameInput);
    return signSettings(settings, keys.map((k) => ({ kid: k.kid, privateKeyPem: k.privateKeyPem })));
  }

  private async currentSettings(nameInput: string): Promise<{ settings: CmgSettings; keys: Awaited<ReturnType<CmgTrustService["keysInForce"]>> }> {
    const name = nameInput.toLowerCase();
    const base = await this.source.gatewaySettings(name);
    const keys = await this.keysInForce();
    const { revision: _ignored, ...rest } = base;
    const content = { ...rest, cmg: name, settingsKeys: keys.map((k) => k.jwk), connectionPoints: await this.admitted(name) };
    const hash = createHash("sha256").update(JSON.stringify(content)).digest("base64url");
    return { settings: { revision: await this.revisionFor(name, hash), ...content }, keys };
  }

  /** The revision of content `hash`: the one recorded when unchanged, else the next one. */
  private async revisionFor(name: string, hash: string): Promise<number> {
    const row = await this.ctx.db.selectFrom("cmg_settings_revisions").selectAll().where("cmg_name", "=", name).executeTakeFirst();
    if (row && row.content_hash === hash) return Number(row.revision);
    const revision = await writeTransaction(this.ctx.db, async (tx) => {
      const r = await tx.selectFrom("cmg_settings_revisions").selectAll().where("cmg_name", "=", name).executeTakeFirst();
      if (r && r.content_hash === hash) return Number(r.revision);
      const next = Number(r?.revision ?? 0) + 1;
      if (!Number.isSafeInteger(next)) throw new OpenCmgError("internal", "REVISION_EXHAUSTED", `the settings revision of CMG ${name} cannot grow further`);
      const at = iso(this.ctx.now());
      if (r) await tx.updateTable("cmg_settings_revisions").set({ revision: next, content_hash: hash, updated_at: at }).where("cmg_name", "=", name).execute();
      else await tx.insertInto("cmg_settings_revisions").values({ cmg_name: name, revision: next, content_hash: hash, updated_at: at }).execute();
      return next;
    });
    this.log().info(`Settings of CMG ${name}: revision ${revision} issued and signed by the site.`);
    return revision;
  }

  /**
   * What a start-up bundle of CMG `name` carries: the keys that sign now, the admitted connection
   * points, and the revision of the settings now (brought up to date first), below which the
   * instance applies nothing: an older document may admit a connection point removed since.
   */
  async startupTrust(nameInput: string): Promise<StartupTrust> {
    const { settings } = await this.currentSettings(nameInput);
    return { settingsKeys: settings.settingsKeys, connectionPoints: settings.connectionPoints, minRevision: settings.revision };
  }
}
