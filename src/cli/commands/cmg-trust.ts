/**
 * What the gateway instances trust: `cmg settings-keys`, `cmg rotate-settings-key`, and the
 * connection point certificates (`connection-point certificates`, `connection-point revoke`).
 */
import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";

export function registerSettingsKeyCommands(cmg: Command, ctx: CliContext): void {
  cmg
    .command("settings-keys")
    .description("the site's settings-signing keys (the instances apply only settings these signed)")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const keys = await s.services.cmgTrust.settingsKeys();
        ctx.print(cmd, keys, () => table(keys.map((k) => ({ kid: k.kid, alg: k.alg, state: k.state, created: k.createdAt, retired: k.retiredAt ?? "" })), ["kid", "alg", "state", "created", "retired"]));
      });
    });

  cmg
    .command("rotate-settings-key")
    .description("a new settings-signing key; the current one keeps signing beside it until the next rotation (instances learn the new key from a document the old one signed)")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await s.services.cmgTrust.rotateSettingsKey();
        ctx.print(cmd, r, () => keyValues({ current: r.current, "still signing": r.previous ?? "(none)", retired: r.retired.join(", ") || "(none)" }));
      });
    });
}

export function registerConnectionPointCertCommands(cp: Command, ctx: CliContext): void {
  cp.command("certificates")
    .description("the tunnel certificates the site issued to connection points, and whether they are revoked")
    .option("--server <fqdn>", "only those of this server")
    .action(async (o: { server?: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.cmgTrust.connectionPointCertificates(o.server);
        ctx.print(cmd, list, () => table(list.map((c) => ({ server: c.fqdn, serial: c.serial, state: c.state, notAfter: c.notAfter, revoked: c.revokedAt ? `${c.revokedAt} (${c.revokedReason ?? ""})` : "" })), ["server", "serial", "state", "notAfter", "revoked"]));
      });
    });

  cp.command("revoke")
    .description("revoke a connection point's tunnel certificate(s): the instances close its tunnels with the next settings push and refuse it from then on")
    .requiredOption("--server <fqdn>", "the server whose connection point certificate(s) to revoke")
    .option("--serial <hex>", "only this certificate (default: every unrevoked one of the server)")
    .option("--reason <text>", "why, for the record")
    .action(async (o: { server: string; serial?: string; reason?: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.cmgTrust.revokeConnectionPoint(o.server, { serial: o.serial, reason: o.reason });
        ctx.print(cmd, list, () => `Revoked ${list.map((c) => c.serial).join(", ")} of ${o.server}. If the server keeps its connection point role, restart its connection point: it gets a new certificate.\n`);
      });
    });
}
