/**
 * The `opencmg` command: parses arguments, calls a service, prints text or `--json`.
 * Exit codes: 0 success, 2 usage or validation error (stderr names the field), 1 other failures.
 */
import { Command, CommanderError, Option } from "commander";
import { isOpenCmgError } from "../errors.ts";
import { registerAccountCommands } from "./commands/account.ts";
import { registerClientCommands } from "./commands/client.ts";
import { registerCmgCommands } from "./commands/cmg.ts";
import { registerUpCommand } from "./commands/up.ts";
import { registerEndpointsCommands } from "./commands/endpoints.ts";
import { registerMpCommands } from "./commands/mp.ts";
import { registerProxyCommands } from "./commands/proxy.ts";
import { registerRoleCommands } from "./commands/role.ts";
import { registerServerCommands } from "./commands/server.ts";
import { registerSiteCommands } from "./commands/site.ts";
import { registerStatusCommands } from "./commands/status.ts";
import { describeFailure, registerSupCommands } from "./commands/sup.ts";
import { createContext, type CliContext } from "./context.ts";
import type { Io } from "./output.ts";

export const VERSION = "0.1.0";

export function buildProgram(ctx: CliContext): Command {
  const program = new Command("opencmg")
    .description("OpenCMG: a self-hosted cloud management gateway for device management")
    .version(VERSION)
    .addOption(new Option("--data <dir>", "data folder (default $OPENCMG_DATA, else ./opencmg-data)"))
    .addOption(new Option("--database <url>", "postgres:// URL of the site database (default $OPENCMG_DATABASE, else SQLite in the data folder)"))
    .option("--json", "machine-readable output")
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.io.out.write(s), writeErr: (s) => ctx.io.err.write(s) });
  registerSiteCommands(program, ctx);
  registerServerCommands(program, ctx);
  registerRoleCommands(program, ctx);
  registerAccountCommands(program, ctx);
  registerProxyCommands(program, ctx);
  registerStatusCommands(program, ctx);
  registerSupCommands(program, ctx);
  registerCmgCommands(program, ctx);
  registerUpCommand(program, ctx);
  registerEndpointsCommands(program, ctx);
  registerMpCommands(program, ctx);
  registerClientCommands(program, ctx);
  // Subcommands inherit the error handling and output of the root.
  const inherit = (c: Command): void => {
    for (const sub of c.commands) {
      sub.exitOverride().configureOutput({ writeOut: (s) => ctx.io.out.write(s), writeErr: (s) => ctx.io.err.write(s) }).showHelpAfterError();
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

export async function main(argv: string[], io: Io = { out: process.stdout, err: process.stderr, stdin: process.stdin }, env = process.env): Promise<number> {
  const ctx = createContext(io, env);
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version end with exit code 0 through the same path
      return e.exitCode === 0 ? 0 : 2;
    }
    if ((e as { silent?: boolean }).silent) return 1; // the command already explained itself
    if (isOpenCmgError(e)) {
      const hop = describeFailure(e);
      io.err.write(`error: ${e.message}${hop && !e.message.includes(String(e.code)) ? ` (${hop})` : ""}\n`);
      return e.exitCode;
    }
    io.err.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
