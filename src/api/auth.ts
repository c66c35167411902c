/**
 * Who an admin API request is. An authenticator resolves a request to an admin identity (name,
 * read-only) or to nothing; the API tries its authenticators in order. The admin token one is
 * here; a console adds one for its session cookie (and checks its CSRF token itself).
 */
import type { FastifyRequest } from "fastify";
import type { AdminIdentity } from "../site/services/admin-tokens.ts";
import type { OpenedSite } from "../site/site.ts";

export type Authenticator = (req: FastifyRequest) => Promise<AdminIdentity | undefined>;

/** `Authorization: Bearer <token>`: a named admin token that is not revoked. */
export function bearerToken(site: Pick<OpenedSite, "services">): Authenticator {
  return async (req) => {
    const h = req.headers.authorization;
    const token = h?.startsWith("Bearer ") ? h.slice(7).trim() : undefined;
    return token ? site.services.adminTokens.verify(token) : undefined;
  };
}
