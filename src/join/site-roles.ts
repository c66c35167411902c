/**
 * The join API's answers to a joined management point and software update point (the site's side).
 * Neither host holds the site key nor the site CA's key: the site issues their server certificates
 * for the host key they hold, signs the client tokens a management point hands out (only for a
 * client the site knows, bound to the key the site recorded for it, never blocked), and answers a
 * software update point its role settings and the synchronised update metadata.
 * Each route needs the role on the server presenting the host certificate: `403` once it is gone.
 */
import { z } from "zod";
import { ForbiddenError } from "../errors.ts";
import type { SiteServices } from "../site/site.ts";
import type { ServedRoleKind } from "../site/services/joins.ts";
import { check } from "../site/validation.ts";

/** What a joined management point asks the site to sign. */
export const clientTokenRequestSchema = z.strictObject({
  clientId: z.string().min(1).max(128),
  jkt: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be an RFC 7638 SHA-256 key thumbprint (43 base64url characters)"),
});
export const clientTokenAnswerSchema = z.strictObject({ token: z.string().min(1).max(8192), expiresAt: z.string() });
export type ClientTokenAnswerBody = z.infer<typeof clientTokenAnswerSchema>;

export const roleCertificateRequestSchema = z.strictObject({ role: z.enum(["management-point", "software-update-point"]) });
export const roleCertificateAnswerSchema = z.strictObject({ certificate: z.string().min(1), names: z.array(z.string()) });

const updateIdRule = z.string().min(1).max(128).regex(/^[A-Za-z0-9._-]+$/, "must be an update ID (letters, digits, dot, underscore or hyphen)");

export async function needRole(s: SiteServices, fqdn: string, kind: ServedRoleKind): Promise<number> {
  const role = await s.roles.findOn(fqdn, kind);
  if (!role) throw new ForbiddenError(`${fqdn} has no ${kind} role at this site`);
  return role.id;
}

/** `POST /management-point/client-token`: a client token for a known client and the key recorded for it. */
export async function clientTokenFor(s: SiteServices, fqdn: string, body: unknown): Promise<ClientTokenAnswerBody> {
  await needRole(s, fqdn, "management-point");
  const req = check("clientToken", clientTokenRequestSchema, body);
  const client = await s.clients.get(req.clientId);
  // The management point bound the key before asking (clients.bindTokenKey): the site signs for that key only.
  if (client.blocked) throw new ForbiddenError(`client ${client.id} is blocked: the site issues it no token`);
  if (!client.approved) throw new ForbiddenError(`client ${client.id} is not approved: the site issues it no token`);
  if (client.tokenKey !== req.jkt) throw new ForbiddenError(`client ${client.id} is bound to ${client.tokenKey === null ? "no key" : `key ${client.tokenKey}`}, not ${req.jkt}: the site issues no token for that key`);
  const issued = await s.tokens.issueClientToken(client.id, req.jkt);
  return { token: issued.token, expiresAt: issued.expiresAt };
}

/**
 * `GET /software-update-point`: the role's ID and settings (upstream source, internal URL, CMG
 * traffic). Synchronisation runs at the site (`sup sync`, through this server's proxy rules), so no
 * proxy account travels to the host.
 */
export async function softwareUpdatePointConfig(s: SiteServices, fqdn: string): Promise<unknown> {
  const roleId = await needRole(s, fqdn, "software-update-point");
  return { roleId, settings: await s.roles.softwareUpdatePoint(fqdn) };
}

/** `GET /software-update-point/updates[?id=ID]`: the synchronised updates, or one update's files. */
export async function softwareUpdatePointUpdates(s: SiteServices, fqdn: string, id: string | null): Promise<unknown> {
  await needRole(s, fqdn, "software-update-point");
  if (id === null) return { updates: await s.updates.list() };
  return { files: await s.updates.filesOf(check("id", updateIdRule, id)) };
}
