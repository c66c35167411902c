/**
 * Security roles, as the platform has them: what an administrator (a named token, a directory user
 * or a directory group) may do. Each admin API route declares the permission it needs
 * (src/api/route-kit.ts); a role grants a set of permissions.
 *
 * - read: see anything (never a secret).
 * - infrastructure: servers, roles, proxies and their accounts, CMGs, endpoints, clients, updates,
 *   the site settings that are not of security.
 * - security: admin tokens, administrative users, device tokens and join tokens, the settings of
 *   directory sign-in.
 */
import { z } from "zod";

export const ADMIN_ROLES = ["full-administrator", "infrastructure-administrator", "read-only-analyst"] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];
export const PERMISSIONS = ["read", "infrastructure", "security"] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ROLE_LABELS: Record<AdminRole, string> = {
  "full-administrator": "Full Administrator",
  "infrastructure-administrator": "Infrastructure Administrator",
  "read-only-analyst": "Read-only Analyst",
};

const GRANTS: Record<AdminRole, readonly Permission[]> = {
  "full-administrator": ["read", "infrastructure", "security"],
  "infrastructure-administrator": ["read", "infrastructure"],
  "read-only-analyst": ["read"],
};

const ROLE_RULE = `must be one of ${ADMIN_ROLES.join(", ")}`;
export const adminRole = z.enum(ADMIN_ROLES, { error: ROLE_RULE });

export function permissionsOf(role: AdminRole): readonly Permission[] {
  return GRANTS[role];
}

export function allows(role: AdminRole, need: Permission): boolean {
  return GRANTS[role].includes(need);
}

/** The role that grants the most of several (a user in two groups gets the larger role). */
export function strongest(roles: readonly AdminRole[]): AdminRole | undefined {
  let best: AdminRole | undefined;
  for (const r of roles) if (best === undefined || GRANTS[r].length > GRANTS[best].length) best = r;
  return best;
}

/** True when the role may change nothing (the services refuse it any write). */
export const readOnlyRole = (role: AdminRole): boolean => !allows(role, "infrastructure");
