import type { Command } from "commander";
import { ValidationError } from "../../errors.ts";
import { DEFAULT_UP_PORTS, up, type UpPorts } from "../../app/up.ts";
import type { CliContext } from "../context.ts";
import { keyValues } from "../output.ts";
import { waitForStop } from "../../app/signals.ts";
import { LOG_LEVEL_HELP, LOG_SIZE_HELP, LOG_SIZE_MB, logLevelOpt, logSizeOpt } from "../options.ts";

function port(field: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new ValidationError(field, "must be a port from 1 to 65535");
  return Number(v);
}

type PortOptions = Partial<Record<`${keyof UpPorts}Port`, string>>;

export function registerUpCommand(program: Command, ctx: CliContext): void {
  const last = (p: number): string => `(default: the last run's in this data folder, else ${p})`;
  program
    .command("up")
    .description("run the whole product on this machine on its embedded defaults (site, MP, SUP, CMG, connection point) until Ctrl-C; every port is checked first")
    .option("--api-port <n>", `admin API port ${last(DEFAULT_UP_PORTS.api)}`)
    .option("--mp-port <n>", `management point port; the software update point uses this + 1 ${last(DEFAULT_UP_PORTS.mp)}`)
    .option("--client-port <n>", `CMG client port ${last(DEFAULT_UP_PORTS.client)}`)
    .option("--tunnel-port <n>", `CMG tunnel port ${last(DEFAULT_UP_PORTS.tunnel)}`)
    .option("--log-level <level>", LOG_LEVEL_HELP, "info")
    .option("--log-size-mb <MB>", LOG_SIZE_HELP, LOG_SIZE_MB.default)
    .action(async (o: PortOptions & { logLevel: string; logSizeMb: string }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const logLevel = logLevelOpt(o.logLevel);
      const logSizeBytes = logSizeOpt(o.logSizeMb);
      const ports: Partial<UpPorts> = {};
      for (const key of Object.keys(DEFAULT_UP_PORTS) as (keyof UpPorts)[]) {
        const v = o[`${key}Port`];
        if (v !== undefined) ports[key] = port(`${key}Port`, v);
      }
      const running = await up({ dataDir: g.data, databaseUrl: g.database, ports, logLevel, logSizeBytes, onStep: (s) => ctx.io.err.write(`... ${s}\n`) });
      const stopped = waitForStop(); // before the facts are printed: a stop may follow at once
      const f = running.facts;
      ctx.print(cmd, f, () =>
        "OpenCMG is up.\n" +
          keyValues({ console: `${f.consoleUrl} (sign in with the admin token; plain HTTP on this machine only: site serve listens with TLS)`, "admin API": f.siteUrl, "admin token": f.adminToken, "management point": `${f.mpUrl} (intranet)`, "CMG": `${f.cmgUrl} (internet)`, "data": f.dataDir }) +
          `\nInstall a client that reaches the site through the gateway:\n  ${f.clientInstall.map((a) => (/[\s\\]/.test(a) ? JSON.stringify(a) : a)).join(" ")} --client-dir ./opencmg-client\n` +
          "Then: npx opencmg client run --once --client-dir ./opencmg-client; npx opencmg site clients\n" +
          `(the same facts are in ${f.dataDir}/up.json; Ctrl-C stops everything)\n`,
      );
      await stopped;
      ctx.io.err.write("stopping...\n");
      await running.stop();
    });
}
