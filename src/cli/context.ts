import type { Command } from "commander";
import type { OpenedSite } from "../site/site.ts";
import type { Io } from "./output.ts";

export interface GlobalOptions {
  data: string;
  database?: string | undefined;
  json?: boolean | undefined;
}

/** What every command handler gets: the global options, the streams, and a way to open the site. */
export interface CliContext {
  io: Io;
  env: NodeJS.ProcessEnv;
  /** Resolved global options of the command being run. */
  globals(cmd: Command): GlobalOptions;
  /** Opens the site of `--data`/`--database`, runs `fn`, closes it. */
  withSite<T>(cmd: Command, fn: (site: OpenedSite, g: GlobalOptions) => Promise<T>): Promise<T>;
  /** Prints `value` as JSON with `--json`, else `text(value)`. */
  print(cmd: Command, value: unknown, text: () => string): void;
}

export function createContext(io: Io, env: NodeJS.ProcessEnv): CliContext {
  const globals = (cmd: Command): GlobalOptions => {
    const o = cmd.optsWithGlobals() as { data?: string; database?: string; json?: boolean };
    return { data: o.data ?? env.OPENCMG_DATA ?? "./opencmg-data", database: o.database ?? env.OPENCMG_DATABASE, json: o.json };
  };
  return {
    io,
    env,
    globals,
    async withSite(cmd, fn) {
      const g = globals(cmd);
      const { openSite } = await import("../site/site.ts"); // loaded by the commands that need a site
      const site = await openSite({ dataDir: g.data, databaseUrl: g.database, work: commandPath(cmd) });
      try {
        return await fn(site, g);
      } finally {
        await site.close();
      }
    },
    print(cmd, value, text) {
      if (globals(cmd).json) io.out.write(JSON.stringify(value, null, 2) + "\n");
      else io.out.write(text());
    },
  };
}

/** `server add`: the command's words without the program name. */
export function commandPath(cmd: Command): string {
  const words: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) words.unshift(c.name());
  return words.join(" ");
}
