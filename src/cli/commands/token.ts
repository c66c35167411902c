/**
 * `opencmg token ...`: site-issued tokens for devices without a PKI certificate. A bulk
 * registration token is printed once and never stored (the site keeps its ID and expiry);
 * signing keys rotate with an overlap, and their private halves never leave the site database
 * (sealed with the site key).
 */
import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";
import { BULK_DEFAULT_MINUTES, BULK_MAX_MINUTES, BULK_MAX_USES } from "../../site/services/tokens.ts";

export function registerTokenCommands(program: Command, ctx: CliContext): void {
  const token = program.command("token").description("site-issued tokens: bulk registration tokens, signing keys");

  token
    .command("create-bulk")
    .description("a bulk registration token: registers any number of devices without a certificate while it is valid, each once (printed once, not stored)")
    .option("--lifetime <minutes>", `minutes it stays valid, 1 to ${BULK_MAX_MINUTES}`, String(BULK_DEFAULT_MINUTES))
    .option("--max-uses <n>", `most devices it registers, 1 to ${BULK_MAX_USES} (default: any number until it expires or is revoked)`)
    .action(async (o: { lifetime: string; maxUses?: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await s.services.tokens.createBulk({ lifetimeMinutes: o.lifetime, ...(o.maxUses !== undefined ? { maxUses: o.maxUses } : {}) });
        ctx.print(cmd, r, () =>
          keyValues({ id: r.id, "valid until": r.expiresAt, devices: r.maxUses === null ? "any number" : `at most ${r.maxUses}` }) +
            `\nThe token is shown this once and is not stored; give it to the device installer:\n  opencmg client install --mp https://CMG/CCM_Proxy_ServerAuth/<roleId> --token <TOKEN>\n\n${r.token}\n`,
        );
      });
    });

  token
    .command("list-bulk")
    .description("bulk registration tokens: ID, state, how many devices registered with each, expiry (never the tokens)")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.tokens.listBulk();
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["id", "state", "devices", "maxUses", "createdAt", "expiresAt", "lastUsedAt", "revokedAt"]));
      });
    });

  token
    .command("revoke-bulk <id>")
    .description("revoke a bulk registration token: it registers no device from now on")
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await s.services.tokens.revokeBulk(id);
        ctx.print(cmd, r, () => `Bulk registration token ${r.id} is ${r.state}.\n`);
      });
    });

  token
    .command("signing-keys")
    .description("the site's token signing keys: current, previous (still accepted), retired")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.tokens.signingKeys();
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["kid", "alg", "state", "createdAt", "retiredAt"]));
      });
    });

  token
    .command("rotate-signing-key")
    .description("a new signing key; the current one stays accepted until the next rotation (clients renew meanwhile)")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await s.services.tokens.rotateSigningKey();
        ctx.print(cmd, r, () => keyValues({ current: r.current, "still accepted": r.previous ?? "(none)", retired: r.retired.join(", ") || "(none)" }));
      });
    });
}
