/**
 * Site-issued tokens: the site's token signing keys (ES256; private keys sealed with the site key,
 * rotated with an overlap: the previous key stays accepted until the next rotation), bulk
 * registration tokens (printed once; the site keeps only their ID, expiry and optional cap, so they
 * can be listed and revoked; each registers any number of devices while valid, each device, known
 * by its key, once), the directory ID tokens already used (each registers once), and client tokens
 * (bound to a client ID and the thumbprint of a key the client generated, RFC 7638 / RFC 9449
 * `cnf.jkt`).
 *
 * What the gateway instances need to check them (public keys, issuer, audience, blocked clients,
 * the directory's keys) travels in the CMG settings (`gatewayTrust`).
 */
import { randomUUID } from "node:crypto";
/** JOSE is loaded by the methods that sign: every command opens the site's services, few sign. */
const jose = () => import("jose");
import { z } from "zod";
import { checkAll, NotFoundError, OpenCmgError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import type { PublicJwk, TokenOrigins, TokenTrust } from "../../wire/tunnel/protocol.ts";
import type { CmgDeploySettings } from "./cmg-model.ts";
import { MAX_BLOCKED_CLIENTS } from "../../wire/tunnel/protocol.ts";
import { BULK_DEFAULT_MINUTES, BULK_MAX_MINUTES, CLIENT_TOKEN_LIFETIME_MS, TOKEN_TYPES } from "../../wire/tokens.ts";
import { writeTransaction } from "../db/transaction.ts";
import { check } from "../validation.ts";
import { iso, type ServiceContext } from "./context.ts";
import type { DirectoryTrust } from "./directory.ts";
import type { SettingsKeyView } from "./cmg-trust.ts";

export { BULK_DEFAULT_MINUTES, BULK_MAX_MINUTES };
/** Largest `--max-uses` (a cap, not a size: a token without one registers any number). */
export const BULK_MAX_USES = 1_000_000;
const SIGNING_ALG = "ES256";

export interface BulkToken {
  id: string;
  createdAt: string;
  expiresAt: string;
  /** Most devices it registers; null: any number until it expires or is revoked. */
  maxUses: number | null;
  /** How many devices registered with it. */
  devices: number;
  /** When the last of them registered. */
  lastUsedAt: string | null;
  revokedAt: string | null;
  /** active; used (as many devices as --max-uses); revoked; expired. */
  state: "active" | "used" | "revoked" | "expired";
}

/** The same shape as the settings-signing keys' (one schema: cmg-trust.ts). */
export type SigningKeyView = SettingsKeyView;

/** Why a bulk token does not register a device (the MP answers with it). */
export type BulkRefusal = "bulk_token_unknown" | "bulk_token_used" | "bulk_token_revoked" | "bulk_token_expired";

/** A device's use of a bulk token: the client it registered (existing: the same device, seen before). */
export type BulkUse = { ok: true; clientId: string; existing: boolean } | { ok: false; reason: BulkRefusal; maxUses?: number };

const lifetime = z.preprocess(
  (v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z
    .number({ error: `must be a whole number of minutes from 1 to ${BULK_MAX_MINUTES}` })
    .int(`must be a whole number of minutes from 1 to ${BULK_MAX_MINUTES}`)
    .min(1, `must be from 1 to ${BULK_MAX_MINUTES} minutes`)
    .max(BULK_MAX_MINUTES, `must be from 1 to ${BULK_MAX_MINUTES} minutes (7 days)`),
);
const maxUses = z.preprocess(
  (v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z
    .number({ error: `must be a whole number of devices from 1 to ${BULK_MAX_USES}` })
    .int(`must be a whole number of devices from 1 to ${BULK_MAX_USES}`)
    .min(1, `must be from 1 to ${BULK_MAX_USES} devices`)
    .max(BULK_MAX_USES, `must be from 1 to ${BULK_MAX_USES} devices`),
);
const JKT = /^[A-Za-z0-9_-]{43}$/;
const bulkId = z.string().trim().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, "must be a bulk token ID (a UUID, as `token list-bulk` shows)").transform((s) => s.toLowerCase());

/** `aud` of tokens meant for CMG `name`. */
export const cmgAudience = (name: string): string => `opencmg-cmg:${name.toLowerCase()}`;
/** `iss` of the tokens of site `code`. */
export const siteIssuer = (code: string): string => `opencmg-site:${code.toUpperCase()}`;

export class TokensService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly directory: DirectoryTrust,
  ) {}

  private log() {
    return this.ctx.logs.component(LOG_FILES.smsprov);
  }

  private async issuer(): Promise<string> {
    const top = await this.ctx.db.selectFrom("sites").select("code").where("parent_code", "is", null).orderBy("created_at").executeTakeFirst();
    if (!top) throw new OpenCmgError("not_found", "SITE_NOT_INITIALIZED", "the site is not initialized: run opencmg site init");
    return siteIssuer(top.code);
  }

  /** Every CMG of the site: a token issued now may be used at any of them. */
  private async audiences(): Promise<string[]> {
    const rows = await this.ctx.db.selectFrom("cmgs").select("name").orderBy("name").execute();
    return rows.map((r) => cmgAudience(r.name));
  }

  private requireKey() {
    const key = this.ctx.key;
    if (!key) throw new OpenCmgError("internal", "SITE_KEY_MISSING", "the site key is missing: run opencmg site init first");
    return key;
  }

  private async newSigningKey(state: "current"): Promise<string> {
    const key = this.requireKey();
    const { generateKeyPair, exportJWK, exportPKCS8 } = await jose();
    const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
    const kid = randomUUID();
    const jwk = { ...(await exportJWK(publicKey)), kid, alg: SIGNING_ALG, use: "sig" };
    await this.ctx.db
      .insertInto("token_signing_keys")
      .values({ kid, alg: SIGNING_ALG, public_jwk: JSON.stringify(jwk), private_key: key.seal(await exportPKCS8(privateKey), `token-signing-key:${kid}`), state, created_at: iso(this.ctx.now()), retired_at: null })
      .execute();
    return kid;
  }

  /** The key that signs now (created on first use). */
  private async signer(): Promise<{ kid: string; key: CryptoKey }> {
    let row = await this.ctx.db.selectFrom("token_signing_keys").selectAll().where("state", "=", "current").orderBy("created_at", "desc").executeTakeFirst();
    if (!row) {
      await this.newSigningKey("current");
      row = await this.ctx.db.selectFrom("token_signing_keys").selectAll().where("state", "=", "current").orderBy("created_at", "desc").executeTakeFirstOrThrow();
    }
    const { importPKCS8 } = await jose();
    const pem = this.requireKey().open(row.private_key, `token-signing-key:${row.kid}`);
    return { kid: row.kid, key: await importPKCS8(pem, row.alg) };
  }

  /**
   * `opencmg token rotate-signing-key`: a new current key; the current one becomes the previous
   * (still accepted, so tokens it signed keep working until they are renewed); the previous one is
   * retired. Instances get the new key set with the next settings push.
   */
  async rotateSigningKey(): Promise<{ current: string; previous: string | null; retired: string[] }> {
    const now = iso(this.ctx.now());
    const before = await this.ctx.db.selectFrom("token_signing_keys").select(["kid", "state"]).where("state", "in", ["current", "previous"]).execute();
    const kid = await this.newSigningKeyPending();
    await writeTransaction(this.ctx.db, async (tx) => {
      await tx.updateTable("token_signing_keys").set({ state: "retired", retired_at: now }).where("state", "=", "previous").execute();
      await tx.updateTable("token_signing_keys").set({ state: "previous" }).where("state", "=", "current").execute();
      await tx.updateTable("token_signing_keys").set({ state: "current" }).where("kid", "=", kid).execute();
    });
    const previous = before.find((r) => r.state === "current")?.kid ?? null;
    const retired = before.filter((r) => r.state === "previous").map((r) => r.kid);
    this.log().info(`Token signing key rotated: ${kid} signs from now on; ${previous ?? "no key"} is still accepted until the next rotation${retired.length ? `; ${retired.join(", ")} retired` : ""}.`);
    return { current: kid, previous, retired };
  }

  /** A key made aside (state "pending") so that the swap above is one short transaction. */
  private async newSigningKeyPending(): Promise<string> {
    const kid = await this.newSigningKey("current");
    await this.ctx.db.updateTable("token_signing_keys").set({ state: "pending" }).where("kid", "=", kid).execute();
    return kid;
  }

  async signingKeys(): Promise<SigningKeyView[]> {
    const rows = await this.ctx.db.selectFrom("token_signing_keys").select(["kid", "alg", "state", "created_at", "retired_at"]).where("state", "!=", "pending").orderBy("created_at", "desc").execute();
    return rows.map((r) => ({ kid: r.kid, alg: r.alg, state: r.state as SigningKeyView["state"], createdAt: r.created_at, retiredAt: r.retired_at }));
  }

  /** Public keys the instances accept: current and previous. */
  async publicKeys(): Promise<PublicJwk[]> {
    const rows = await this.ctx.db.selectFrom("token_signing_keys").select(["public_jwk", "state"]).where("state", "in", ["current", "previous"]).orderBy("created_at", "desc").limit(4).execute();
    return rows.map((r) => JSON.parse(r.public_jwk) as PublicJwk);
  }

  private async sign(typ: string, claims: Record<string, unknown>, subject: string | undefined, lifetimeMs: number, jti: string): Promise<{ token: string; expiresAt: Date }> {
    const { SignJWT } = await jose();
    const { kid, key } = await this.signer();
    const now = this.ctx.now();
    const expiresAt = new Date(now.getTime() + lifetimeMs);
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: SIGNING_ALG, kid, typ })
      .setIssuer(await this.issuer())
      .setAudience(await this.audiences())
      .setIssuedAt(Math.floor(now.getTime() / 1000))
      .setNotBefore(Math.floor(now.getTime() / 1000))
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .setJti(jti);
    if (subject) jwt.setSubject(subject);
    return { token: await jwt.sign(key), expiresAt };
  }

  /**
   * `opencmg token create-bulk`: the token is returned once and never stored. It registers any
   * number of devices until it expires or is revoked, or at most `maxUses` of them.
   */
  async createBulk(input: { lifetimeMinutes?: unknown; maxUses?: unknown } = {}): Promise<{ id: string; token: string; expiresAt: string; maxUses: number | null }> {
    // Both fields' problems at once.
    const { minutes, cap } = checkAll({
      minutes: () => (input.lifetimeMinutes === undefined ? BULK_DEFAULT_MINUTES : check("lifetime", lifetime, input.lifetimeMinutes)),
      cap: () => (input.maxUses === undefined || input.maxUses === null ? null : check("maxUses", maxUses, input.maxUses)),
    });
    const id = randomUUID();
    const { token, expiresAt } = await this.sign(TOKEN_TYPES.bulk, {}, undefined, minutes * 60_000, id);
    await this.ctx.db.insertInto("bulk_tokens").values({ id, created_at: iso(this.ctx.now()), expires_at: iso(expiresAt), used_at: null, used_by: null, revoked_at: null, max_uses: cap }).execute();
    this.log().info(`Bulk registration token ${id} created, valid until ${iso(expiresAt)}, for ${cap === null ? "any number of devices" : `at most ${cap} device(s)`}.`);
    return { id, token, expiresAt: iso(expiresAt), maxUses: cap };
  }

  async listBulk(): Promise<BulkToken[]> {
    const now = iso(this.ctx.now());
    const rows = await this.ctx.db.selectFrom("bulk_tokens").selectAll().orderBy("created_at", "desc").execute();
    const uses = await this.ctx.db
      .selectFrom("bulk_token_uses")
      .select((eb) => ["bulk_id", eb.fn.countAll<number>().as("n"), eb.fn.max("used_at").as("last")])
      .groupBy("bulk_id")
      .execute();
    const byId = new Map(uses.map((u) => [u.bulk_id, { n: Number(u.n), last: (u.last as string | null) ?? null }]));
    return rows.map((r) => {
      const used = byId.get(r.id) ?? { n: 0, last: null };
      const cap = r.max_uses === null || r.max_uses === undefined ? null : Number(r.max_uses);
      return {
        id: r.id,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        maxUses: cap,
        devices: used.n,
        lastUsedAt: used.last,
        revokedAt: r.revoked_at,
        state: r.revoked_at ? "revoked" : r.expires_at <= now ? "expired" : cap !== null && used.n >= cap ? "used" : "active",
      };
    });
  }

  /** `opencmg token revoke-bulk ID`: the token registers no device from now on. */
  async revokeBulk(idInput: string): Promise<BulkToken> {
    const id = check("id", bulkId, idInput);
    const r = await this.ctx.db.updateTable("bulk_tokens").set({ revoked_at: iso(this.ctx.now()) }).where("id", "=", id).where("revoked_at", "is", null).executeTakeFirst();
    const found = (await this.listBulk()).find((b) => b.id === id);
    if (!found) throw new NotFoundError("id", `bulk token ${id}`);
    if (Number(r.numUpdatedRows) > 0) this.log().info(`Bulk registration token ${id} revoked.`);
    return found;
  }

  /**
   * A device (known by the thumbprint `jkt` of the key it proved) registers with bulk token `id`.
   * The same device again gets the client it got the first time; a new device gets `newClientId`,
   * while the token is valid, not revoked and under its cap. One transaction: two devices racing
   * for the last use cannot both have it.
   */
  async useBulk(idInput: string, jkt: string, newClientId: string): Promise<BulkUse> {
    const parsed = bulkId.safeParse(idInput);
    if (!parsed.success || !JKT.test(jkt)) return { ok: false, reason: "bulk_token_unknown" };
    const id = parsed.data;
    const now = iso(this.ctx.now());
    return writeTransaction(this.ctx.db, async (tx): Promise<BulkUse> => {
      const row = await tx.selectFrom("bulk_tokens").selectAll().where("id", "=", id).executeTakeFirst();
      if (!row) return { ok: false, reason: "bulk_token_unknown" };
      if (row.revoked_at) return { ok: false, reason: "bulk_token_revoked" };
      if (row.expires_at <= now) return { ok: false, reason: "bulk_token_expired" };
      const seen = await tx.selectFrom("bulk_token_uses").select("client_id").where("bulk_id", "=", id).where("jkt", "=", jkt).executeTakeFirst();
      if (seen) return { ok: true, clientId: seen.client_id, existing: true };
      if (row.max_uses !== null && row.max_uses !== undefined) {
        const n = await tx.selectFrom("bulk_token_uses").select((eb) => eb.fn.countAll<number>().as("n")).where("bulk_id", "=", id).executeTakeFirstOrThrow();
        if (Number(n.n) >= Number(row.max_uses)) return { ok: false, reason: "bulk_token_used", maxUses: Number(row.max_uses) };
      }
      await tx.insertInto("bulk_token_uses").values({ bulk_id: id, jkt, client_id: newClientId, used_at: now }).execute();
      return { ok: true, clientId: newClientId, existing: false };
    });
  }

  /**
   * Records that a directory ID token registered a device: false when it did before (a replay).
   * Kept until the token expires; the token is refused by its own expiry after that.
   */
  async recordIdTokenUse(useKey: string, expiresAt: Date): Promise<boolean> {
    const now = iso(this.ctx.now());
    // Forgetting the expired ones here keeps the table as small as the tokens still valid.
    await this.ctx.db.deleteFrom("id_token_uses").where("expires_at", "<", now).execute();
    const r = await this.ctx.db
      .insertInto("id_token_uses")
      .values({ use_key: useKey, client_id: null, used_at: now, expires_at: iso(expiresAt) })
      .onConflict((oc) => oc.column("use_key").doNothing())
      .returning("use_key")
      .executeTakeFirst();
    return r !== undefined;
  }

  /** The client an ID token registered (the log of a replay names it), once known. */
  async noteIdTokenClient(useKey: string, clientId: string): Promise<void> {
    await this.ctx.db.updateTable("id_token_uses").set({ client_id: clientId }).where("use_key", "=", useKey).execute();
  }

  async idTokenClient(useKey: string): Promise<string | null> {
    const r = await this.ctx.db.selectFrom("id_token_uses").select("client_id").where("use_key", "=", useKey).executeTakeFirst();
    return r?.client_id ?? null;
  }

  /** A client token: 90 days, bound to the client ID and its key's thumbprint. */
  async issueClientToken(clientId: string, jkt: string): Promise<{ token: string; expiresAt: string }> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(jkt)) throw new ValidationError("jkt", "must be an RFC 7638 SHA-256 key thumbprint (43 base64url characters)");
    const { token, expiresAt } = await this.sign(TOKEN_TYPES.client, { cnf: { jkt } }, clientId, CLIENT_TOKEN_LIFETIME_MS, randomUUID());
    return { token, expiresAt: iso(expiresAt) };
  }

  /**
   * What the instances of CMG `cmgName` check tokens against. Null before `site init` made a site
   * key (no key can be made, so no token can be valid).
   */
  async gatewayTrust(cmgName: string): Promise<TokenTrust | undefined> {
    if (!this.ctx.key) return undefined;
    let keys = await this.publicKeys();
    if (!keys.some(() => true)) {
      await this.signer();
      keys = await this.publicKeys();
    }
    const blocked = await this.ctx.db.selectFrom("clients").select("id").where("blocked", "=", 1).orderBy("blocked_at", "desc").limit(MAX_BLOCKED_CLIENTS).execute();
    const oidc = await this.directory.gatewayTrust();
    return { issuer: await this.issuer(), audience: cmgAudience(cmgName), keys, blocked: blocked.map((b) => b.id), origins: await this.origins(cmgName), ...(oidc ? { oidc } : {}) };
  }

  /**
   * The names devices reach CMG `cmgName` by, for the proofs' `htu`: its service FQDN (port 443,
   * a load balancer's), and each instance's client URL (the location answer's).
   */
  private async origins(cmgName: string): Promise<TokenOrigins> {
    const r = await this.ctx.db.selectFrom("cmgs").select(["service_fqdn", "instances", "settings"]).where("name", "=", cmgName.toLowerCase()).executeTakeFirst();
    if (!r) throw new NotFoundError("name", `CMG ${cmgName}`);
    const deploy = JSON.parse(r.settings) as CmgDeploySettings;
    const origin = (host: string, port: number) => new URL(`https://${host}:${port}`).origin;
    return { cmg: [origin(r.service_fqdn, 443)], instances: Array.from({ length: r.instances }, (_, i) => origin(deploy.publicHost, deploy.clientPortBase + (deploy.instanceAddresses?.[i] ? 0 : i))) };
  }
}
