/**
 * `opencmg site token create|list|revoke` (named admin tokens) and `opencmg audit` (who changed
 * what, through the API or the CLI).
 */
import type { Command } from "commander";
import { ValidationError } from "../../errors.ts";
import type { AuditEntry } from "../../site/services/audit.ts";
import type { CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";

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
    .option("--read-only", "the token may read but not change anything (403 on any change)")
    .action(async (name: string, o: { readOnly?: boolean }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const t = await s.services.adminTokens.create(name, { readOnly: o.readOnly === true });
        ctx.print(cmd, t, () => keyValues({ name: t.name, "read-only": t.readOnly ? "yes" : "no", token: t.token }) + "The token is shown this once; keep it safe.\n");
      });
    });
  token
    .command("list")
    .description("the named admin tokens (never the tokens themselves)")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.adminTokens.list();
        ctx.print(cmd, list, () => table(list.map((t) => ({ name: t.name, readOnly: t.readOnly ? "yes" : "no", createdAt: t.createdAt, revokedAt: t.revokedAt })), ["name", "readOnly", "createdAt", "revokedAt"]));
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

  program
    .command("audit")
    .description("the audit log: every change made through the admin API or the CLI, newest first, with who made it and the object before and after (secrets redacted)")
    .option("--since <time>", "from this time: ISO-8601, or back from now (30m, 12h, 7d)")
    .option("--actor <name>", "only this admin token's name or local user")
    .option("--object <prefix>", "only objects starting with this, e.g. server/scp01.contoso.com")
    .option("--limit <n>", "at most this many", "100")
    .action(async (o: { since?: string; actor?: string; object?: string; limit: string }, cmd: Command) => {
      if (!/^\d+$/.test(o.limit) || Number(o.limit) < 1 || Number(o.limit) > 10000) throw new ValidationError("limit", "must be a whole number from 1 to 10000");
      await ctx.withSite(cmd, async (s) => {
        const since = o.since === undefined ? undefined : parseSince(o.since, s.ctx.now());
        const page = await s.services.audit.list({ since, actor: o.actor, object: o.object, limit: Number(o.limit) });
        ctx.print(cmd, page.items, () => table(page.items.map((e: AuditEntry) => ({ time: e.time, actor: e.actor, via: e.via, action: e.action, object: e.object, before: short(e.before), after: short(e.after) })), ["time", "actor", "via", "action", "object", "before", "after"]));
      });
    });
}
