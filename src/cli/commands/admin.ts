/**
 * `opencmg site token create|list|revoke` (named admin tokens) and `opencmg audit` (who changed
 * what, through the API or the CLI).
 */
import type { Command } from "commander";
import { ValidationError } from "../../errors.ts";
import type { AuditEntry } from "../../site/services/audit.ts";
import type { CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";
import { ADMIN_ROLES, ROLE_LABELS, type AdminRole } from "../../site/services/admin-roles.ts";
import type { AdminUserKind } from "../../site/services/admin-users.ts";

/** `2026-12-01T08:00:00Z`, or a duration back from now: `30m`, `12h`, `7d`. */
export function parseSince(value: string, now: Date): string {
  const m = /^(\d+)\s*([smhd])$/.exec(value.trim());
  if (m) return new Date(now.getTime() - Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as "s" | "m" | "h" | "d"]).toISOString();
  const t = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(t)) throw new ValidationError("since", "must be an ISO-8601 time (2026-12-01T08:00:00Z) or a duration back from now (30m, 12h, 7d)");
  return new Date(t).toISOString();
}

const short = (v: unknown): string => (v === null || v === undefined ? "-" : JSON.stringify(v).slice(0, 120));

export function registerAdminCommands(program: Command, ctx: CliContext): void {
  const site = program.commands.find((c) => c.name() === "site") ?? program.command("site");
  const token = site.command("token").description("named admin tokens for the admin API");
  token
    .command("create <name>")
    .description("create a named admin token and print it (once: the site keeps only its hash)")
    .option("--role <role>", `its security role: ${ADMIN_ROLES.join(", ")} (default full-administrator)`)
    .option("--read-only", "the same as --role read-only-analyst: reads only (403 on any change)")
    .action(async (name: string, o: { role?: string; readOnly?: boolean }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const t = await s.services.adminTokens.create(name, { role: o.role, readOnly: o.readOnly === true });
        ctx.print(cmd, t, () => keyValues({ name: t.name, role: t.role, token: t.token }) + "The token is shown this once; keep it safe.\n");
      });
    });
  token
    .command("list")
    .description("the named admin tokens (never the tokens themselves)")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.adminTokens.list();
        ctx.print(cmd, list, () => table(list.map((t) => ({ name: t.name, role: t.role, createdAt: t.createdAt, revokedAt: t.revokedAt })), ["name", "role", "createdAt", "revokedAt"]));
      });
    });
  token
    .command("set-role <name> <role>")
    .description(`give a named admin token another security role (${ADMIN_ROLES.join(", ")})`)
    .action(async (name: string, role: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const t = await s.services.adminTokens.setRole(name, role);
        ctx.print(cmd, t, () => `Admin token ${t.name} is now ${t.role}.\n`);
      });
    });
  token
    .command("revoke <name>")
    .description("revoke a named admin token: its next request gets 401")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const t = await s.services.adminTokens.revoke(name);
        ctx.print(cmd, t, () => `Revoked admin token ${t.name} (${t.revokedAt}).\n`);
      });
    });

  const users = program.command("admin-users").description("administrative users: security roles of directory users (name claim) and groups (groups claim) who sign in to the console");
  users
    .command("list")
    .description("the directory users and groups with a role")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.adminUsers.list();
        ctx.print(cmd, list, () => table(list.map((u) => ({ kind: u.kind, value: u.value, role: u.role, updatedAt: u.updatedAt })), ["kind", "value", "role", "updatedAt"]));
      });
    });
  users
    .command("add <kind> <value> <role>")
    .description(`give a directory user (kind user: the name claim's value) or group (kind group: a groups claim value) a role: ${ADMIN_ROLES.join(", ")}`)
    .action(async (kind: string, value: string, role: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const u = await s.services.adminUsers.add({ kind: kind as AdminUserKind, value, role: role as AdminRole });
        ctx.print(cmd, u, () => `The ${u.kind} ${u.value} is a ${ROLE_LABELS[u.role]}.\n`);
      });
    });
  users
    .command("set-role <kind> <value> <role>")
    .description("give a directory user or group another role")
    .action(async (kind: string, value: string, role: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const u = await s.services.adminUsers.setRole(kind, value, role);
        ctx.print(cmd, u, () => `The ${u.kind} ${u.value} is now a ${ROLE_LABELS[u.role]}.\n`);
      });
    });
  users
    .command("remove <kind> <value>")
    .description("take a directory user's or group's role away (their console sessions end at their next request)")
    .action(async (kind: string, value: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const u = await s.services.adminUsers.remove(kind, value);
        ctx.print(cmd, u, () => `The ${u.kind} ${u.value} has no role any more.\n`);
      });
    });

  program
    .command("audit")
    .description("the audit log: every change made through the admin API or the CLI, newest first, with who made it and the object before and after (secrets redacted)")
    .option("--since <time>", "from this time: ISO-8601, or back from now (30m, 12h, 7d)")
    .option("--actor <name>", "only this person: an admin token's name, a directory user's name, or a local user")
    .option("--action <action>", "only this action (proxies.set) or a service's actions (proxies)")
    .option("--object <prefix>", "only objects starting with this, e.g. server/scp01.contoso.com")
    .option("--limit <n>", "at most this many", "100")
    .action(async (o: { since?: string; actor?: string; action?: string; object?: string; limit: string }, cmd: Command) => {
      if (!/^\d+$/.test(o.limit) || Number(o.limit) < 1 || Number(o.limit) > 10000) throw new ValidationError("limit", "must be a whole number from 1 to 10000");
      await ctx.withSite(cmd, async (s) => {
        const since = o.since === undefined ? undefined : parseSince(o.since, s.ctx.now());
        const page = await s.services.audit.list({ since, actor: o.actor, action: o.action, object: o.object, limit: Number(o.limit) });
        ctx.print(cmd, page.items, () => table(page.items.map((e: AuditEntry) => ({ time: e.time, actor: e.actor, via: e.via, action: e.action, object: e.object, before: short(e.before), after: short(e.after) })), ["time", "actor", "via", "action", "object", "before", "after"]));
      });
    });
}
