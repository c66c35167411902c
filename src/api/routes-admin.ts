/** Who may use the admin API (named tokens) and what was done with it (the audit log). */
import { z } from "zod";
import type { ApiRoute } from "./route-kit.ts";
import { parseBody, parsedQuery, q, needing } from "./route-kit.ts";
import * as S from "./schemas.ts";
import { ADMIN_ROLES, PERMISSIONS, permissionsOf, readOnlyRole, ROLE_LABELS } from "../site/services/admin-roles.ts";
import { adminUserInput } from "../site/services/admin-users.ts";

const tokenBody = z.strictObject({
  name: z.string(),
  role: z.string().optional().describe(`the security role: ${ADMIN_ROLES.join(", ")} (default full-administrator)`),
  readOnly: z.boolean().optional().describe("true: a read-only-analyst (the older form of role)"),
});
const roleBody = z.strictObject({ role: z.string().describe(`one of ${ADMIN_ROLES.join(", ")}`) });
const whoami = z.object({ name: z.string(), role: z.enum(ADMIN_ROLES), roleLabel: z.string(), readOnly: z.boolean(), permissions: z.array(z.enum(PERMISSIONS)), source: z.enum(["token", "directory", "cli"]) });
const auditQuery = z.strictObject({
  since: q.time.describe("from this time (inclusive)"),
  until: q.time.describe("to this time (exclusive)"),
  actor: z.string().optional().describe("only this person: an admin token's name, a directory user's name, or a local user"),
  action: z.string().max(128, "must be at most 128 characters").optional().describe("only this action (proxies.set) or the actions of one service (proxies)"),
  object: z.string().optional().describe("only objects starting with this, e.g. server/scp01.contoso.com"),
  limit: q.limit(1000, 100).describe("at most this many per page (default 100)"),
  cursor: q.cursor.describe("the nextCursor of the previous page"),
});

export const ADMIN_ROUTES: ApiRoute[] = needing("security", [
  {
    method: "GET",
    path: "/api/v1/whoami",
    tag: "admin",
    summary: "The admin identity of this request: name, security role and what it permits",
    response: whoami,
    handle: async (_s, i) => {
      const role = i.actor.role ?? "full-administrator";
      return { name: i.actor.name, role, roleLabel: ROLE_LABELS[role], readOnly: readOnlyRole(role), permissions: [...permissionsOf(role)], source: i.identitySource ?? "cli" };
    },
  },
  { method: "GET", path: "/api/v1/admin-tokens", tag: "admin", summary: "Named admin tokens (never the tokens themselves)", response: z.array(S.token), handle: (s) => s.adminTokens.list() },
  { method: "POST", path: "/api/v1/admin-tokens", tag: "admin", summary: "Create a named admin token; the answer is the only time it is shown", body: tokenBody, response: S.newToken, status: 201, handle: (s, i) => { const b = parseBody(tokenBody, i.body); return s.adminTokens.create(b.name, { role: b.role, readOnly: b.readOnly }); } },
  { method: "PUT", path: "/api/v1/admin-tokens/:name/role", tag: "admin", summary: "Give a named admin token another security role (its next request has it)", body: roleBody, response: S.token, handle: (s, i) => s.adminTokens.setRole(i.params.name!, parseBody(roleBody, i.body).role) },
  { method: "GET", path: "/api/v1/admin-users", tag: "admin", summary: "Administrative users: the security roles of directory users (name claim) and groups (groups claim)", response: z.array(S.adminUser), handle: (s) => s.adminUsers.list() },
  { method: "POST", path: "/api/v1/admin-users", tag: "admin", summary: "Give a directory user or group a security role", body: adminUserInput, response: S.adminUser, status: 201, handle: (s, i) => s.adminUsers.add(parseBody(adminUserInput, i.body)) },
  { method: "PUT", path: "/api/v1/admin-users/:kind/:value/role", tag: "admin", summary: "Give a directory user or group another security role", body: roleBody, response: S.adminUser, handle: (s, i) => s.adminUsers.setRole(i.params.kind!, i.params.value!, parseBody(roleBody, i.body).role) },
  { method: "DELETE", path: "/api/v1/admin-users/:kind/:value", tag: "admin", summary: "Take a directory user's or group's role away (their console sessions end at their next request)", response: S.adminUser, handle: (s, i) => s.adminUsers.remove(i.params.kind!, i.params.value!) },
  { method: "DELETE", path: "/api/v1/admin-tokens/:name", tag: "admin", summary: "Revoke a named admin token (its next request gets 401)", response: S.token, handle: (s, i) => s.adminTokens.revoke(i.params.name!) },
  { method: "GET", path: "/api/v1/audit", tag: "admin", summary: "The audit log, newest first: who changed what, before and after (secrets redacted)", query: auditQuery, response: S.page(S.auditEntry), handle: (s, i) => s.audit.list(parsedQuery(auditQuery, i)) },
]);
