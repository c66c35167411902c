/**
 * Site-issued tokens over the admin API: the same service as `opencmg token` and `opencmg site
 * clients block`. A bulk registration token is in the answer of its creation only; signing keys
 * are listed without any key material.
 */
import { z } from "zod";
import { parseBody, type ApiRoute } from "./routes.ts";

export const bulkBody = z.strictObject({ lifetimeMinutes: z.number().int().optional() });

export const TOKEN_ROUTES: ApiRoute[] = [
  { method: "POST", path: "/api/v1/tokens/bulk", tag: "tokens", summary: "Create a bulk registration token (in this answer only; registers one device)", body: bulkBody, status: 201, handle: (s, i) => s.tokens.createBulk(parseBody(bulkBody, i.body ?? {})) },
  { method: "GET", path: "/api/v1/tokens/bulk", tag: "tokens", summary: "Bulk registration tokens: ID, expiry, used by, revoked (never the tokens)", handle: (s) => s.tokens.listBulk() },
  { method: "DELETE", path: "/api/v1/tokens/bulk/:id", tag: "tokens", summary: "Revoke a bulk registration token", handle: (s, i) => s.tokens.revokeBulk(i.params.id!) },
  { method: "GET", path: "/api/v1/tokens/signing-keys", tag: "tokens", summary: "The site's token signing keys: current, previous (still accepted), retired", handle: (s) => s.tokens.signingKeys() },
  { method: "POST", path: "/api/v1/tokens/signing-keys/rotate", tag: "tokens", summary: "A new signing key; the current one stays accepted until the next rotation", handle: (s) => s.tokens.rotateSigningKey() },
  { method: "PUT", path: "/api/v1/clients/:id/block", tag: "clients", summary: "Block a client (management points at once, CMG instances within a minute)", handle: (s, i) => s.clients.block(i.params.id!, true) },
  { method: "DELETE", path: "/api/v1/clients/:id/block", tag: "clients", summary: "Let a blocked client in again", handle: (s, i) => s.clients.block(i.params.id!, false) },
];
