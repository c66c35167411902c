/**
 * The local "internet" stand-in: one HTTP and one HTTPS server on 127.0.0.1 (ephemeral ports),
 * with routes a test registers (serve bytes, hang, close mid-body, answer a status...), and a TCP
 * echo server for raw tunnels.
 *
 * TLS comes from a test CA made with src/pki: the server certificate names `names` (plus
 * 127.0.0.1). Two extra behaviours are chosen by SNI:
 *   - `untrusted.example` (and any name in `untrustedNames`) gets a certificate from a second CA
 *     nobody trusts;
 *   - any name not in the certificate gets the default one, so a client sees a name mismatch.
 *
 * Names reach these servers through Squid's hosts_file (proxy routes) or through `lookup`
 * (direct routes): `hosts()` gives the map for both, so no lookup ever leaves the machine.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createServer as createTcpServer, type AddressInfo, type LookupFunction, type Server as TcpServer, type Socket } from "node:net";
import { createSecureContext } from "node:tls";
import { createCa, issueCert, type IssuedCert } from "../../src/pki/issue.ts";
import { freePort } from "./ports.ts";

export type Scheme = "http" | "https";
export type Route = (req: IncomingMessage, res: ServerResponse, scheme: Scheme) => void;

export interface InternetOptions {
  /** Names in the server certificate and in `hosts()` (defaults below). */
  names?: string[];
  /** Names served with a certificate from an untrusted CA. */
  untrustedNames?: string[];
}

export const DEFAULT_NAMES = ["download.windowsupdate.com", "go.microsoft.com", "update.opencmg.test", "localhost"];

export interface RequestRecord {
  scheme: Scheme;
  method: string;
  path: string;
  host: string;
}

export interface Internet {
  host: "127.0.0.1";
  httpPort: number;
  httpsPort: number;
  /** A TCP server that sends back every byte it receives. */
  echoPort: number;
  /** The test CA that signed the server certificate: give it to clients as a trusted root. */
  ca: IssuedCert;
  /** A CA whose certificates nobody trusts (served for `untrustedNames`). */
  untrustedCa: IssuedCert;
  /** URL of `path` on this internet under the name `name` (default the first name). */
  url(scheme: Scheme, path: string, name?: string): string;
  /** Registers (or replaces) the handler of a path; both schemes share the routes. */
  route(path: string, handler: Route): void;
  /** name -> address for every name this internet answers to (Squid's hosts_file, `lookup`). */
  hosts(): Record<string, string>;
  /** A resolver for direct routes: the names of `hosts()`, ENOTFOUND for anything else. */
  lookup: LookupFunction;
  /** TCP connections accepted so far, per scheme. */
  connections(): { http: number; https: number };
  requests(): RequestRecord[];
  stop(): Promise<void>;
}

/** Route: answers 200 with these bytes. */
export function serveBytes(body: Buffer, contentType = "application/octet-stream"): Route {
  return (_req, res) => {
    res.writeHead(200, { "content-type": contentType, "content-length": body.length });
    res.end(body);
  };
}

/** Route: answers a status with a short text body. */
export function serveStatus(status: number, text = `status ${status}`): Route {
  return (_req, res) => {
    res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
    res.end(text);
  };
}

/** Route: reads the request and never answers (the socket is closed by `stop()`). */
export function hang(): Route {
  return () => {};
}

/**
 * Route: announces `body.length` bytes, sends the first `sendBytes`, then closes the connection
 * (an interrupted download).
 */
export function closeMidBody(body: Buffer, sendBytes: number): Route {
  return (_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": body.length });
    res.write(body.subarray(0, sendBytes), () => {
      // Let the bytes leave before the close, so the client sees a short body rather than a reset.
      setTimeout(() => res.socket?.destroy(), 20);
    });
  };
}

/** A loopback port on which nothing listens (connections are refused). */
export async function refusingPort(): Promise<number> {
  return freePort();
}

/**
 * Starts the stand-in.
 *
 * @example
 * const net = await startInternet();
 * net.route("/kb123.cab", serveBytes(randomBytes(1 << 20)));
 * const squid = await startSquid({ hosts: net.hosts() });
 * // fetch net.url("https", "/kb123.cab") through the proxy, trusting net.ca.certPem
 */
export async function startInternet(o: InternetOptions = {}): Promise<Internet> {
  const names = o.names ?? DEFAULT_NAMES;
  const untrustedNames = ["untrusted.example", ...(o.untrustedNames ?? [])];
  const mismatchNames = ["wrong-name.example"];
  const ca = await createCa({ commonName: "OpenCMG Test Internet CA" });
  const untrustedCa = await createCa({ commonName: "Untrusted Test CA" });
  const serverCert = await issueCert({ issuer: ca, commonName: names[0]!, dnsNames: names, ipAddresses: ["127.0.0.1"], usage: "server" });
  const untrustedCert = await issueCert({ issuer: untrustedCa, commonName: untrustedNames[0]!, dnsNames: untrustedNames, usage: "server" });
  const untrustedContext = createSecureContext({ cert: untrustedCert.certPem, key: untrustedCert.keyPem });

  const routes = new Map<string, Route>();
  const records: RequestRecord[] = [];
  const counts = { http: 0, https: 0 };
  const sockets = new Set<Socket>();

  const handle = (scheme: Scheme) => (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (records.length < 10_000) records.push({ scheme, method: req.method ?? "", path, host: req.headers.host ?? "" });
    const route = routes.get(path);
    if (route) route(req, res, scheme);
    else serveStatus(404, `no route ${path}`)(req, res, scheme);
  };
  const http: HttpServer = createHttpServer({ keepAliveTimeout: 30_000 }, handle("http"));
  const https: HttpsServer = createHttpsServer(
    {
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      keepAliveTimeout: 30_000,
      SNICallback: (servername, cb) => cb(null, untrustedNames.includes(servername) ? untrustedContext : undefined),
    },
    handle("https"),
  );
  const echo: TcpServer = createTcpServer((s) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve, reject) => {
    echo.once("error", reject);
    echo.listen(0, "127.0.0.1", () => resolve());
  });
  for (const [server, scheme] of [
    [http, "http"],
    [https, "https"],
  ] as const) {
    server.on("connection", (s: Socket) => {
      counts[scheme]++;
      sockets.add(s);
      s.once("close", () => sockets.delete(s));
    });
    // TLS failures are part of the tests; keep them off stderr.
    server.on("tlsClientError", () => {});
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
  }

  const hostMap: Record<string, string> = {};
  for (const n of [...names, ...untrustedNames, ...mismatchNames]) hostMap[n] = "127.0.0.1";

  const lookup = ((hostname: string, options: unknown, callback: unknown) => {
    const cb = (typeof options === "function" ? options : callback) as (...a: unknown[]) => void;
    const all = typeof options === "object" && options !== null && (options as { all?: boolean }).all;
    const address = hostname === "127.0.0.1" ? hostname : hostMap[hostname.toLowerCase()];
    process.nextTick(() => {
      if (!address) {
        const e = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND", errno: -3008, syscall: "getaddrinfo", hostname });
        cb(e);
      } else if (all) cb(null, [{ address, family: 4 }]);
      else cb(null, address, 4);
    });
  }) as LookupFunction;

  return {
    host: "127.0.0.1",
    httpPort: (http.address() as AddressInfo).port,
    httpsPort: (https.address() as AddressInfo).port,
    echoPort: (echo.address() as AddressInfo).port,
    ca,
    untrustedCa,
    url(scheme, path, name = names[0]!) {
      const port = scheme === "http" ? (http.address() as AddressInfo).port : (https.address() as AddressInfo).port;
      return `${scheme}://${name}:${port}${path}`;
    },
    route(path, handler) {
      routes.set(path, handler);
    },
    hosts: () => ({ ...hostMap }),
    lookup,
    connections: () => ({ ...counts }),
    requests: () => [...records],
    async stop() {
      for (const s of sockets) s.destroy();
      await Promise.all([http, https, echo].map((server) => new Promise((r) => server.close(r))));
    },
  };
}
