import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";
import { ValidationError } from "../../errors.ts";
import { JOIN_DEFAULT_MINUTES, JOIN_MAX_MINUTES } from "../../site/services/joins.ts";

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

  const jt = server.command("join-token").description("one-time tokens with which a site system server joins the site (opencmg server join)");
  jt.command("create <fqdn>")
    .description("a one-time join token for server FQDN (printed once; the site keeps its hash), with the site CA's fingerprint to pin")
    .option("--lifetime <minutes>", `minutes it stays valid, 1 to ${JOIN_MAX_MINUTES}`, String(JOIN_DEFAULT_MINUTES))
    .action(async (fqdn: string, o: { lifetime: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await s.services.joins.createToken({ server: fqdn, lifetimeMinutes: o.lifetime });
        ctx.print(
          cmd,
          r,
          () =>
            keyValues({ id: r.id, server: r.server, "valid until": r.expiresAt, "site CA SHA-256": r.siteCaSha256 }) +
            `\nThe token is shown this once and joins once. On ${r.server}:\n  opencmg server join --site https://SITE:8241 --site-ca-sha256 ${r.siteCaSha256} --token - <<< '<TOKEN>'\n\n${r.token}\n`,
        );
      });
    });
  jt.command("list")
    .description("join tokens: ID, server, state (active, joined, revoked, expired), expiry (never the tokens)")
    .option("--server <fqdn>", "only this server's")
    .action(async (o: { server?: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const list = await s.services.joins.listTokens(o.server);
        ctx.print(cmd, list, () => table(list as unknown as Record<string, unknown>[], ["id", "server", "state", "createdAt", "expiresAt", "usedAt", "revokedAt", "certSerial"]));
      });
    });
  jt.command("revoke <id>")
    .description("revoke a join token: unused, it joins nothing; used, its server is answered no configuration any more")
    .action(async (id: string, _o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const r = await s.services.joins.revokeToken(id);
        ctx.print(cmd, r, () => `Join token ${r.id} of ${r.server} is ${r.state}.\n`);
      });
    });

  server
    .command("join")
    .description("join this server to the site with a one-time join token: makes its key here, gets its certificate from the site CA (no site key, no database)")
    .requiredOption("--site <url>", "the site's join URL (site serve --join-listen), https://HOST:PORT")
    .requiredOption("--token <token>", "the join token; - reads it from standard input")
    .requiredOption("--site-ca-sha256 <hex>", "the site CA's SHA-256 fingerprint, printed with the join token")
    .option("--server <fqdn>", "this server's FQDN (checked against the token's)")
    .action(async (o: { site: string; token: string; siteCaSha256: string; server?: string }, cmd: Command) => {
      const token = o.token === "-" ? (await readStdin()).trim() : o.token;
      if (!token) throw new ValidationError("token", "is empty");
      const { joinSite } = await import("../../join/client.ts");
      const g = ctx.globals(cmd);
      const r = await joinSite({ site: o.site, token, siteCaSha256: o.siteCaSha256, server: o.server, dataDir: g.data });
      ctx.print(cmd, { server: r.server, files: r.files }, () => `${r.server} joined the site. Its data folder holds:\n  ${r.files.key} (its key)\n  ${r.files.cert} (its certificate)\n  ${r.files.ca} (the site CA)\n  ${r.files.info} (the site's URL)\n`);
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}
