import type { Command } from "commander";
import type { RoleOptions } from "../../site/services/roles.ts";
import type { CliContext } from "../context.ts";
import { table } from "../output.ts";

function roleOptions(cmd: Command): Command {
  return cmd
    .option("--allow-cmg-traffic", "allow cloud management gateway traffic (management point, software update point)")
    .option("--no-allow-cmg-traffic", "do not allow cloud management gateway traffic")
    .option("--use-proxy-for-sync", "software update point: use the proxy when synchronizing software updates")
    .option("--no-use-proxy-for-sync", "software update point: synchronize directly")
    .option("--use-proxy-for-adr", "software update point: use the proxy for automatic deployment rule downloads")
    .option("--no-use-proxy-for-adr", "software update point: ADR downloads go directly")
    .option("--connected-cache", "distribution point: enable connected cache")
    .option("--no-connected-cache", "distribution point: disable connected cache")
    .option("--internal-url <url>", "management/software update point: where the CMG connection point forwards (default https://FQDN)")
    .option("--upstream-url <url>", "software update point: the upstream update source")
    .option("--update-feed-url <url>", "service connection point: the product update feed")
    .option("--cmg <name>", "CMG connection point: the CMG it serves");
}

function pick(o: Record<string, unknown>): RoleOptions {
  return {
    allowCmgTraffic: o.allowCmgTraffic as boolean | undefined,
    useProxyForSync: o.useProxyForSync as boolean | undefined,
    useProxyForAdr: o.useProxyForAdr as boolean | undefined,
    connectedCache: o.connectedCache as boolean | undefined,
    internalUrl: o.internalUrl as string | undefined,
    upstreamUrl: o.upstreamUrl as string | undefined,
    updateFeedUrl: o.updateFeedUrl as string | undefined,
    cmgName: o.cmg as string | undefined,
  };
}

export function registerRoleCommands(program: Command, ctx: CliContext): void {
  const role = program.command("role").description("site system roles on servers");
  roleOptions(role.command("add <fqdn> <role>").description("install a role on a server")).action(async (fqdn: string, kind: string, o: Record<string, unknown>, cmd: Command) => {
    await ctx.withSite(cmd, async (s) => {
      const r = await s.services.roles.add(fqdn, kind, pick(o));
      ctx.print(cmd, r, () => `Installed ${r.kind} on ${r.serverFqdn} (role id ${r.id}).\n`);
    });
  });
  roleOptions(role.command("set <fqdn> <role>").description("change a role's settings")).action(async (fqdn: string, kind: string, o: Record<string, unknown>, cmd: Command) => {
    await ctx.withSite(cmd, async (s) => {
      const r = await s.services.roles.set(fqdn, kind, pick(o));
      ctx.print(cmd, r, () => `Updated ${r.kind} on ${r.serverFqdn}: ${JSON.stringify(r.settings)}\n`);
    });
  });
  role
    .command("remove <fqdn> <role>")
    .description("remove a role from a server")
    .action(async (fqdn: string, kind: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        await s.services.roles.remove(fqdn, kind);
        ctx.print(cmd, { removed: { server: fqdn, role: kind } }, () => `Removed ${kind} from ${fqdn}.\n`);
      });
    });
  role
    .command("list [fqdn]")
    .description("list installed roles (of one server)")
    .action(async (fqdn: string | undefined, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.roles.list(fqdn);
        ctx.print(cmd, list, () => table(list.map((r) => ({ id: r.id, server: r.serverFqdn, role: r.kind, settings: r.settings })), ["id", "server", "role", "settings"]));
      });
    });
}
