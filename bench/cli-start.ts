/**
 * Whole-process start of the built `opencmg` command against `node -e 0`, in the same run.
 *
 *   npx tsx bench/cli-start.ts [--runs 15] [--warmup 2] [--rss-runs 3] [--keep-env]
 *
 * Builds dist/ first if it is missing (scripts/build.mjs). Makes a SQLite site in a temp folder
 * (`site init`, `server add sup01.contoso.com`, `proxy set ... --host proxy.contoso.com --port
 * 8080`), then runs each command `--warmup` times untimed and `--runs` times timed, interleaved
 * (one of each command per round, the order turning each round), every run a fresh
 * `node` process with stdout and stderr to /dev/null:
 *   node -e 0 | opencmg --version | opencmg --help | opencmg --data DIR proxy show FQDN --json
 * Wall time is from spawn to exit as this process sees it; CPU time (user + system) is what the
 * child adds to this process's children's times in /proc/self/stat (10 ms clock ticks). Max RSS
 * comes from a separate pass under GNU time (`--rss-runs` runs of each; skipped without
 * /usr/bin/time). Prints median/min/max and the ratio of the medians to `node -e 0`, against the
 * goals: --version <= 3x, proxy show --json <= 5x. NODE_EXTRA_CA_CERTS and NODE_OPTIONS are left
 * out of the timed children's environment (they slow every start alike; --keep-env keeps them).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arg, Child, run } from "./lib/child.ts";

const root = join(import.meta.dirname, "..");
const bin = join(root, "bin", "opencmg.mjs");
const runs = Number(arg("runs", "15"));
const warmup = Number(arg("warmup", "2"));
const rssRuns = Number(arg("rss-runs", "3"));
const FQDN = "sup01.contoso.com";
/**
 * Variables that make every Node start do more (NODE_EXTRA_CA_CERTS pointing at the system bundle
 * parses ~150 certificates before any code runs): taken out of the children's environment so the
 * baseline is a bare `node`, unless --keep-env.
 */
const HEAVY_ENV = ["NODE_EXTRA_CA_CERTS", "NODE_OPTIONS"];
const keepEnv = process.argv.includes("--keep-env");
const removed = keepEnv ? [] : HEAVY_ENV.filter((k) => process.env[k] !== undefined);
const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !removed.includes(k)));

/** user + system CPU seconds of this process's waited-for children so far (cutime + cstime). */
function childrenCpuSeconds(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[13]) + Number(f[14])) / 100;
}

/** One run: wall ms and CPU ms of a fresh process; throws if it fails. */
async function once(args: string[]): Promise<{ wallMs: number; cpuMs: number }> {
  const cpu0 = childrenCpuSeconds();
  const t0 = performance.now();
  const c = Child.start(process.execPath, args, { stdout: "ignore", stderr: "ignore", env });
  const code = await c.exited;
  const wallMs = performance.now() - t0;
  if (code !== 0) throw new Error(`node ${args.join(" ")} exited ${code}`);
  return { wallMs, cpuMs: (childrenCpuSeconds() - cpu0) * 1000 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  if (!existsSync(join(root, "dist", "cli", "main.js"))) {
    process.stderr.write("dist/ is missing: building (scripts/build.mjs)...\n");
    await run(process.execPath, [join(root, "scripts", "build.mjs")], { cwd: root });
  }
  const dir = mkdtempSync(join(tmpdir(), "opencmg-bench-cli-"));
  try {
    const data = join(dir, "data");
    const cli = (...a: string[]): Promise<{ stdout: string }> => run(process.execPath, [bin, "--data", data, ...a], { cwd: root });
    await cli("site", "init");
    await cli("server", "add", FQDN);
    await cli("proxy", "set", FQDN, "--host", "proxy.contoso.com", "--port", "8080");

    const commands: { label: string; args: string[]; goal?: number }[] = [
      { label: "node -e 0", args: ["-e", "0"] },
      { label: "opencmg --version", args: [bin, "--version"], goal: 3 },
      { label: "opencmg --help", args: [bin, "--help"] },
      { label: "opencmg proxy show --json", args: [bin, "--data", data, "proxy", "show", FQDN, "--json"], goal: 5 },
    ];
    // What they print is right (checked once, outside the timed runs).
    const version = (await run(process.execPath, [bin, "--version"])).stdout.trim();
    if (!/^\d+\.\d+\.\d+/.test(version)) throw new Error(`--version printed ${JSON.stringify(version)}`);
    const shown = JSON.parse((await run(process.execPath, commands[3]!.args)).stdout) as { host?: string; port?: number };
    if (shown.host !== "proxy.contoso.com" || shown.port !== 8080) throw new Error(`proxy show printed ${JSON.stringify(shown)}`);

    const wall: number[][] = commands.map(() => []);
    const cpu: number[][] = commands.map(() => []);
    for (let round = 0; round < warmup + runs; round++) {
      for (let j = 0; j < commands.length; j++) {
        const i = (j + round) % commands.length;
        const r = await once(commands[i]!.args);
        if (round < warmup) continue;
        wall[i]!.push(r.wallMs);
        cpu[i]!.push(r.cpuMs);
      }
    }
    // Max RSS: a separate pass under GNU time (its own fork and exec would add to the wall time).
    const rss: (number | null)[] = [];
    for (const c of commands) {
      if (!existsSync("/usr/bin/time") || rssRuns < 1) {
        rss.push(null);
        continue;
      }
      const kib: number[] = [];
      for (let k = 0; k < rssRuns; k++) {
        const out = join(dir, "time.out");
        await run("/usr/bin/time", ["-f", "%M", "-o", out, process.execPath, ...c.args], { env });
        kib.push(Number(readFileSync(out, "utf8").trim().split("\n").pop()));
      }
      rss.push(median(kib) / 1024);
    }

    const base = median(wall[0]!);
    const baseCpu = median(cpu[0]!);
    const lines: string[] = [];
    lines.push(`Start of the built CLI (node ${process.version}, ${runs} runs each, interleaved, after ${warmup} warm-up rounds; wall ms spawn to exit)`);
    lines.push("");
    lines.push(`${"command".padEnd(28)}${"median".padStart(8)}${"min".padStart(8)}${"max".padStart(8)}${"x node".padStart(8)}${"CPU ms".padStart(8)}${"CPU x".padStart(7)}${"RSS MiB".padStart(9)}   goal (wall x node)`);
    commands.forEach((c, i) => {
      const m = median(wall[i]!);
      const ratio = m / base;
      const goal = c.goal ? `<= ${c.goal}x ${ratio <= c.goal ? "met" : "missed"}` : "";
      const r = rss[i];
      lines.push(
        `${c.label.padEnd(28)}${m.toFixed(1).padStart(8)}${Math.min(...wall[i]!).toFixed(1).padStart(8)}${Math.max(...wall[i]!).toFixed(1).padStart(8)}` +
          `${ratio.toFixed(2).padStart(8)}${median(cpu[i]!).toFixed(0).padStart(8)}${(median(cpu[i]!) / baseCpu).toFixed(2).padStart(7)}${(r === null || r === undefined ? "-" : r.toFixed(1)).padStart(9)}   ${goal}`.trimEnd(),
      );
    });
    lines.push("");
    lines.push("CPU ms: median user + system of the process (10 ms clock ticks), CPU x its ratio to node -e 0 (steadier than wall on a busy machine); RSS MiB: median max RSS under GNU time.");
    if (removed.length > 0) lines.push(`Left out of the children's environment (they slow every Node start alike; --keep-env keeps them): ${removed.join(", ")}.`);
    lines.push(`proxy show --json reads the SQLite site made in a temp folder (site init, server add ${FQDN}, proxy set).`);
    console.log(lines.join("\n"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
