import type { Command } from "commander";
import { hostname } from "node:os";
import { pino } from "pino";
import { ValidationError } from "../../errors.ts";
import { initSite, openSite } from "../../site/site.ts";
import { startSiteServer } from "../../app/site-server.ts";
import { commandPath, type CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";
import { waitForStop } from "../../app/signals.ts";
import { PINO_LEVEL } from "../../logs/cmtrace.ts";
import { LOG_LEVEL_HELP, logLevelOpt } from "../options.ts";

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` -> parts, refusing anything else with a clear rule. */
export function parseListen(value: string, field = "listen"): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 0 || port > 65535) throw new ValidationError(field, "must be HOST:PORT with a port from 0 to 65535", `${field}: must be HOST:PORT with a port from 0 to 65535 (got ${JSON.stringify(value)})`);
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}

export function registerSiteCommands(program: Command, ctx: CliContext): void {
  const site = program.command("site").description("the site: create it, serve its admin API and console");

  site
    .command("init")
    .description("create the site database, site key and admin token in the data folder (safe to run again)")
    .option("--site-code <code>", "site code: 3 letters or digits", "P01")
    .option("--site-name <name>", "site name", "Primary site")
    .option("--type <type>", "primary or cas (central administration site)", "primary")
    .action(async (o: { siteCode: string; siteName: string; type: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const { site: created, adminToken } = await initSite(s, { code: o.siteCode, name: o.siteName, type: o.type });
        const result = { site: created, dataDir: s.paths.data, database: s.database.location, adminTokenFile: s.paths.adminToken };
        ctx.print(cmd, { ...result, adminToken }, () =>
          keyValues({ site: `${created.code} (${created.name}, ${created.type})`, data: s.paths.data, database: s.database.location, "admin token": adminToken, "token file": s.paths.adminToken }),
        );
      });
    });

  site
    .command("add <code>")
    .description("add a child site (a secondary under a primary, a primary under a CAS)")
    .requiredOption("--parent <code>", "parent site code")
    .option("--site-name <name>", "site name")
    .option("--type <type>", "secondary or primary", "secondary")
    .action(async (code: string, o: { parent: string; siteName?: string; type: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const added = await s.services.sites.add({ code, name: o.siteName ?? code, type: o.type, parentCode: o.parent });
        ctx.print(cmd, added, () => `Added site ${added.code} (${added.type}) under ${added.parentCode}.\n`);
      });
    });

  site
    .command("list")
    .description("the sites of the hierarchy")
    .action(async (_o: unknown, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const sites = await s.services.sites.list();
        ctx.print(cmd, sites, () => table(sites as unknown as Record<string, unknown>[], ["code", "name", "type", "parentCode"]));
      });
    });

  site
    .command("serve")
    .description("run the site: admin API, administration console and scheduled tasks")
    .option("--listen <host:port>", "where the admin API and the console listen", "127.0.0.1:8240")
    .option("--log-level <level>", LOG_LEVEL_HELP, "info")
    .option("--join-listen <host:port>", "where site system servers join and fetch their configuration (TLS, site CA); default: not served")
    .option("--join-name <fqdn>", "the name joining servers reach the join listener by (its certificate's; default: this host's name)")
    .action(async (o: { listen: string; logLevel: string; joinListen?: string; joinName?: string }, cmd: Command) => {
      const listen = parseListen(o.listen);
      const joinListen = o.joinListen === undefined ? undefined : parseListen(o.joinListen, "joinListen");
      const logLevel = logLevelOpt(o.logLevel);
      const g = ctx.globals(cmd);
      const log = pino({ level: PINO_LEVEL[logLevel], redact: ["req.headers.authorization", "req.headers.cookie", "req.headers['x-opencmg-csrf']", "*.password", "*.secret", "*.token"] });
      const opened = await openSite({ dataDir: g.data, databaseUrl: g.database, work: commandPath(cmd), pino: log, logLevel });
      await opened.services.sites.requireTop();
      const server = await startSiteServer({ site: opened, listen, log });
      let joinApi: { url: string; close(): Promise<void> } | undefined;
      if (joinListen) {
        const { startJoinListener } = await import("../../join/listener.ts");
        const { SitePki } = await import("../../site/site-pki.ts");
        joinApi = await startJoinListener({ site: opened, pki: new SitePki(opened.paths.data), listen: joinListen, names: [o.joinName ?? hostname()] });
      }
      // Listening for SIGTERM before saying so: whoever waits for this line may stop it at once.
      const stopped = waitForStop();
      ctx.io.err.write(`OpenCMG site ${(await opened.services.sites.requireTop()).code} serving the admin API on ${server.url} and the console on ${server.consoleUrl} (sign in with the token in ${opened.paths.adminToken})${joinApi ? `; servers join at ${joinApi.url}` : ""}; Ctrl-C stops it\n`);
      await stopped;
      await joinApi?.close();
      await server.close();
      await opened.close();
    });
}

