import type { Command } from "commander";
import { ValidationError } from "../../errors.ts";
import { DEFAULT_UP_PORTS, up, type UpPorts } from "../../app/up.ts";
import type { CliContext } from "../context.ts";
import { keyValues } from "../output.ts";
import { waitForStop } from "../../app/signals.ts";

function port(field: string, v: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new ValidationError(field, "must be a port from 1 to 65535");
  return Number(v);
}

export function registerUpCommand(program: Command, ctx: CliContext): void {
  program
    .command("up")
    .description("run the whole product on this machine on its embedded defaults (site, MP, SUP, CMG, connection point) until Ctrl-C")
    .option("--api-port <n>", "admin API port", String(DEFAULT_UP_PORTS.api))
    .option("--mp-port <n>", "management point port", String(DEFAULT_UP_PORTS.mp))
    .option("--client-port <n>", "CMG client port", String(DEFAULT_UP_PORTS.client))
    .option("--tunnel-port <n>", "CMG tunnel port", String(DEFAULT_UP_PORTS.tunnel))
    .action(async (o: { apiPort: string; mpPort: string; clientPort: string; tunnelPort: string }, cmd: Command) => {
      const g = ctx.globals(cmd);
      const ports: UpPorts = { api: port("apiPort", o.apiPort), mp: port("mpPort", o.mpPort), client: port("clientPort", o.clientPort), tunnel: port("tunnelPort", o.tunnelPort) };
      const running = await up({ dataDir: g.data, databaseUrl: g.database, ports, onStep: (s) => ctx.io.err.write(`... ${s}\n`) });
      const f = running.facts;
      ctx.print(cmd, f, () =>
        "OpenCMG is up.\n" +
          keyValues({ console: `${f.consoleUrl} (sign in with the admin token)`, "admin API": f.siteUrl, "admin token": f.adminToken, "management point": `${f.mpUrl} (intranet)`, "CMG": `${f.cmgUrl} (internet)`, "data": f.dataDir }) +
          `\nInstall a client that reaches the site through the gateway:\n  ${f.clientInstall.map((a) => (/[\s\\]/.test(a) ? JSON.stringify(a) : a)).join(" ")} --client-dir ./opencmg-client\n` +
          "Then: npx opencmg client run --once --client-dir ./opencmg-client; npx opencmg site clients\n" +
          `(the same facts are in ${f.dataDir}/up.json; Ctrl-C stops everything)\n`,
      );
      await waitForStop();
      ctx.io.err.write("stopping...\n");
      await running.stop();
    });
}
