import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { table } from "../output.ts";
import { ValidationError } from "../../errors.ts";
import type { StatusMessage, StatusSource } from "../../site/model.ts";

export function registerStatusCommands(program: Command, ctx: CliContext): void {
  const status = program.command("status").description("status messages and component status");
  status
    .command("messages")
    .description("status messages, oldest first")
    .option("--component <name>", "only this component")
    .option("--id <messageId>", "only this message ID")
    .option("--source <site|client>", "only the site's own messages, or only the ones devices uploaded")
    .option("--client <id>", "only the messages this client uploaded")
    .option("--limit <n>", "the newest N", "200")
    .action(async (o: { component?: string; id?: string; source?: string; client?: string; limit: string }, cmd: Command) => {
      if (o.source !== undefined && o.source !== "site" && o.source !== "client") throw new ValidationError("source", "must be site or client", `source: must be site or client (got ${JSON.stringify(o.source)})`);
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.status.messages({ component: o.component, messageId: o.id ? Number(o.id) : undefined, source: o.source as StatusSource | undefined, clientId: o.client, limit: Number(o.limit) || 200 });
        // A device's message says so: "client <name> <id>", never only a name that could be a site system's.
        const from = (m: StatusMessage) => (m.source === "site" ? `site ${m.server}` : `client ${m.server} ${m.clientId ?? ""}`);
        ctx.print(cmd, list, () => table(list.map((m) => ({ time: m.time, id: m.messageId, severity: m.severity, component: m.component, source: from(m), text: m.text })), ["time", "id", "severity", "component", "source", "text"]));
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
