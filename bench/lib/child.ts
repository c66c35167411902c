/**
 * The one child-process helper of the benchmarks: start a process, wait until it says (or shows)
 * it is ready, read its output line by line, read its CPU time from /proc, and stop it. Every child
 * started here is killed when the benchmark exits, whichever way it exits, so a failed run leaves
 * no nginx, sshd or Node process behind.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";

type Io = "pipe" | "ignore" | "inherit";

export interface ChildOptions {
  /** A short name for error messages. */
  name?: string;
  stdin?: Io;
  stdout?: Io;
  /** "pipe" keeps the last lines for error messages (and makes them readable with `lines`). */
  stderr?: Io;
  /** An IPC channel (Node children only): `send` and `message`. */
  ipc?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const running = new Set<ChildProcess>();
let hooked = false;
function killAllOnExit(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const p of running) p.kill("SIGKILL");
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      for (const p of running) p.kill("SIGKILL");
      process.exit(128 + (sig === "SIGINT" ? 2 : 15));
    });
  }
}

/** Line reader over one output stream: `next` resolves with the next line, rejects once the stream ends. */
class Lines {
  private buf = "";
  private queue: string[] = [];
  private waiting: { resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  private ended: Error | null = null;
  readonly tail: string[] = [];

  constructor(stream: NodeJS.ReadableStream, private readonly what: () => string) {
    stream.on("data", (d: Buffer) => {
      this.buf += d.toString();
      for (let i = this.buf.indexOf("\n"); i >= 0; i = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        this.tail.push(line);
        if (this.tail.length > 20) this.tail.shift();
        const w = this.waiting.shift();
        if (w) w.resolve(line);
        else this.queue.push(line);
      }
    });
    stream.on("end", () => {
      this.ended = new Error(`${this.what()} ended its output`);
      for (const w of this.waiting.splice(0)) w.reject(this.ended);
    });
  }

  next(): Promise<string> {
    const line = this.queue.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }
}

export class Child {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the exit code (or the signal's name) when the process has exited. */
  readonly exited: Promise<number | string>;
  /** Like `exited`, once its piped output has also been read to the end (a last line comes before this). */
  private readonly closed: Promise<number | string>;
  private readonly out: Lines | null;
  private readonly err: Lines | null;

  private constructor(readonly proc: ChildProcess, name: string) {
    this.name = name;
    if (proc.pid === undefined) throw new Error(`${name}: could not start`);
    this.pid = proc.pid;
    running.add(proc);
    killAllOnExit();
    this.exited = new Promise((resolve) => {
      proc.once("exit", (code, signal) => {
        running.delete(proc);
        resolve(code ?? signal ?? -1);
      });
    });
    this.closed = new Promise((resolve) => proc.once("close", (code, signal) => resolve(code ?? signal ?? -1)));
    this.out = proc.stdout ? new Lines(proc.stdout, () => this.name) : null;
    this.err = proc.stderr ? new Lines(proc.stderr, () => this.name) : null;
  }

  /** Starts `cmd` (stdin ignored, stdout piped, stderr inherited unless told). */
  static start(cmd: string, args: string[], o: ChildOptions = {}): Child {
    const stdio = [o.stdin ?? "ignore", o.stdout ?? "pipe", o.stderr ?? "inherit", ...(o.ipc ? ["ipc" as const] : [])];
    const proc = spawn(cmd, args, { stdio, ...(o.env ? { env: o.env } : {}), ...(o.cwd ? { cwd: o.cwd } : {}) });
    // A command that cannot start at all (ENOENT) has no pid: throw at once rather than hang.
    proc.on("error", () => {});
    return new Child(proc, o.name ?? cmd.split("/").pop()!);
  }

  /** Starts a TypeScript/JavaScript file in Node with this process's loader flags (tsx), plus `nodeArgs`. */
  static node(script: string, args: string[], o: ChildOptions & { nodeArgs?: string[] } = {}): Child {
    return Child.start(process.execPath, [...process.execArgv, ...(o.nodeArgs ?? []), script, ...args], { name: script.split("/").pop()!, ...o });
  }

  /** The next line on stdout; rejects if the output ends first or `timeoutMs` passes. */
  line(timeoutMs = 120_000): Promise<string> {
    if (!this.out) throw new Error(`${this.name}: stdout is not piped`);
    return this.bounded(this.out.next(), timeoutMs, "a line");
  }

  /** Reads lines (stdout or stderr) until one matches: the readiness line. */
  async waitForLine(match: RegExp, o: { stream?: "stdout" | "stderr"; timeoutMs?: number } = {}): Promise<string> {
    const lines = o.stream === "stderr" ? this.err : this.out;
    if (!lines) throw new Error(`${this.name}: ${o.stream ?? "stdout"} is not piped`);
    const find = async (): Promise<string> => {
      for (;;) {
        const l = await lines.next();
        if (match.test(l)) return l;
      }
    };
    return this.bounded(find(), o.timeoutMs ?? 20_000, `a line matching ${match}`);
  }

  /** The next IPC message whose `type` is `type`. */
  message<T extends { type: string }>(type: string, timeoutMs = 60_000): Promise<T> {
    const got = new Promise<T>((resolve) => {
      const on = (m: T): void => {
        if (m?.type !== type) return;
        this.proc.off("message", on);
        resolve(m);
      };
      this.proc.on("message", on);
    });
    return this.bounded(got, timeoutMs, `message ${type}`);
  }

  send(m: unknown): void {
    this.proc.send!(m as object);
  }

  write(s: string): void {
    this.proc.stdin!.write(s);
  }

  /** Closes the child's stdin (the benchmarks' children take it as "stop"). */
  endInput(): void {
    this.proc.stdin?.end();
  }

  /** CPU seconds (user + system) used so far by this process and its live descendants. */
  cpuSeconds(): number {
    return treeCpuSeconds(this.pid);
  }

  /** The last lines it wrote to a piped stderr, for error messages. */
  stderrTail(): string {
    return this.err ? this.err.tail.join("\n") : "";
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Sends `signal` (unless `ask` was given: then that asks it to stop) and SIGKILLs it after `graceMs`. */
  async stop(o: { signal?: NodeJS.Signals; graceMs?: number; ask?: () => void } = {}): Promise<void> {
    if (!this.alive) return;
    if (o.ask) o.ask();
    else this.proc.kill(o.signal ?? "SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), o.graceMs ?? 5000);
    await this.exited;
    clearTimeout(timer);
  }

  /** `p`, or a rejection if the child exits first or `timeoutMs` passes. */
  private bounded<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const fail = (why: string): Error => {
      const tail = this.stderrTail();
      return new Error(`${this.name} ${why} while waiting for ${what}${tail ? `:\n${tail}` : ""}`);
    };
    const exit = this.closed.then((code) => Promise.reject(fail(`exited (${code})`)));
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(fail(`timed out after ${timeoutMs} ms`)), timeoutMs)));
    exit.catch(() => {});
    return Promise.race([p, exit, timeout]).finally(() => clearTimeout(timer));
  }
}

/** Runs a command to its end; rejects on a non-zero exit. */
export async function run(cmd: string, args: string[], o: ChildOptions & { timeoutMs?: number } = {}): Promise<{ stdout: string; ms: number }> {
  const t0 = performance.now();
  const c = Child.start(cmd, args, { stdout: "pipe", stderr: "pipe", ...o });
  const out: string[] = [];
  c.proc.stdout?.removeAllListeners("data");
  c.proc.stdout?.on("data", (d: Buffer) => out.push(d.toString()));
  const timer = setTimeout(() => c.proc.kill("SIGKILL"), o.timeoutMs ?? 600_000);
  const code = await c.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${c.name} ${args.join(" ")} exited ${code}${c.stderrTail() ? `:\n${c.stderrTail()}` : ""}`);
  return { stdout: out.join(""), ms: performance.now() - t0 };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; 10 ms clock ticks). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (CLK_TCK = 100)
}

/** CPU seconds of a process and all its live descendants (sshd forks one process per connection). */
export function treeCpuSeconds(pid: number): number {
  let sum = 0;
  try {
    sum = cpuSeconds(pid);
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const kids = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
      for (const k of kids ? kids.split(" ") : []) sum += treeCpuSeconds(Number(k));
    }
  } catch {
    /* gone meanwhile */
  }
  return sum;
}

/** Polls `ok` every 50 ms until it holds; throws after `timeoutMs`. */
export async function waitUntil(what: string, ok: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function listening(port: number): Promise<boolean> {
  return new Promise<boolean>((r) => {
    const s = connect(port, "127.0.0.1", () => (s.destroy(), r(true)));
    s.once("error", () => r(false));
  });
}

/** `--name value` from the command line. */
export function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}
