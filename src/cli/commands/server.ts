import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { table } from "../output.ts";

export function registerServerCommands(program: Command, ctx: CliContext): void {
  const server = program.command("server").description("site system servers");
  server
    .command("add <fqdn>")
    .description("add a site system server")
    .option("--site <code>", "its site (default: the top-level site)")
    .option("--site-server", "this server is its site's site server")
    .action(async (fqdn: string, o: { site?: string; siteServer?: boolean }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const added = await s.services.servers.add({ fqdn, site: o.site, siteServer: o.siteServer });
        ctx.print(cmd, added, () => `Added site system server ${added.fqdn} to site ${added.siteCode}.\n`);
      });
    });
  server
    .command("list")
    .description("list site system servers")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.servers.list();
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["fqdn", "siteCode", "isSiteServer"]));
      });
    });
  server
    .command("remove <fqdn>")
    .description("remove a site system server that has no roles left")
    .action(async (fqdn: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        await s.services.servers.remove(fqdn);
        ctx.print(cmd, { removed: fqdn }, () => `Removed ${fqdn}.\n`);
      });
    });
}
