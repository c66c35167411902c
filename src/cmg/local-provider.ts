/**
 * The `local` provider: runs every instance of a CMG as its own `opencmg gateway serve` process on
 * this machine (with worker processes sharing the machine's cores: workers.ts), restarts one that
 * dies (with backoff), and stops them all on request.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ComponentLog } from "../logs/cmtrace.ts";

/** The package's `bin/opencmg.mjs`, found upwards from this module (src/ in development, dist/ once built). */
function opencmgBin(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const bin = join(dir, "bin", "opencmg.mjs");
    if (existsSync(bin)) return bin;
  }
  throw new Error("bin/opencmg.mjs not found above " + fileURLToPath(import.meta.url));
}
const BIN = opencmgBin();

/**
 * Set in each instance's environment, with a pipe on its standard input: the instance exits when
 * the pipe closes, so instances never outlive the process that supervises them, even one killed
 * with SIGKILL (app/signals.ts).
 */
export const EXIT_WITH_PARENT_ENV = "OPENCMG_EXIT_WITH_PARENT";

export interface LocalInstances {
  /** Resolves once every instance first asked for printed that it listens (or rejects when one cannot start). */
  ready: Promise<void>;
  pids(): number[];
  /** Indexes of the instances that run (or are being restarted). */
  indexes(): number[];
  /**
   * Runs exactly the instances of `files` (instance i from files[i]): starts the missing ones,
   * stops those past the end (SIGTERM: they drain their clients and tunnels). Resolves once the
   * new ones listen; rejects when one cannot start.
   */
  setFiles(files: string[]): Promise<void>;
  stop(): Promise<void>;
}

/** An instance restarted after it died: its index, how it exited (code or signal), the restart's number for it. */
export interface InstanceRestart {
  index: number;
  exit: string;
  attempt: number;
}

/** Sends SIGTERM (SIGKILL after 10 s) and resolves once the process exited. */
function terminate(c: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
    c.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    c.kill("SIGTERM");
  });
}

/**
 * Worker processes per instance: the instances of this machine share its cores (at least one
 * worker each), unless OPENCMG_GATEWAY_WORKERS says how many (`gateway serve` reads it).
 */
export function workersArgs(instances: number, env: NodeJS.ProcessEnv): string[] {
  if (env.OPENCMG_GATEWAY_WORKERS) return [];
  return ["--workers", String(Math.max(1, Math.floor(availableParallelism() / Math.max(1, instances))))];
}

export function runLocalInstances(o: {
  files: string[];
  dataDir: string;
  log: ComponentLog;
  env?: NodeJS.ProcessEnv;
  /** The supervising process's log options (`--log-level`, `--log-size-mb`), given to every instance. */
  logArgs?: string[];
  onRestart?: (r: InstanceRestart) => void;
}): LocalInstances {
  let stopping = false;
  const children = new Map<number, ChildProcess>();
  /** Instances asked for, by index: their start-up file. An index not here is not restarted. */
  const wanted = new Map<number, string>();
  const restarts = new Map<number, NodeJS.Timeout>();
  /** Processes stopped on purpose (scaled down): never restarted, even if their index comes back. */
  const retired = new WeakSet<ChildProcess>();

  const start = (index: number, file: string, attempt: number, onReady?: { resolve: () => void; reject: (e: Error) => void }): void => {
    const child = spawn(process.execPath, [BIN, "--data", o.dataDir, "gateway", "serve", "--config", file, ...(o.logArgs ?? []), ...workersArgs(wanted.size || 1, { ...process.env, ...o.env })], { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, ...o.env, [EXIT_WITH_PARENT_ENV]: "1" } });
    children.set(index, child);
    let err = "";
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (d: string) => {
      err = (err + d).slice(-4000);
      if (onReady && /listening/.test(err)) {
        onReady.resolve();
        onReady = undefined;
      }
    });
    child.on("exit", (code, signal) => {
      if (children.get(index) === child) children.delete(index);
      if (onReady) {
        onReady.reject(new Error(`instance ${index} did not start (exit ${code ?? signal}): ${err.trim().split("\n").at(-1) ?? ""}`));
        onReady = undefined;
        return;
      }
      // Stopped on purpose (the supervisor stops, or the CMG was scaled down): not restarted.
      if (stopping || retired.has(child) || wanted.get(index) !== file) return;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
      o.log.warn(`Instance ${index} exited (${code ?? signal}); restarting in ${delay} ms. ${err.trim().split("\n").at(-1) ?? ""}`);
      // Not unref'd: this timer is what keeps a supervisor whose every instance died alive to restart them.
      const exit = String(code ?? signal);
      const timer = setTimeout(() => {
        restarts.delete(index);
        if (stopping || wanted.get(index) !== file) return;
        start(index, file, attempt + 1);
        o.log.warn(`Instance ${index} restarted (restart ${attempt + 1} since this supervisor started; it had exited with ${exit}).`);
        try {
          o.onRestart?.({ index, exit, attempt: attempt + 1 });
        } catch (e) {
          o.log.warn(`Could not record the restart of instance ${index}: ${(e as Error).message}`);
        }
      }, delay);
      restarts.set(index, timer);
    });
  };

  const setFiles = async (files: string[]): Promise<void> => {
    if (stopping) return;
    const removed = [...wanted.keys()].filter((i) => i >= files.length);
    const added = files.map((f, i) => [i, f] as const).filter(([i]) => !wanted.has(i));
    // A changed file name for a running index only matters at its next restart.
    files.forEach((f, i) => wanted.set(i, f));
    for (const i of removed) {
      wanted.delete(i);
      clearTimeout(restarts.get(i));
      restarts.delete(i);
    }
    const stopped = removed.map((i) => children.get(i)).filter((c): c is ChildProcess => c !== undefined);
    for (const c of stopped) retired.add(c);
    if (removed.length > 0) o.log.info(`Stopping instance(s) ${removed.join(", ")} (the CMG now has ${files.length}).`);
    const starting = added.map(([i, f]) => new Promise<void>((resolve, reject) => start(i, f, 0, { resolve, reject })));
    if (added.length > 0 && removed.length === 0 && wanted.size > added.length) o.log.info(`Starting instance(s) ${added.map(([i]) => i).join(", ")} (the CMG now has ${files.length}).`);
    await Promise.all([...stopped.map(terminate), ...starting]);
  };

  const ready = setFiles(o.files);
  return {
    ready,
    pids: () => [...children.values()].map((c) => c.pid!).filter(Boolean),
    indexes: () => [...wanted.keys()].sort((a, b) => a - b),
    setFiles,
    async stop() {
      stopping = true;
      for (const t of restarts.values()) clearTimeout(t);
      restarts.clear();
      wanted.clear();
      await Promise.all([...children.values()].map(terminate));
    },
  };
}
