/**
 * The `opencmg` command: parses arguments, calls a service, prints text or `--json`.
 * Exit codes: 0 success, 2 usage or validation error (stderr names the field), 1 other failures.
 */
import { Command, CommanderError, Option } from "commander";
import { isOpenCmgError, ValidationError } from "../errors.ts";
import { createContext, type CliContext } from "./context.ts";
import { describeFailure, type Io } from "./output.ts";
import { VERSION } from "../version.ts";

type Register = (program: Command, ctx: CliContext) => void;

/**
 * Each command's module, loaded only when that command runs: a command pays for its own imports
 * (the site database, TLS, HTTP servers), not for every other command's. Listed in help order.
 */
const MODULES: Record<string, () => Promise<Register>> = {
  site: () => import("./commands/site.ts").then((m) => m.registerSiteCommands),
  server: () => import("./commands/server.ts").then((m) => m.registerServerCommands),
  role: () => import("./commands/role.ts").then((m) => m.registerRoleCommands),
  account: () => import("./commands/account.ts").then((m) => m.registerAccountCommands),
  proxy: () => import("./commands/proxy.ts").then((m) => m.registerProxyCommands),
  status: () => import("./commands/status.ts").then((m) => m.registerStatusCommands),
  sup: () => import("./commands/sup.ts").then((m) => m.registerSupCommands),
  cmg: () => import("./commands/cmg.ts").then((m) => m.registerCmgCommands),
  "cmg-analyze": () => import("./commands/cmg-analyze.ts").then((m) => m.registerCmgAnalyzeCommand),
  up: () => import("./commands/up.ts").then((m) => m.registerUpCommand),
  endpoints: () => import("./commands/endpoints.ts").then((m) => m.registerEndpointsCommands),
  mp: () => import("./commands/mp.ts").then((m) => m.registerMpCommands),
  client: () => import("./commands/client.ts").then((m) => m.registerClientCommands),
  admin: () => import("./commands/admin.ts").then((m) => m.registerAdminCommands),
  settings: () => import("./commands/settings.ts").then((m) => m.registerSettingsCommands),
  token: () => import("./commands/token.ts").then((m) => m.registerTokenCommands),
};

/** Top-level command name -> the modules that register it (`site clients` lives with `client`). */
const COMMAND_MODULES: Record<string, string[]> = {
  site: ["site", "client", "admin"],
  server: ["server"],
  role: ["role"],
  account: ["account"],
  proxy: ["proxy"],
  status: ["status"],
  sup: ["sup"],
  adr: ["sup"],
  scp: ["sup"],
  cmg: ["cmg", "cmg-analyze"],
  gateway: ["cmg"],
  "connection-point": ["cmg"],
  up: ["up"],
  endpoints: ["endpoints"],
  check: ["endpoints"],
  mp: ["mp"],
  client: ["client"],
  audit: ["admin"],
  settings: ["settings"],
  token: ["token"],
};

/** The first word that is not a global option (or its value): the command being run. */
function commandName(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--data" || a === "--database") i++;
    else if (!a.startsWith("-")) return a;
  }
  return undefined;
}

/** Which command modules `argv` needs: its command's, or all of them for help and unknown words. */
export function modulesFor(argv: string[]): string[] {
  const name = commandName(argv);
  if (name === undefined && (argv.includes("--version") || argv.includes("-V"))) return [];
  return (name !== undefined && COMMAND_MODULES[name]) || Object.keys(MODULES);
}

export async function buildProgram(ctx: CliContext, argv?: string[]): Promise<Command> {
  const program = new Command("opencmg")
    .description("OpenCMG: a self-hosted cloud management gateway for device management")
    .version(VERSION)
    .addOption(new Option("--data <dir>", "data folder (default $OPENCMG_DATA, else ./opencmg-data)"))
    .addOption(new Option("--database <url>", "postgres:// URL of the site database (default $OPENCMG_DATABASE, else SQLite in the data folder)"))
    .option("--json", "machine-readable output")
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.io.out.write(s), writeErr: (s) => ctx.io.err.write(s) });
  const wanted = new Set(modulesFor(argv ?? ["--help"]));
  const registers = await Promise.all(Object.keys(MODULES).filter((m) => wanted.has(m)).map((m) => MODULES[m]!()));
  for (const register of registers) register(program, ctx);
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
  const program = await buildProgram(ctx, argv);
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
      // Every other field problem of the same command, so all can be fixed in one go.
      if (e instanceof ValidationError) for (const p of e.problems.slice(1)) io.err.write(`error: ${p.field}: ${p.rule}\n`);
      return e.exitCode;
    }
    io.err.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}
