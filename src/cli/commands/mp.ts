/** `opencmg mp serve`: runs a management point role of the site. */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { pino } from "pino";
import { ValidationError } from "../../errors.ts";
import { runManagementPoint } from "../../app/management-point.ts";
import { commandPath, type CliContext } from "../context.ts";
import { parseListen } from "./site.ts";
import { waitForStop } from "../../app/signals.ts";
import { PINO_LEVEL } from "../../logs/cmtrace.ts";
import { LOG_LEVEL_HELP, LOG_SIZE_HELP, LOG_SIZE_MB, logLevelOpt, logSizeOpt } from "../options.ts";

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

function readFile(field: string, file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new ValidationError(field, "must be a readable file", `${field}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export function registerMpCommands(program: Command, ctx: CliContext): void {
  const mp = program.command("mp").description("management point: registration, location, policy and status for clients");
  mp.command("serve")
    .description("serve the management-point role of a site system server over HTTPS")
    .requiredOption("--server <fqdn>", "the site system server whose management-point role this is")
    .option("--listen <host:port>", "where to listen", "0.0.0.0:8443")
    .option("--cert <file>", "server certificate (PEM; default: issued by the site CA for --server)")
    .option("--key <file>", "its private key (PEM)")
    .option("--ca <file>", "the site CA certificate (default: <data>/pki/site-ca.pem): connection points' certificates chain to it")
    .option("--trusted-root <file>", "a CA that client certificates chain to (repeatable; default: the site CA)", collect)
    .option("--metrics <host:port>", "serve Prometheus metrics (GET /metrics) here, e.g. 127.0.0.1:9450 (default: none)")
    .option("--log-level <level>", LOG_LEVEL_HELP, "info")
    .option("--log-size-mb <MB>", LOG_SIZE_HELP, LOG_SIZE_MB.default)
    .action(async (o: { server: string; listen: string; cert?: string; key?: string; ca?: string; trustedRoot?: string[]; metrics?: string; logLevel: string; logSizeMb: string }, cmd: Command) => {
      const listen = parseListen(o.listen);
      const logLevel = logLevelOpt(o.logLevel);
      const logSizeBytes = logSizeOpt(o.logSizeMb);
      if (Boolean(o.cert) !== Boolean(o.key)) throw new ValidationError(o.cert ? "key" : "cert", "--cert and --key go together");
      const g = ctx.globals(cmd);
      const running = await runManagementPoint({
        dataDir: g.data,
        databaseUrl: g.database,
        work: commandPath(cmd),
        pino: pino({ level: PINO_LEVEL[logLevel], redact: ["req.headers.authorization"] }),
        logLevel,
        logSizeBytes,
        serverFqdn: o.server,
        listen,
        tls: o.cert && o.key ? { certPem: readFile("cert", o.cert), keyPem: readFile("key", o.key) } : undefined,
        caPem: o.ca ? readFile("ca", o.ca) : undefined,
        trustedClientRoots: o.trustedRoot?.map((f) => readFile("trustedRoot", f)),
        metrics: o.metrics ? parseListen(o.metrics, "metrics") : undefined,
      });
      const stopped = waitForStop(); // before the line that says it runs: a stop may follow at once
      ctx.io.err.write(`OpenCMG management point ${o.server.toLowerCase()} (role ${running.mp.roleId}) serving ${running.mp.url}${running.metricsPort !== undefined ? `; metrics on port ${running.metricsPort}` : ""}; Ctrl-C stops it\n`);
      const cause = await stopped;
      await running.stop();
      ctx.io.err.write(`OpenCMG management point ${o.server.toLowerCase()} stopped (${cause})\n`);
    });
}
