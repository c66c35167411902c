/**
 * A real `opencmg site serve` in another process (plain HTTP on loopback, a free port), and other
 * long-running `opencmg` commands (a connection point's `connection-point serve`), each stopped
 * with SIGTERM and waited for.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { OPENCMG_BIN } from "./bin.ts";
import { until } from "./until.ts";

export interface RunningCommand {
  child: ChildProcess;
  stderr(): string;
  /** SIGTERM, then waits for it to exit (SIGKILL if it has not after the bound). */
  stop(): Promise<void>;
}

/** `opencmg ARGS` running until stopped; resolves once its standard error matches `ready` (with the match). */
export async function startCommand(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<RunningCommand & { ready: RegExpExecArray }> {
  const child = spawn(process.execPath, [OPENCMG_BIN, ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, OPENCMG_DATA: "", ...env } });
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    try {
      await until(`opencmg ${args.join(" ")} to exit`, () => child.exitCode !== null || child.signalCode !== null, 60_000);
    } catch {
      child.kill("SIGKILL");
    }
  };
  try {
    const match = await until(`opencmg ${args.join(" ")} to say it runs`, () => ready.exec(err) ?? (child.exitCode !== null ? assert.fail(`opencmg ${args.join(" ")} exited ${child.exitCode}: ${err}`) : undefined), 120_000);
    return { child, stderr: () => err, stop, ready: match };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface SiteServe extends RunningCommand {
  /** The admin API's URL and the console's, as its start-up line says them. */
  url: string;
  consoleUrl: string;
}

/**
 * `opencmg --data DATA site serve` on 127.0.0.1 (a free port, plain HTTP), the local CMGs' changes
 * followed every 0.2 s, and no scheduled internet endpoint check (tests reach loopback only).
 */
export async function startSiteServe(data: string, extra: string[] = []): Promise<SiteServe> {
  const r = await startCommand(
    ["--data", data, "site", "serve", "--listen", "127.0.0.1:0", "--insecure-http", "--cmg-poll-interval", "0.2", ...extra],
    /serving the admin API on (\S+) and the console on (\S+) /,
    { OPENCMG_ENDPOINT_CHECK_INTERVAL: "0" },
  );
  return { child: r.child, stderr: r.stderr, stop: r.stop, url: r.ready[1]!, consoleUrl: r.ready[2]! };
}
