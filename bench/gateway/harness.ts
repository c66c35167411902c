/**
 * Parent side of bench/gateway.ts's processes: the product's parts (IPC), the load jobs and the
 * idle-connection holders, all children of `bench/gateway/child.ts` started through bench/lib/child.ts.
 */
import { join } from "node:path";
import { bundled } from "../lib/bundle.ts";
import { Child } from "../lib/child.ts";
import type { LoadJob, LoadResult, Target } from "./load.ts";
import type { PartMessage } from "./parts.ts";

const CHILD = join(import.meta.dirname, "child.ts");

/** A product part in its own process, spoken to over IPC. */
export class Part {
  private constructor(readonly child: Child) {}

  get pid(): number {
    return this.child.pid;
  }

  static async start(mode: string, ...args: string[]): Promise<{ part: Part; port?: number }> {
    // OPENCMG_BENCH_CPU_PROF=DIR: V8 CPU profiles of the product parts, written when they stop.
    const prof = process.env.OPENCMG_BENCH_CPU_PROF;
    const nodeArgs = prof && mode !== "backend" ? ["--cpu-prof", "--cpu-prof-dir", prof] : [];
    // Bundled as dist/ is (bench/lib/bundle.ts), run by Node without tsx: the code as it ships.
    const child = Child.start(process.execPath, [...nodeArgs, bundled(CHILD), mode, ...args], { name: mode, stdin: "ignore", stdout: "inherit", ipc: true });
    const m = await child.message<Extract<PartMessage, { type: "ready" }>>("ready");
    return { part: new Part(child), ...(m.port ? { port: m.port } : {}) };
  }

  async ask<T extends PartMessage["type"]>(type: T): Promise<Extract<PartMessage, { type: T }>> {
    const p = this.child.message<Extract<PartMessage, { type: T }>>(type);
    this.child.send({ type });
    return p;
  }

  async ready(): Promise<boolean> {
    return (await this.ask("status")).ready;
  }

  stop(): Promise<void> {
    return this.child.stop({ ask: () => this.child.send({ type: "stop" }) });
  }
}

/** Runs a load job in a child; `onWarm` runs between the warm-up and the timed part. */
export async function load(job: LoadJob, onWarm?: () => void): Promise<LoadResult> {
  const c = Child.node(CHILD, ["load", JSON.stringify(job)], { name: `load ${job.kind}`, stdin: "pipe" });
  let line = await c.line(600_000);
  if (line === "warm") {
    onWarm?.();
    c.write("go\n");
    line = await c.line(1_800_000);
  }
  c.endInput();
  await c.exited;
  return JSON.parse(line) as LoadResult;
}

/** Opens `n` idle authenticated connections to `target` in a child that holds them until `release`. */
export async function holdIdle(target: Target, n: number): Promise<{ open: number; failed: number; release(): Promise<void> }> {
  const c = Child.node(CHILD, ["idle", JSON.stringify({ target, n })], { name: "idle", stdin: "pipe" });
  const r = JSON.parse(await c.line(600_000)) as { open: number; failed: number };
  return {
    ...r,
    release: async () => {
      c.endInput();
      await c.stop({ ask: () => {}, graceMs: 30_000 });
    },
  };
}
