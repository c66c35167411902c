/**
 * The nginx rows of bench/gateway.ts, each nginx one process with one worker (as each of the
 * product's parts is one process), no access log, upstream keep-alive:
 *   B/C  one hop: plain HTTP on `port`, mutual TLS (the gateway's certificates) on `tlsPort`
 *   G    two hops: mutual TLS in front, then TLS with a client certificate (the tunnel's
 *        certificates) to a second nginx, which proxies to the backend
 *   H    the front of the OpenSSH tunnel: mutual TLS in, plain HTTP to the forwarded port
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IssuedCert } from "../../src/pki/issue.ts";
import type { TestPki } from "../../test/helpers/pki-fixtures.ts";
import { freePort } from "../../test/helpers/ports.ts";
import { Child, listening, waitUntil } from "../lib/child.ts";
import { SERVERNAME } from "./load.ts";

export interface Nginx {
  pid: number;
  child: Child;
  stop(): Promise<void>;
}

const PLAIN_LOCATION = `proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off;`;

/** A server block in mutual TLS with the gateway's server certificate and the devices' trust (files written by `mtlsFiles`). */
const mtlsServer = (dir: string, port: number, location: string): string => `
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${dir}/server.pem; ssl_certificate_key ${dir}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate ${dir}/clients.pem; ssl_verify_client on; ssl_verify_depth 3;
    location / { ${location} }
  }`;

function mtlsFiles(dir: string, pki: TestPki): void {
  writeFileSync(join(dir, "server.pem"), pki.server.certPem);
  writeFileSync(join(dir, "server.key"), pki.server.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, "clients.pem"), pki.trust.roots.join("\n") + "\n" + pki.trust.intermediates.join("\n"));
}

/** Starts one nginx with `http` as its http{} body (after `files(dir)`); resolves once every port accepts. */
async function startNginx(name: string, ports: number[], body: (dir: string) => string, scale: { workers: number; connections: number } = { workers: 1, connections: 4096 }): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), `opencmg-nginx-${name}-`));
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off; master_process ${scale.workers > 1 ? "on" : "off"}; worker_processes ${scale.workers};
worker_rlimit_nofile ${scale.connections + 1024};
pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections ${scale.connections}; }
http {
  access_log off;
  client_body_temp_path ${dir}/cb; proxy_temp_path ${dir}/pt; fastcgi_temp_path ${dir}/ft; uwsgi_temp_path ${dir}/ut; scgi_temp_path ${dir}/st;
${body(dir)}
}
`,
  );
  const child = Child.start("/usr/sbin/nginx", ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")], { name: `nginx ${name}`, stdout: "ignore", stderr: "ignore" });
  try {
    await waitUntil(`nginx ${name}`, async () => {
      if (!child.alive) throw new Error("exited");
      for (const p of ports) if (!(await listening(p))) return false;
      return true;
    }, 5000);
  } catch (e) {
    let log = "";
    try { log = readFileSync(join(dir, "error.log"), "utf8"); } catch { /* none */ }
    await child.stop();
    throw new Error(`nginx ${name} did not start (${(e as Error).message}): ${log}`);
  }
  return {
    pid: child.pid,
    child,
    stop: async () => {
      await child.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** B and C: one nginx, plain HTTP on `port`, mutual TLS (same certificates as the gateway) on `tlsPort`. */
export async function startBaselineNginx(backendPort: number, pki: TestPki): Promise<Nginx & { port: number; tlsPort: number }> {
  const [port, tlsPort] = [await freePort(), await freePort()];
  const location = `proxy_pass http://be; ${PLAIN_LOCATION}`;
  const nginx = await startNginx("one-hop", [port, tlsPort], (dir) => {
    mtlsFiles(dir, pki);
    return `  upstream be { server 127.0.0.1:${backendPort}; keepalive 64; }
  server { listen 127.0.0.1:${port}; location / { ${location} } }${mtlsServer(dir, tlsPort, location)}`;
  });
  return { ...nginx, port, tlsPort };
}

/**
 * bench/capacity.ts's reference: C's mutual TLS server (the same certificates and trust), sized for
 * `devices` held connections: as many workers as needed to keep each under `perWorker` connections
 * (a process may hold only so many open files), idle connections kept for an hour.
 */
export async function startCapacityNginx(backendPort: number, pki: TestPki, devices: number, perWorker: number): Promise<Nginx & { tlsPort: number }> {
  const tlsPort = await freePort();
  const workers = Math.max(1, Math.ceil(devices / perWorker));
  const connections = Math.ceil(devices / workers) + 1024;
  const location = `proxy_pass http://be; ${PLAIN_LOCATION}`;
  const nginx = await startNginx(
    "capacity",
    [tlsPort],
    (dir) => {
      mtlsFiles(dir, pki);
      return `  keepalive_timeout 3600s; keepalive_requests 1000000; client_body_buffer_size 16k;
  upstream be { server 127.0.0.1:${backendPort}; keepalive 256; }${mtlsServer(dir, tlsPort, location)}`;
    },
    { workers, connections },
  );
  return { ...nginx, tlsPort };
}

/**
 * G: the product's two hops built from nginx. The front takes the devices' mutual TLS and proxies
 * over TLS, presenting the tunnel's client certificate and checking the inner one's server
 * certificate against the site CA, with keep-alive; the inner nginx checks that client
 * certificate and proxies to the backend.
 */
export async function startTwoHopNginx(
  backendPort: number,
  pki: TestPki,
  tunnel: { siteCa: IssuedCert; server: IssuedCert; client: IssuedCert },
): Promise<{ front: Nginx; inner: Nginx; port: number }> {
  const [port, innerPort] = [await freePort(), await freePort()];
  const inner = await startNginx("inner", [innerPort], (dir) => {
    writeFileSync(join(dir, "inner.pem"), tunnel.server.certPem);
    writeFileSync(join(dir, "inner.key"), tunnel.server.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, "site-ca.pem"), tunnel.siteCa.certPem);
    return `  upstream be { server 127.0.0.1:${backendPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${innerPort} ssl;
    ssl_certificate ${dir}/inner.pem; ssl_certificate_key ${dir}/inner.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate ${dir}/site-ca.pem; ssl_verify_client on; ssl_verify_depth 2;
    keepalive_requests 1000000;
    location / { proxy_pass http://be; ${PLAIN_LOCATION} }
  }`;
  });
  try {
    const front = await startNginx("front", [port], (dir) => {
      mtlsFiles(dir, pki);
      writeFileSync(join(dir, "tunnel-client.pem"), tunnel.client.certPem);
      writeFileSync(join(dir, "tunnel-client.key"), tunnel.client.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, "site-ca.pem"), tunnel.siteCa.certPem);
      const location = `proxy_pass https://inner; ${tlsUpstream(dir)}`;
      return `  upstream inner { server 127.0.0.1:${innerPort}; keepalive 64; keepalive_requests 1000000; }${mtlsServer(dir, port, location)}`;
    });
    return { front, inner, port };
  } catch (e) {
    await inner.stop();
    throw e;
  }
}

const tlsUpstream = (dir: string): string =>
  `${PLAIN_LOCATION}
      proxy_ssl_certificate ${dir}/tunnel-client.pem; proxy_ssl_certificate_key ${dir}/tunnel-client.key;
      proxy_ssl_trusted_certificate ${dir}/site-ca.pem; proxy_ssl_verify on; proxy_ssl_verify_depth 2;
      proxy_ssl_name ${SERVERNAME}; proxy_ssl_server_name on; proxy_ssl_session_reuse on; proxy_ssl_protocols TLSv1.2 TLSv1.3;`;

/** H's front: mutual TLS in, plain HTTP with keep-alive to `upstreamPort` (the ssh -R forwarded port). */
export async function startFrontNginx(upstreamPort: number, pki: TestPki): Promise<Nginx & { port: number }> {
  const port = await freePort();
  const nginx = await startNginx("ssh-front", [port], (dir) => {
    mtlsFiles(dir, pki);
    return `  upstream fwd { server 127.0.0.1:${upstreamPort}; keepalive 64; }${mtlsServer(dir, port, `proxy_pass http://fwd; ${PLAIN_LOCATION}`)}`;
  });
  return { ...nginx, port };
}
