/**
 * Joining a site system server: an administrator creates a one-time join token for a server
 * (`opencmg server join-token create FQDN`; shown once, the site keeps its SHA-256), the server
 * sends it with a certificate request for a key it made itself (`opencmg server join`), and the
 * site CA issues the server's host certificate (client and server authentication, CN and SAN its
 * FQDN). From then on the server is known by that certificate: the site answers its role
 * configuration while the token it joined with is not revoked and the server still has a role.
 */
import { isIP } from "node:net";
import { createHash, randomBytes, randomUUID, timingSafeEqual, X509Certificate } from "node:crypto";
import { z } from "zod";
import { NotFoundError, OpenCmgError, ValidationError } from "../../errors.ts";
import { LOG_FILES } from "../../logs/files.ts";
import type { SitePki } from "../site-pki.ts";
import { check, fqdn as fqdnRule } from "../validation.ts";
import { iso, type ServiceContext } from "./context.ts";
import type { ServersService } from "./servers.ts";
import type { RolesService } from "./roles.ts";

/** The roles a joined server serves clients with, over a server certificate of the site CA. */
export type ServedRoleKind = "management-point" | "software-update-point";

export const JOIN_DEFAULT_MINUTES = 60;
export const JOIN_MAX_MINUTES = 7 * 24 * 60;
const HOST_CERT_DAYS = 365;

/** A join token as the site shows it (never the token): the API's schema is this one. */
export const joinTokenView = z.object({
  id: z.string(),
  server: z.string(),
  createdAt: z.string(),
  expiresAt: z.string(),
  usedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  certSerial: z.string().nullable().describe("the host certificate issued with it"),
  state: z.enum(["active", "joined", "revoked", "expired"]).describe("active: may join; joined: used, its server known by its certificate; revoked; expired (never used)"),
});
export type JoinTokenView = z.output<typeof joinTokenView>;

export const createdJoinToken = z.object({
  id: z.string(),
  server: z.string(),
  token: z.string().describe("shown this once"),
  expiresAt: z.string(),
  siteCaSha256: z.string().describe("SHA-256 of the site CA certificate (DER, hex): the joining server pins it"),
});
export type CreatedJoinToken = z.output<typeof createdJoinToken>;

export interface JoinResult {
  server: string;
  certPem: string;
  caPem: string;
}

const lifetime = z.preprocess(
  (v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z
    .number({ error: `must be a whole number of minutes from 1 to ${JOIN_MAX_MINUTES}` })
    .int(`must be a whole number of minutes from 1 to ${JOIN_MAX_MINUTES}`)
    .min(1, `must be from 1 to ${JOIN_MAX_MINUTES} minutes`)
    .max(JOIN_MAX_MINUTES, `must be from 1 to ${JOIN_MAX_MINUTES} minutes (7 days)`),
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const tokenId = z.string().trim().toLowerCase().regex(UUID, "must be a join token ID (a UUID, as `server join-token list` shows)");
/** `<id>.<secret>`: the ID finds the row, the secret is compared with its hash. */
const tokenRule = z.string().trim().regex(/^[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}$/, "must be a join token as `server join-token create` printed it");
export const joinRequest = z.strictObject({
  token: z.string().max(200, "at most 200 characters"),
  csr: z.string().min(1, "is required").max(16_384, "at most 16384 characters"),
  server: z.string().optional(),
});
export type JoinRequest = z.infer<typeof joinRequest>;

const hashOf = (secret: string): string => createHash("sha256").update(secret).digest("hex");

/** SHA-256 of a certificate's DER, lowercase hex (what `--site-ca-sha256` takes). */
export function certSha256(certPem: string): string {
  return createHash("sha256").update(new X509Certificate(certPem).raw).digest("hex");
}

export class JoinsService {
  constructor(
    private readonly ctx: ServiceContext,
    private readonly servers: ServersService,
    private readonly pki: () => Promise<SitePki>,
    private readonly roles: RolesService,
  ) {}

  private log() {
    return this.ctx.logs.component(LOG_FILES.sitecomp);
  }

  /** `opencmg server join-token create FQDN`: the token is returned this once; the site keeps its hash. */
  async createToken(input: { server: string; lifetimeMinutes?: unknown }): Promise<CreatedJoinToken> {
    const fqdn = check("server", fqdnRule, input.server);
    const minutes = input.lifetimeMinutes === undefined ? JOIN_DEFAULT_MINUTES : check("lifetime", lifetime, input.lifetimeMinutes);
    await this.servers.get(fqdn); // a server the site knows (opencmg server add)
    const id = randomUUID();
    const secret = randomBytes(32).toString("base64url");
    const now = this.ctx.now();
    const expiresAt = iso(new Date(now.getTime() + minutes * 60_000));
    await this.ctx.db.insertInto("join_tokens").values({ id, server_fqdn: fqdn, token_hash: hashOf(secret), created_at: iso(now), expires_at: expiresAt, used_at: null, revoked_at: null, cert_serial: null, cert_not_after: null }).execute();
    this.log().info(`Join token ${id} created for ${fqdn}, valid until ${expiresAt}.`);
    return { id, server: fqdn, token: `${id}.${secret}`, expiresAt, siteCaSha256: certSha256((await this.pki()).caPem) };
  }

  async listTokens(serverInput?: string): Promise<JoinTokenView[]> {
    let q = this.ctx.db.selectFrom("join_tokens").selectAll();
    if (serverInput !== undefined) q = q.where("server_fqdn", "=", check("server", fqdnRule, serverInput));
    const now = iso(this.ctx.now());
    const rows = await q.orderBy("created_at", "desc").execute();
    return rows.map((r) => ({
      id: r.id,
      server: r.server_fqdn,
      createdAt: r.created_at,
      expiresAt: r.expires_at,
      usedAt: r.used_at,
      revokedAt: r.revoked_at,
      certSerial: r.cert_serial,
      state: r.revoked_at ? "revoked" : r.used_at ? "joined" : r.expires_at <= now ? "expired" : "active",
    }));
  }

  async getToken(idInput: string): Promise<JoinTokenView> {
    const id = check("id", tokenId, idInput);
    const found = (await this.listTokens()).find((t) => t.id === id);
    if (!found) throw new NotFoundError("id", `join token ${id}`);
    return found;
  }

  /**
   * `opencmg server join-token revoke ID`: an unused token joins nothing; a used one ends its
   * server's membership (the site answers that certificate nothing more; it joins again with a new token).
   */
  async revokeToken(idInput: string): Promise<JoinTokenView> {
    const id = check("id", tokenId, idInput);
    const r = await this.ctx.db.updateTable("join_tokens").set({ revoked_at: iso(this.ctx.now()) }).where("id", "=", id).where("revoked_at", "is", null).executeTakeFirst();
    const found = await this.getToken(id);
    if (Number(r.numUpdatedRows) > 0) this.log().warn(`Join token ${id} of ${found.server} revoked${found.usedAt ? `: the host certificate ${found.certSerial} issued with it is answered no more` : ""}.`);
    return found;
  }

  /**
   * A server joins: its one-time token (checked against the hash, once), its certificate request.
   * Returns the host certificate the site CA issued for the request's key, and the site CA.
   */
  async join(input: unknown): Promise<JoinResult> {
    const req = check("join", joinRequest, input);
    const parsed = tokenRule.safeParse(req.token);
    if (!parsed.success) throw refused("JOIN_TOKEN_UNKNOWN", "the join token is not one this site issued");
    const [id, secret] = parsed.data.split(".") as [string, string];
    const row = await this.ctx.db.selectFrom("join_tokens").selectAll().where("id", "=", id).executeTakeFirst();
    const given = Buffer.from(hashOf(secret), "hex");
    if (!row || !timingSafeEqual(given, Buffer.from(row.token_hash, "hex"))) throw refused("JOIN_TOKEN_UNKNOWN", "the join token is not one this site issued");
    if (row.revoked_at) throw refused("JOIN_TOKEN_REVOKED", `join token ${id} was revoked`);
    if (row.used_at) throw refused("JOIN_TOKEN_USED", `join token ${id} was used already (each joins once): create another with opencmg server join-token create ${row.server_fqdn}`);
    const now = this.ctx.now();
    if (row.expires_at <= iso(now)) throw refused("JOIN_TOKEN_EXPIRED", `join token ${id} expired at ${row.expires_at}`);
    if (req.server !== undefined && check("server", fqdnRule, req.server) !== row.server_fqdn) throw new ValidationError("server", `the join token is for ${row.server_fqdn}, not ${req.server}`);
    await this.servers.get(row.server_fqdn);
    const { issueCertForKey, verifiedCsrKey } = await import("../../pki/issue.ts");
    const publicKey = await verifiedCsrKey(req.csr);
    const pki = await this.pki();
    const cert = await issueCertForKey({ issuer: pki.ca(), publicKey, commonName: row.server_fqdn, dnsNames: [row.server_fqdn], usage: "server+client", notAfter: new Date(now.getTime() + HOST_CERT_DAYS * 86_400_000) });
    const notAfter = iso(new Date(new X509Certificate(cert.certPem).validTo));
    // Only the first of two racing uses marks it.
    const r = await this.ctx.db.updateTable("join_tokens").set({ used_at: iso(now), cert_serial: cert.serialHex, cert_not_after: notAfter }).where("id", "=", id).where("used_at", "is", null).where("revoked_at", "is", null).executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) throw refused("JOIN_TOKEN_USED", `join token ${id} was used already (each joins once)`);
    this.log().info(`${row.server_fqdn} joined the site with join token ${id}: host certificate ${cert.serialHex} issued, valid until ${notAfter}.`);
    return { server: row.server_fqdn, certPem: cert.certPem, caPem: pki.caPem };
  }

  /**
   * The server certificate of a joined server's management point or software update point, for
   * the key it holds (its host key): CN and SAN its FQDN, and the host of the role's internal URL
   * (a name or an address), which the connection points verify. Refused once the role is gone.
   */
  async roleCertificateFor(fqdnInput: string, kind: ServedRoleKind, publicKeyDer: Uint8Array): Promise<{ certPem: string; serial: string; names: string[] }> {
    const fqdn = check("fqdn", fqdnRule, fqdnInput);
    const role = await this.roles.findOn(fqdn, kind);
    if (!role || (role.kind !== "management-point" && role.kind !== "software-update-point")) throw refused("ROLE_REMOVED", `${fqdn} has no ${kind} role at this site`);
    const internal = role.settings.internalUrl ? new URL(role.settings.internalUrl).hostname.replace(/^\[|\]$/g, "").toLowerCase() : undefined;
    const dnsNames = [...new Set([fqdn, ...(internal !== undefined && isIP(internal) === 0 ? [internal] : [])])];
    const ipAddresses = internal !== undefined && isIP(internal) !== 0 ? [internal] : [];
    const pki = await this.pki();
    const { issueCertForKey } = await import("../../pki/issue.ts");
    const cert = await issueCertForKey({ issuer: pki.ca(), publicKey: Uint8Array.from(publicKeyDer), commonName: fqdn, dnsNames, ipAddresses, usage: "server", notAfter: new Date(this.ctx.now().getTime() + HOST_CERT_DAYS * 86_400_000) });
    const names = [...dnsNames, ...ipAddresses];
    this.log().info(`${kind} server certificate of joined server ${fqdn} issued for its own key: serial ${cert.serialHex}, for ${names.join(", ")}.`);
    return { certPem: cert.certPem, serial: cert.serialHex, names };
  }

  /**
   * The server a host certificate (already verified against the site CA by TLS) belongs to, while
   * the token it joined with is not revoked and the certificate has not ended; else refused.
   */
  async joinedServer(certSerial: string, commonName: string): Promise<string> {
    const serial = certSerial.replace(/:/g, "").toUpperCase();
    const row = await this.ctx.db.selectFrom("join_tokens").selectAll().where("cert_serial", "=", serial).executeTakeFirst();
    if (!row || row.server_fqdn !== commonName.toLowerCase()) throw refused("NOT_JOINED", `certificate ${serial} (${commonName}) is not the host certificate of a joined server`);
    if (row.revoked_at) throw refused("JOIN_REVOKED", `${row.server_fqdn}'s join (token ${row.id}) was revoked: join again with a new token`);
    if (row.cert_not_after && row.cert_not_after <= iso(this.ctx.now())) throw refused("JOIN_EXPIRED", `${row.server_fqdn}'s host certificate ended: join again with a new token`);
    return row.server_fqdn;
  }
}

function refused(code: string, message: string): OpenCmgError {
  return new OpenCmgError("forbidden", code, message);
}
