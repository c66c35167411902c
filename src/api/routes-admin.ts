/** Who may use the admin API (named tokens) and what was done with it (the audit log). */
import { z } from "zod";
import type { ApiRoute } from "./route-kit.ts";
import { parseBody, parsedQuery, q } from "./route-kit.ts";
import * as S from "./schemas.ts";

const tokenBody = z.strictObject({ name: z.string(), readOnly: z.boolean().optional() });
const auditQuery = z.strictObject({
  since: q.time.describe("from this time (inclusive)"),
  until: q.time.describe("to this time (exclusive)"),
  actor: z.string().optional().describe("only this admin token's name or local user"),
  object: z.string().optional().describe("only objects starting with this, e.g. server/scp01.contoso.com"),
  limit: q.limit(1000, 100).describe("at most this many per page (default 100)"),
  cursor: q.cursor.describe("the nextCursor of the previous page"),
});

export const ADMIN_ROUTES: ApiRoute[] = [
  { method: "GET", path: "/api/v1/whoami", tag: "admin", summary: "The admin identity of this request", response: z.object({ name: z.string(), readOnly: z.boolean() }), handle: async (_s, i) => ({ name: i.actor.name, readOnly: i.actor.readOnly === true }) },
  { method: "GET", path: "/api/v1/admin-tokens", tag: "admin", summary: "Named admin tokens (never the tokens themselves)", response: z.array(S.token), handle: (s) => s.adminTokens.list() },
  { method: "POST", path: "/api/v1/admin-tokens", tag: "admin", summary: "Create a named admin token; the answer is the only time it is shown", body: tokenBody, response: S.newToken, status: 201, handle: (s, i) => { const b = parseBody(tokenBody, i.body); return s.adminTokens.create(b.name, { readOnly: b.readOnly }); } },
  { method: "DELETE", path: "/api/v1/admin-tokens/:name", tag: "admin", summary: "Revoke a named admin token (its next request gets 401)", response: S.token, handle: (s, i) => s.adminTokens.revoke(i.params.name!) },
  { method: "GET", path: "/api/v1/audit", tag: "admin", summary: "The audit log, newest first: who changed what, before and after (secrets redacted)", query: auditQuery, response: S.page(S.auditEntry), handle: (s, i) => s.audit.list(parsedQuery(auditQuery, i)) },
];
