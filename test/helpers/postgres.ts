/**
 * A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` into a temp folder, listening on a
 * free loopback port, trust authentication, fsync off. As root, the server runs as `postgres`
 * (PostgreSQL refuses to run as root).
 *
 * `netns`: the server runs inside that network namespace (`ip netns exec`), listening on `listen`
 * (an address of the namespace) and port 5432 unless `port` says otherwise; `createDatabase` is
 * then not available (this process cannot reach it), `psql` is.
 */
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { appendFileSync, chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./ports.ts";

function binDir(): string {
  const base = "/usr/lib/postgresql";
  if (!existsSync(base)) throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)");
  const v = readdirSync(base).sort((a, b) => Number(b) - Number(a))[0];
  return join(base, v!, "bin");
}

export interface TestPostgres {
  /** URL of the `postgres` database of the cluster. */
  url: string;
  /** Creates a fresh empty database and returns its URL (one per test keeps tests apart). */
  createDatabase(): Promise<string>;
  /** `pg_ctl stop -m fast`: the server ends every session and stops; the cluster stays. */
  shutdown(): Promise<void>;
  /** `pg_ctl start` again after `shutdown`, waiting until it accepts connections. */
  startAgain(): Promise<void>;
  /** `psql -At -c SQL` on the `postgres` database: the rows, one a line, columns split by `|`. */
  psql(sql: string): string;
  /** Stops the server and removes the cluster. */
  stop(): Promise<void>;
}

export interface PostgresOptions {
  /** Run the server (and psql) inside this network namespace. */
  netns?: string | undefined;
  /** The address it listens on (default 127.0.0.1). */
  listen?: string | undefined;
  port?: number | undefined;
}

export async function startPostgres(o: PostgresOptions = {}): Promise<TestPostgres> {
  const dir = mkdtempSync(join(tmpdir(), "opencmg-pg-"));
  const data = join(dir, "data");
  const asRoot = process.getuid?.() === 0;
  const pgUser = asRoot ? Number(execFileSync("id", ["-u", "postgres"]).toString().trim()) : undefined;
  const pgGroup = asRoot ? Number(execFileSync("id", ["-g", "postgres"]).toString().trim()) : undefined;
  if (asRoot) {
    chmodSync(dir, 0o700);
    chownSync(dir, pgUser!, pgGroup!);
  }
  const inNs = (cmd: string, args: string[]): [string, string[]] => (o.netns ? ["ip", ["netns", "exec", o.netns, cmd, ...args]] : [cmd, args]);
  const run = (cmd: string, args: string[]): string => {
    const full = join(binDir(), cmd);
    const [c, a] = asRoot ? inNs("runuser", ["-u", "postgres", "--", full, ...args]) : inNs(full, args);
    return execFileSync(c, a, { stdio: "pipe", encoding: "utf8" });
  };
  run("initdb", ["-D", data, "-U", "opencmg", "--auth=trust", "--no-sync", "-E", "UTF8"]);
  const host = o.listen ?? "127.0.0.1";
  // initdb trusts loopback only: a server on another address trusts connections from that address (its own host).
  if (host !== "127.0.0.1") appendFileSync(join(data, "pg_hba.conf"), `host all all ${host}/32 trust\n`);
  const port = o.port ?? (o.netns ? 5432 : await freePort());
  const startArgs = ["-D", data, "-l", join(dir, "server.log"), "-w", "-t", "60", "-o", `-p ${port} -k ${dir} -c listen_addresses=${host} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`, "start"];
  run("pg_ctl", startArgs);
  /** pg_ctl without blocking this process (its clients keep being served meanwhile). */
  const pgCtl = async (args: string[]): Promise<void> => {
    const full = join(binDir(), "pg_ctl");
    const [c, a] = asRoot ? inNs("runuser", ["-u", "postgres", "--", full, ...args]) : inNs(full, args);
    await promisify(execFile)(c, a);
  };
  const url = `postgres://opencmg@${host}:${port}/postgres`;
  let n = 0;
  let removed = false;
  return {
    url,
    async createDatabase() {
      if (o.netns) throw new Error("createDatabase: the server is in another network namespace");
      const name = `t${process.pid}_${++n}`;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgres://opencmg@${host}:${port}/${name}`;
    },
    shutdown: () => pgCtl(["-D", data, "-m", "fast", "-w", "-t", "60", "stop"]),
    startAgain: () => pgCtl(startArgs),
    psql(sql) {
      const [c, a] = inNs("psql", ["-X", "-At", "-d", url, "-c", sql]);
      return execFileSync(c, a, { stdio: "pipe", encoding: "utf8", maxBuffer: 64 << 20 });
    },
    async stop() {
      if (removed) return;
      removed = true;
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {
        // not running (stopped on purpose, or never started again)
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
