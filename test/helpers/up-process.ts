/**
 * `opencmg up` as a real process in a temp folder, for tests that need the whole site (site
 * database, management point, CMG instances, connection point) and drive it with the CLI.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./databases.ts";
import { OPENCMG_BIN } from "./bin.ts";
import { freePort, freePortRange } from "./ports.ts";
import { until } from "./until.ts";

export interface UpFactsFile {
  siteUrl: string;
  adminToken: string;
  mpUrl: string;
  cmgUrl: string;
  internetMpUrl: string;
  clientInstall: string[];
  dataDir: string;
}

export interface UpProcess {
  dir: string;
  data: string;
  facts: UpFactsFile;
  proc: ChildProcess;
  output(): string;
  /** `opencmg --data DATA ARGS` (site commands) as a process. */
  site(args: string[]): CliRun;
  /** `opencmg ARGS` as a process. */
  cli(args: string[]): CliRun;
  stop(): Promise<number | null>;
}

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
  json<T = any>(): T;
}

export function runBin(args: string[], stdin?: string): CliRun {
  const r = spawnSync(process.execPath, [OPENCMG_BIN, ...args], { encoding: "utf8", timeout: 120_000, input: stdin ?? "", env: { ...process.env, OPENCMG_DATA: "", OPENCMG_CLIENT_DIR: "" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}

/** Starts `opencmg up` (tried again on other ports when another test file took one first). */
export async function startUp(prefix: string): Promise<UpProcess> {
  const dir = tempDir(prefix);
  const data = join(dir, "data");
  let out = "";
  let proc: ChildProcess;
  for (let attempt = 1; ; attempt++) {
    const ports = ["--api-port", String(await freePort()), "--mp-port", String(await freePortRange(2)), "--client-port", String(await freePortRange(1)), "--tunnel-port", String(await freePortRange(1))];
    proc = spawn(process.execPath, [OPENCMG_BIN, "--data", data, "up", ...ports], { stdio: ["ignore", "pipe", "pipe"] });
    out = "";
    proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const p = proc;
    await until("opencmg up to write up.json or exit", () => existsSync(join(data, "up.json")) || p.exitCode !== null);
    if (existsSync(join(data, "up.json"))) break;
    if (!/EADDRINUSE/.test(out) || attempt === 5) throw new Error(`opencmg up exited: ${out}`);
  }
  const facts = JSON.parse(readFileSync(join(data, "up.json"), "utf8")) as UpFactsFile;
  const running = proc;
  return {
    dir,
    data,
    facts,
    proc: running,
    output: () => out,
    site: (args) => runBin(["--data", data, ...args]),
    cli: (args) => runBin(args),
    async stop() {
      if (running.exitCode !== null) return running.exitCode;
      running.kill("SIGINT");
      return new Promise((r) => running.once("exit", (c) => r(c)));
    },
  };
}
