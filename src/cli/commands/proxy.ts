import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { keyValues } from "../output.ts";

export function registerProxyCommands(program: Command, ctx: CliContext): void {
  const proxy = program.command("proxy").description("the one proxy configuration of each site system server");
  proxy
    .command("set <fqdn>")
    .description("save the server's proxy configuration (replaces the previous one)")
    .requiredOption("--host <host>", "proxy server name (host name or FQDN)")
    .option("--port <port>", "proxy port (1-65535)", "80")
    .option("--account <name>", "site system proxy server account (default: none, the server goes out as itself)")
    .option("--disabled", "store the configuration but do not use it")
    .action(async (fqdn: string, o: { host: string; port: string; account?: string; disabled?: boolean }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const p = await s.services.proxies.set(fqdn, { host: o.host, port: o.port, account: o.account ?? null, enabled: !o.disabled });
        ctx.print(cmd, p, () => `Saved the proxy configuration of ${p.server}: ${p.host}:${p.port}${p.account ? ` with account ${p.account}` : ""}${p.enabled ? "" : " (disabled)"}.\n`);
      });
    });
  proxy
    .command("show <fqdn>")
    .description("show the server's proxy configuration")
    .action(async (fqdn: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const p = await s.services.proxies.show(fqdn);
        const value = p ?? { server: fqdn.toLowerCase(), enabled: false, host: null, port: null, account: null };
        ctx.print(cmd, value, () => (p ? keyValues(p as unknown as Record<string, unknown>) : `${fqdn} has no proxy configuration: its roles connect directly.\n`));
      });
    });
  proxy
    .command("clear <fqdn>")
    .description("remove the server's proxy configuration")
    .action(async (fqdn: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        await s.services.proxies.clear(fqdn);
        ctx.print(cmd, { cleared: fqdn }, () => `Cleared the proxy configuration of ${fqdn}.\n`);
      });
    });
  proxy
    .command("effective <fqdn> <roleOrFeature>")
    .description("which proxy a role or feature on the server uses, and why")
    .action(async (fqdn: string, subject: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const d = await s.services.proxies.effective(fqdn, subject);
        ctx.print(cmd, d, () => {
          const via = d.use === "proxy" ? `proxy ${d.host}:${d.port}${d.account ? ` as ${d.account}` : ""} (configuration of ${d.proxyServer})` : d.use === "direct" ? "direct" : "no internet access";
          return `${d.subject} on ${d.server}: ${via}\n  why: ${d.reason}\n`;
        });
      });
    });
}
