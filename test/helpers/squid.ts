/**
 * A real Squid for tests: its own config and folders in a temp directory, listening on a free
 * loopback port, memory only (no disk cache), optional Basic authentication (basic_ncsa_auth with
 * a passwd file made by `openssl passwd -apr1`).
 *
 * Squid resolves target names itself, from its own `hosts_file` (so `download.windowsupdate.com`
 * reaches the local "internet" stand-in); anything else goes to `dns_nameservers 127.0.0.1`, where
 * nothing answers, so no lookup leaves the machine and unknown names (`*.invalid`) fail after
 * `dns_timeout`. As root, Squid drops to its Debian user (`proxy`), so the folder is chowned to it.
 *
 * The access log uses its own format (see `AccessEntry`): the client port tells connections
 * apart (reuse tests) and the Proxy-Authorization request header is logged, URL-encoded, so a test
 * can see whether one was sent. Test secrets only: never do this on a real proxy. The readiness
 * probe leaves one line with method "-" at the top.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";

const SQUID = "/usr/sbin/squid";
const HELPERS = ["/usr/lib/squid", "/usr/lib64/squid", "/usr/libexec/squid"];

export interface SquidOptions {
  /** Require Basic proxy authentication with this one account. */
  auth?: { username: string; password: string };
  /** Extra name -> address lines for Squid's hosts_file (localhost is always there). */
  hosts?: Record<string, string>;
  /** Seconds Squid waits for a DNS answer before failing a name (default 1). */
  dnsTimeoutSeconds?: number;
}

/** One line of the test access log. */
export interface AccessEntry {
  /** Unix time, seconds with milliseconds. */
  time: number;
  client: string;
  /** Source port of the client connection: equal ports = the same connection. */
  clientPort: number;
  /** Squid's result code, e.g. TCP_MISS, TCP_TUNNEL, TCP_DENIED. */
  result: string;
  status: number;
  bytes: number;
  method: string;
  url: string;
  /** Authenticated user, "-" when none. */
  user: string;
  /** The Proxy-Authorization header the client sent, "" when none. */
  proxyAuthorization: string;
  /** e.g. HIER_DIRECT/127.0.0.1 */
  hierarchy: string;
}

export interface TestSquid {
  host: "127.0.0.1";
  port: number;
  dir: string;
  /** Process id of Squid (-N: one process does the proxying). */
  pid: number;
  /** Stops Squid (and its helpers); resolves when it has exited. Idempotent. */
  stop(): Promise<void>;
  /** The access log as written so far (CONNECT lines appear when the tunnel closes). */
  accessLog(): Promise<string>;
  accessEntries(): Promise<AccessEntry[]>;
  /**
   * Polls the access log until `ready(entries)` holds (bounded, 10 s): Squid writes a CONNECT line
   * when it notices the tunnel closed, a moment after the client closed it.
   */
  waitForEntries(ready: (entries: AccessEntry[]) => boolean): Promise<AccessEntry[]>;
  /** Squid's own cache.log (for failure messages). */
  cacheLog(): string;
}

/** Where Squid's helper programs live (basic_ncsa_auth). */
export function squidHelper(name: string): string {
  for (const d of HELPERS) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  throw new Error(`Squid helper ${name} not found under ${HELPERS.join(", ")} (apt-get install squid)`);
}

/** The user Squid switches to when started as root. */
function effectiveUser(): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const name of ["proxy", "squid", "nobody"]) {
    try {
      const uid = Number(execFileSync("id", ["-u", name], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim());
      const gid = Number(execFileSync("id", ["-g", name], { stdio: ["ignore", "pipe", "ignore"] }).toString().trim());
      return { name, uid, gid };
    } catch {
      // try the next one
    }
  }
  throw new Error("running as root, but none of the users proxy, squid, nobody exists for Squid to switch to");
}

function apr1(password: string): string {
  // The password goes through stdin, not the command line (ps would show it).
  return execFileSync("openssl", ["passwd", "-apr1", "-stdin"], { input: password + "\n" }).toString().trim();
}

function config(dir: string, port: number, o: SquidOptions, user: string | undefined): string {
  const lines = [
    `http_port 127.0.0.1:${port}`,
    `visible_hostname opencmg-test-squid`,
    `pid_filename ${join(dir, "squid.pid")}`,
    `cache_log ${join(dir, "cache.log")}`,
    // %>p: client port (one per connection). %#{...}>h: the header, URL-encoded (no spaces).
    `logformat opencmg %ts.%03tu %>a %>p %Ss/%03>Hs %<st %rm %ru %un %#{Proxy-Authorization}>h %Sh/%<a`,
    `access_log stdio:${join(dir, "access.log")} opencmg`,
    `buffered_logs off`,
    `cache_store_log none`,
    `coredump_dir ${dir}`,
    `netdb_filename none`,
    `pinger_enable off`,
    `icp_port 0`,
    `htcp_port 0`,
    `cache deny all`,
    `cache_mem 8 MB`,
    `hosts_file ${join(dir, "hosts")}`,
    `dns_nameservers 127.0.0.1`,
    `dns_timeout ${o.dnsTimeoutSeconds ?? 1} seconds`,
    `dns_retransmit_interval 1 seconds`,
    `negative_dns_ttl 1 seconds`,
    `shutdown_lifetime 0 seconds`,
    `max_filedescriptors 4096`,
    `acl loopback src 127.0.0.0/8 ::1`,
    `http_access deny !loopback`,
  ];
  if (user) lines.push(`cache_effective_user ${user}`);
  if (o.auth) {
    lines.push(
      `auth_param basic program ${squidHelper("basic_ncsa_auth")} ${join(dir, "passwd")}`,
      `auth_param basic children 3 startup=1 idle=1`,
      `auth_param basic realm opencmg-test`,
      `auth_param basic credentialsttl 1 minute`,
      `acl authenticated proxy_auth REQUIRED`,
      // proxy_auth last on a deny line: Squid answers 407 (a challenge), not 403.
      `http_access deny !authenticated`,
    );
  }
  // Any port, CONNECT included: the test "internet" listens on ephemeral ports.
  lines.push(`http_access allow loopback`, `http_access deny all`);
  return lines.join("\n") + "\n";
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Kills every Squid still running when the test process exits (a failed test never leaks one). */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  running.add(child);
  child.once("exit", () => running.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of running) c.kill("SIGKILL");
    });
  }
}

/**
 * Starts a Squid and resolves once its port accepts connections.
 *
 * @example
 * const squid = await startSquid({ auth: { username: "alice", password: "s3cret" }, hosts: { "download.windowsupdate.com": "127.0.0.1" } });
 * // ... new Egress({ mode: "proxy", host: squid.host, port: squid.port, credentials: { username: "alice", password: "s3cret" } })
 * await squid.stop();
 */
export async function startSquid(o: SquidOptions = {}): Promise<TestSquid> {
  if (!existsSync(SQUID)) throw new Error(`${SQUID} not found (apt-get install squid)`);
  const user = effectiveUser();
  // The port is free "a moment ago"; when another process takes it first, Squid exits and we retry.
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "opencmg-squid-"));
    try {
      return await startOnce(dir, await freePort(), o, user);
    } catch (e) {
      lastError = e as Error;
      rmSync(dir, { recursive: true, force: true });
      if (!/bind|in use/i.test(lastError.message)) break;
    }
  }
  throw lastError;
}

async function startOnce(dir: string, port: number, o: SquidOptions, user: ReturnType<typeof effectiveUser>): Promise<TestSquid> {
  const hosts = ["127.0.0.1 localhost", ...Object.entries(o.hosts ?? {}).map(([name, addr]) => `${addr} ${name}`)];
  writeFileSync(join(dir, "hosts"), hosts.join("\n") + "\n");
  if (o.auth) writeFileSync(join(dir, "passwd"), `${o.auth.username}:${apr1(o.auth.password)}\n`);
  writeFileSync(join(dir, "squid.conf"), config(dir, port, o, user?.name));
  for (const f of ["cache.log", "access.log"]) writeFileSync(join(dir, f), "");
  if (user) {
    chmodSync(dir, 0o755);
    for (const f of ["", "hosts", "squid.conf", "cache.log", "access.log", ...(o.auth ? ["passwd"] : [])]) {
      chownSync(join(dir, f), user.uid, user.gid);
    }
  }
  // -N: stay in the foreground (we own the process), -d 1: startup errors on stderr.
  const child = spawn(SQUID, ["-N", "-d", "1", "-f", join(dir, "squid.conf")], { stdio: ["ignore", "ignore", "pipe"] });
  track(child);
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    if (stderr.length < 20_000) stderr += d;
  });
  let exited: number | string | null | undefined;
  const exit = new Promise<void>((resolve) => child.once("exit", (code, signal) => ((exited = code ?? signal), resolve())));
  const cacheLog = (): string => {
    try {
      return readFileSync(join(dir, "cache.log"), "utf8");
    } catch {
      return "";
    }
  };

  // Bounded wait for the port (Squid is usually ready in under 100 ms).
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited !== undefined) {
      throw new Error(`squid exited (${exited}) before listening on ${port}:\n${stderr}\n${cacheLog()}`);
    }
    if (await portAccepts(port)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`squid did not listen on ${port} within 15 s:\n${stderr}\n${cacheLog()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }

  let stopping: Promise<void> | undefined;
  const accessLog = (): Promise<string> => readFile(join(dir, "access.log"), "utf8");
  return {
    host: "127.0.0.1",
    port,
    dir,
    pid: child.pid!,
    stop() {
      stopping ??= (async () => {
        if (exited === undefined) {
          // SIGKILL: a graceful shutdown takes Squid 1-2 s even with shutdown_lifetime 0, and a
          // test proxy has nothing to save (the access log is unbuffered). Its helpers exit when
          // their stdin closes.
          child.kill("SIGKILL");
          await exit;
        }
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
    accessLog,
    async accessEntries() {
      return parseAccessLog(await accessLog());
    },
    async waitForEntries(ready) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const entries = parseAccessLog(await accessLog());
        if (ready(entries)) return entries;
        if (Date.now() > deadline) throw new Error(`access log never reached the expected state:\n${await accessLog()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    cacheLog,
  };
}

export function parseAccessLog(text: string): AccessEntry[] {
  const out: AccessEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [result, status] = f[3]!.split("/");
    const auth = f[8] === "-" ? "" : decodeURIComponent(f[8]!);
    out.push({
      time: Number(f[0]),
      client: f[1]!,
      clientPort: Number(f[2]),
      result: result!,
      status: Number(status),
      bytes: Number(f[4]),
      method: f[5]!,
      url: f[6]!,
      user: f[7]!,
      proxyAuthorization: auth,
      hierarchy: f[9]!,
    });
  }
  return out;
}
