import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { table } from "../output.ts";

export function registerStatusCommands(program: Command, ctx: CliContext): void {
  const status = program.command("status").description("status messages and component status");
  status
    .command("messages")
    .description("status messages, oldest first")
    .option("--component <name>", "only this component")
    .option("--id <messageId>", "only this message ID")
    .option("--limit <n>", "the newest N", "200")
    .action(async (o: { component?: string; id?: string; limit: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.status.messages({ component: o.component, messageId: o.id ? Number(o.id) : undefined, limit: Number(o.limit) || 200 });
        ctx.print(cmd, list, () => table(list.map((m) => ({ time: m.time, id: m.messageId, severity: m.severity, component: m.component, server: m.server, text: m.text })), ["time", "id", "severity", "component", "server", "text"]));
      });
    });
  status
    .command("components")
    .description("component status per server")
    .option("--server <fqdn>", "only this server")
    .action(async (o: { server?: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.status.components(o.server);
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["server", "component", "status", "reason", "updatedAt"]));
      });
    });
}
