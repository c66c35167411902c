import type { Command } from "commander";
import { hostname } from "node:os";
import { pino } from "pino";
import { ValidationError } from "../../errors.ts";
import { check, fqdn as fqdnRule } from "../../site/validation.ts";
import { initSite, openSite } from "../../site/site.ts";
import { startSiteServer } from "../../app/site-server.ts";
import { commandPath, type CliContext } from "../context.ts";
import { keyValues, table } from "../output.ts";
import { logFatalFaults } from "../../app/faults.ts";
import { LOG_FILES } from "../../logs/files.ts";
import { waitForStop } from "../../app/signals.ts";
import { PINO_LEVEL } from "../../logs/cmtrace.ts";
import { LOG_LEVEL_HELP, LOG_SIZE_HELP, LOG_SIZE_MB, logLevelOpt, logSizeOpt, onOff } from "../options.ts";
import type { AdminTransport } from "../../app/admin-tls.ts";
import { readFileSync } from "node:fs";

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` -> parts, refusing anything else with a clear rule. */
export function parseListen(value: string, field = "listen"): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 0 || port > 65535) throw new ValidationError(field, "must be HOST:PORT with a port from 0 to 65535", `${field}: must be HOST:PORT with a port from 0 to 65535 (got ${JSON.stringify(value)})`);
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}

interface ServeOptions {
  listen: string;
  tlsName: string[];
  tlsCert?: string;
  tlsKey?: string;
  tlsPfx?: string;
  tlsPfxPasswordFile?: string;
  insecureHttp?: boolean;
  logLevel: string;
  logSizeMb: string;
  localCmgs: boolean;
  cmgPollInterval: string;
  joinListen?: string;
  joinName?: string;
  localRoles: boolean;
  serverFqdn?: string;
}

/** The listener `site serve` asked for: TLS from the site CA unless a certificate is given or plain HTTP is asked for. */
export function transportOf(o: Omit<ServeOptions, "listen" | "logLevel" | "logSizeMb" | "localCmgs" | "cmgPollInterval" | "joinListen" | "joinName" | "localRoles" | "serverFqdn">): AdminTransport {
  const given = [o.tlsCert && "--tls-cert", o.tlsKey && "--tls-key", o.tlsPfx && "--tls-pfx", o.tlsPfxPasswordFile && "--tls-pfx-password-file", o.tlsName.length > 0 && "--tls-name"].filter((x): x is string => typeof x === "string");
  if (o.insecureHttp) {
    if (given.length > 0) throw new ValidationError("insecure-http", "no TLS option with it", `insecure-http: plain HTTP has no certificate: leave out ${given.join(", ")}`);
    return { kind: "http" };
  }
  if (o.tlsPfx) {
    const other = given.filter((g) => g !== "--tls-pfx" && g !== "--tls-pfx-password-file");
    if (other.length > 0) throw new ValidationError("tls-pfx", "alone", `tls-pfx: the PFX holds the certificate and its names: leave out ${other.join(", ")}`);
    const password = o.tlsPfxPasswordFile ? readPasswordFile(o.tlsPfxPasswordFile) : "";
    return { kind: "pfx", pfxFile: o.tlsPfx, password };
  }
  if (o.tlsPfxPasswordFile) throw new ValidationError("tls-pfx-password-file", "only with --tls-pfx", "tls-pfx-password-file: goes with --tls-pfx");
  if (o.tlsCert || o.tlsKey) {
    if (!o.tlsCert || !o.tlsKey) throw new ValidationError(o.tlsCert ? "tls-key" : "tls-cert", "both --tls-cert and --tls-key", `${o.tlsCert ? "tls-key" : "tls-cert"}: --tls-cert and --tls-key go together`);
    if (o.tlsName.length > 0) throw new ValidationError("tls-name", "only with the site CA's certificate", "tls-name: names go into the site CA's certificate; a given certificate carries its own");
    return { kind: "files", certFile: o.tlsCert, keyFile: o.tlsKey };
  }
  return { kind: "site-ca", names: o.tlsName };
}

function readPasswordFile(file: string): string {
  try {
    return readFileSync(file, "utf8").replace(/\r?\n$/, "");
  } catch (e) {
    throw new ValidationError("tls-pfx-password-file", "must be a readable file", `tls-pfx-password-file: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? "unreadable"})`);
  }
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
    .command("client-communication [code]")
    .description("show or change a primary site's Client Computer Communication settings (default: the top-level site)")
    .option("--use-pki-client-cert <on|off>", "Use PKI client certificate (client authentication capability) when available")
    .option("--check-crl <on|off>", "Clients check the certificate revocation list (CRL) for site systems")
    .action(async (code: string | undefined, o: { usePkiClientCert?: string; checkCrl?: string }, cmd: Command) => {
      await ctx.withSite(cmd, async (s) => {
        const svc = s.services.sites;
        const siteCode = code ?? (await svc.requireTop()).code;
        const patch = { usePkiClientCertificate: onOff("--use-pki-client-cert", o.usePkiClientCert), clientsCheckCrl: onOff("--check-crl", o.checkCrl) };
        const changed = Object.values(patch).some((v) => v !== undefined);
        const c = changed ? await svc.setClientCommunication(siteCode, Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined))) : await svc.clientCommunication(siteCode);
        ctx.print(cmd, c, () =>
          keyValues({
            "Use PKI client certificate (client authentication capability) when available": c.usePkiClientCertificate ? "on" : "off",
            "Clients check the certificate revocation list (CRL) for site systems": c.clientsCheckCrl ? "on" : "off",
          }),
        );
      });
    });

  site
    .command("serve")
    .description("run the site: admin API, administration console and scheduled tasks")
    .option("--listen <host:port>", "where the admin API and the console listen (0.0.0.0:8240: every address)", "127.0.0.1:8240")
    .option("--tls-name <name>", "another DNS name or IP address for the site CA's certificate (repeat it; the site server's FQDN is always in)", (v: string, all: string[]) => [...all, v], [] as string[])
    .option("--tls-cert <file>", "listen with this certificate (PEM, chain after it) instead of one from the site CA; with --tls-key")
    .option("--tls-key <file>", "the private key of --tls-cert (PEM, unencrypted)")
    .option("--tls-pfx <file>", "listen with the certificate and key of this PFX instead of one from the site CA")
    .option("--tls-pfx-password-file <file>", "the file holding the password of --tls-pfx")
    .option("--insecure-http", "plain HTTP instead of TLS: a loopback --listen address only")
    .option("--log-level <level>", LOG_LEVEL_HELP, "info")
    .option("--log-size-mb <MB>", LOG_SIZE_HELP, LOG_SIZE_MB.default)
    .option("--no-local-cmgs", "do not run the instances of local-provider CMGs (default: this process runs them, following the site)")
    .option("--cmg-poll-interval <s>", "how often the site is read for local CMGs and their changes, seconds", "2")
    .option("--server-fqdn <fqdn>", "this site server's own FQDN, as site system server: the roles assigned to it run in this process (default: this host's name)")
    .option("--no-local-roles", "do not run the CMG connection point role assigned to this site server (default: this process runs it, following the site)")
    .option("--join-listen <host:port>", "where site system servers join and fetch their configuration (TLS, site CA); default: not served")
    .option("--join-name <fqdn>", "the name joining servers reach the join listener by (its certificate's; default: this host's name)")
    .action(async (o: ServeOptions, cmd: Command) => {
      const listen = parseListen(o.listen);
      const transport = transportOf(o);
      const joinListen = o.joinListen === undefined ? undefined : parseListen(o.joinListen, "joinListen");
      const logLevel = logLevelOpt(o.logLevel);
      const logSizeBytes = logSizeOpt(o.logSizeMb);
      const poll = Number(o.cmgPollInterval);
      if (!(poll >= 0.1 && poll <= 3600)) throw new ValidationError("cmgPollInterval", "must be from 0.1 to 3600 seconds", `cmgPollInterval: must be from 0.1 to 3600 seconds (got ${JSON.stringify(o.cmgPollInterval)})`);
      const g = ctx.globals(cmd);
      const log = pino({ level: PINO_LEVEL[logLevel], redact: ["req.headers.authorization", "req.headers.cookie", "req.headers['x-opencmg-csrf']", "*.password", "*.secret", "*.token"] });
      const opened = await openSite({ dataDir: g.data, databaseUrl: g.database, work: commandPath(cmd), pino: log, logLevel, logSizeBytes });
      await opened.services.sites.requireTop();
      logFatalFaults(opened.logs.component(LOG_FILES.smsprov), `Site server (pid ${process.pid})`);
      const localRoles = o.localRoles ? { server: check("serverFqdn", fqdnRule, o.serverFqdn ?? hostname()), pollMs: poll * 1000 } : false;
      const server = await startSiteServer({ site: opened, listen, transport, log, localCmgs: o.localCmgs ? { pollMs: poll * 1000 } : false, localRoles });
      let joinApi: { url: string; close(): Promise<void> } | undefined;
      if (joinListen) {
        const { startJoinListener } = await import("../../join/listener.ts");
        const { SitePki } = await import("../../site/site-pki.ts");
        joinApi = await startJoinListener({ site: opened, pki: new SitePki(opened.paths.data), listen: joinListen, names: [o.joinName ?? hostname()] });
      }
      // Listening for SIGTERM before saying so: whoever waits for this line may stop it at once.
      const stopped = waitForStop();
      const trust = server.caFile ? `; its certificate is from the site CA: trust ${server.caFile}` : "";
      ctx.io.err.write(`OpenCMG site ${(await opened.services.sites.requireTop()).code} serving the admin API on ${server.url} and the console on ${server.consoleUrl} (sign in with the token in ${opened.paths.adminToken}${trust})${joinApi ? `; servers join at ${joinApi.url}` : ""}; Ctrl-C stops it\n`);
      const cause = await stopped;
      await joinApi?.close();
      await server.close();
      await opened.close();
      ctx.io.err.write(`OpenCMG site stopped (${cause})\n`);
    });
}

