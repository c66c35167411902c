/**
 * The `local` provider: runs every instance of a CMG as its own `opencmg gateway serve` process on
 * this machine, restarts one that dies (with backoff), and stops them all on request.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
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
  /** Resolves once every instance printed that it listens (or rejects when one cannot start). */
  ready: Promise<void>;
  pids(): number[];
  stop(): Promise<void>;
}

/** An instance restarted after it died: its index, how it exited (code or signal), the restart's number for it. */
export interface InstanceRestart {
  index: number;
  exit: string;
  attempt: number;
}

export function runLocalInstances(o: { files: string[]; dataDir: string; log: ComponentLog; env?: NodeJS.ProcessEnv; onRestart?: (r: InstanceRestart) => void }): LocalInstances {
  let stopping = false;
  const children = new Map<number, ChildProcess>();
  const readyWaiters: Promise<void>[] = [];
  const restarts = new Set<NodeJS.Timeout>();

  const start = (index: number, file: string, attempt: number, onReady?: { resolve: () => void; reject: (e: Error) => void }): void => {
    const child = spawn(process.execPath, [BIN, "--data", o.dataDir, "gateway", "serve", "--config", file], { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, ...o.env, [EXIT_WITH_PARENT_ENV]: "1" } });
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
      children.delete(index);
      if (onReady) {
        onReady.reject(new Error(`instance ${index} did not start (exit ${code ?? signal}): ${err.trim().split("\n").at(-1) ?? ""}`));
        onReady = undefined;
        return;
      }
      if (stopping) return;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
      o.log.warn(`Instance ${index} exited (${code ?? signal}); restarting in ${delay} ms. ${err.trim().split("\n").at(-1) ?? ""}`);
      // Not unref'd: this timer is what keeps a supervisor whose every instance died alive to restart them.
      const exit = String(code ?? signal);
      const timer = setTimeout(() => {
        restarts.delete(timer);
        if (stopping) return;
        start(index, file, attempt + 1);
        o.log.warn(`Instance ${index} restarted (restart ${attempt + 1} since this supervisor started; it had exited with ${exit}).`);
        try {
          o.onRestart?.({ index, exit, attempt: attempt + 1 });
        } catch (e) {
          o.log.warn(`Could not record the restart of instance ${index}: ${(e as Error).message}`);
        }
      }, delay);
      restarts.add(timer);
    });
  };

  o.files.forEach((file, index) => {
    readyWaiters.push(new Promise<void>((resolve, reject) => start(index, file, 0, { resolve, reject })));
  });

  return {
    ready: Promise.all(readyWaiters).then(() => undefined),
    pids: () => [...children.values()].map((c) => c.pid!).filter(Boolean),
    async stop() {
      stopping = true;
      for (const t of restarts) clearTimeout(t);
      restarts.clear();
      await Promise.all(
        [...children.values()].map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
              c.once("exit", () => {
                clearTimeout(t);
                resolve();
              });
              c.kill("SIGTERM");
            }),
        ),
      );
    },
  };
}
