/**
 * Site-issued tokens over the admin API: the same service as `opencmg token` and `opencmg site
 * clients block`. A bulk registration token is in the answer of its creation only; signing keys
 * are listed without any key material.
 */
import { z } from "zod";
import { emptyBody, needing } from "./route-kit.ts";
import { parseBody, type ApiRoute } from "./routes.ts";
import * as S from "./schemas.ts";

export const bulkBody = z.strictObject({ lifetimeMinutes: z.number().int().optional(), maxUses: z.number().int().optional().describe("most devices it registers; absent: any number until it expires or is revoked") });
const joinTokenBody = z.strictObject({ lifetimeMinutes: z.number().int().optional().describe("minutes it stays valid, 1 to 10080 (default 60)") });
const approveKeyBody = z.strictObject({ jkt: z.string().describe("RFC 7638 thumbprint of the new key, as the refusal names it") });

export const TOKEN_ROUTES: ApiRoute[] = needing("security", [
  { method: "POST", path: "/api/v1/tokens/bulk", tag: "tokens", summary: "Create a bulk registration token (in this answer only; registers any number of devices, each once, until it expires or is revoked, or maxUses of them)", body: bulkBody, response: S.newBulkToken, status: 201, handle: (s, i) => s.tokens.createBulk(parseBody(bulkBody, i.body ?? {})) },
  { method: "GET", path: "/api/v1/tokens/bulk", tag: "tokens", summary: "Bulk registration tokens: ID, state, devices registered with each, expiry (never the tokens)", response: z.array(S.bulkToken), handle: (s) => s.tokens.listBulk() },
  { method: "DELETE", path: "/api/v1/tokens/bulk/:id", tag: "tokens", summary: "Revoke a bulk registration token", response: S.bulkToken, handle: (s, i) => s.tokens.revokeBulk(i.params.id!) },
  { method: "GET", path: "/api/v1/tokens/signing-keys", tag: "tokens", summary: "The site's token signing keys: current, previous (still accepted), retired", response: z.array(S.signingKey), handle: (s) => s.tokens.signingKeys() },
  { method: "POST", path: "/api/v1/tokens/signing-keys/rotate", tag: "tokens", summary: "A new signing key; the current one stays accepted until the next rotation", body: emptyBody, response: S.keyRotation, handle: (s, i) => (parseBody(emptyBody, i.body), s.tokens.rotateSigningKey()) },
  { method: "POST", path: "/api/v1/servers/:fqdn/join-tokens", tag: "tokens", summary: "Create a one-time join token for a site system server (in this answer only, with the site CA's SHA-256 to pin; joins once until it expires or is revoked)", body: joinTokenBody, response: S.newJoinToken, status: 201, handle: (s, i) => s.joins.createToken({ server: i.params.fqdn!, ...parseBody(joinTokenBody, i.body ?? {}) }) },
  { method: "GET", path: "/api/v1/join-tokens", tag: "tokens", summary: "Join tokens: ID, server, state (active, joined, revoked, expired), expiry, the host certificate issued with each (never the tokens)", response: z.array(S.joinToken), handle: (s) => s.joins.listTokens() },
  { method: "DELETE", path: "/api/v1/join-tokens/:id", tag: "tokens", summary: "Revoke a join token: unused, it joins nothing; used, its server is answered no configuration any more", response: S.joinToken, handle: (s, i) => s.joins.revokeToken(i.params.id!) },
  { method: "PUT", needs: "infrastructure", path: "/api/v1/clients/:id/block", tag: "clients", summary: "Block a client (management points at once, CMG instances within a minute)", body: emptyBody, response: S.client, handle: (s, i) => (parseBody(emptyBody, i.body), s.clients.block(i.params.id!, true)) },
  { method: "POST", needs: "infrastructure", path: "/api/v1/clients/:id/approve-key", tag: "clients", summary: "Let a client replace its bound token key by this one at its next registration", body: approveKeyBody, response: S.client, handle: (s, i) => s.clients.approveKey(i.params.id!, parseBody(approveKeyBody, i.body).jkt) },
  { method: "DELETE", needs: "infrastructure", path: "/api/v1/clients/:id/block", tag: "clients", summary: "Let a blocked client in again", response: S.client, handle: (s, i) => s.clients.block(i.params.id!, false) },
]);
