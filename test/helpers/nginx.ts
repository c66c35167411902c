/**
 * A real nginx for tests where a normalizing server matters: its own config and folders in a temp
 * directory, one loopback port, fixed answers per location (no files served). nginx merges
 * slashes, decodes %XX and removes dot segments before it picks a location, as a management point
 * behind IIS would, so a path that climbs out of a role shows here.
 *
 * Locations: `/role/...` answers "role <uri>", `/forbidden/...` "forbidden <uri>", `/admin...`
 * "admin <uri>", anything else 404 "other <uri>". The access log has one line per request:
 * `<request line URI>|<normalized URI>|<status>`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.ts";

const NGINX = "/usr/sbin/nginx";

export interface TestNginx {
  port: number;
  url: string;
  /** Access log lines so far: what nginx was asked for and what it made of it. */
  access(): { requestUri: string; uri: string; status: number }[];
  close(): Promise<void>;
}

export async function startNginx(): Promise<TestNginx> {
  const dir = mkdtempSync(join(tmpdir(), "opencmg-nginx-"));
  for (const d of ["body", "proxy", "fastcgi", "uwsgi", "scgi"]) mkdirSync(join(dir, d));
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  writeFileSync(
    join(dir, "nginx.conf"),
    `${asRoot ? "user root;\n" : ""}daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 128; }
http {
  log_format paths '$request_uri|$uri|$status';
  access_log ${dir}/access.log paths;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  default_type text/plain;
  server {
    listen 127.0.0.1:${port};
    location /role/ { return 200 "role $uri\\n"; }
    location = /role { return 200 "role $uri\\n"; }
    location /forbidden/ { return 200 "forbidden $uri\\n"; }
    location /admin { return 200 "admin $uri\\n"; }
    location / { return 404 "other $uri\\n"; }
  }
}
`,
  );
  const proc: ChildProcess = spawn(NGINX, ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve(true)));
      s.once("error", () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    access() {
      const p = join(dir, "access.log");
      if (!existsSync(p)) return [];
      return readFileSync(p, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => {
          const [requestUri = "", uri = "", status = "0"] = l.split("|");
          return { requestUri, uri, status: Number(status) };
        });
    },
    async close() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One raw HTTP/1.1 request to nginx, the path sent exactly as given; resolves with status and body. */
export function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1", () => s.write(`GET ${path} HTTP/1.1\r\nHost: role.test\r\nConnection: close\r\n\r\n`));
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString("latin1")));
    s.on("error", reject);
    s.on("close", () => {
      const m = /^HTTP\/1\.1 (\d+)/.exec(got);
      resolve({ status: m ? Number(m[1]) : 0, body: got.slice(got.indexOf("\r\n\r\n") + 4) });
    });
  });
}
