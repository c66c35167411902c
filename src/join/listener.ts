/**
 * The site's join listener (`site serve --join-listen`): HTTPS with a certificate from the site CA.
 * A joining server reads the site CA (and checks it against the fingerprint printed with its join
 * token), then joins with its one-time token and a certificate request. From then on it presents
 * the host certificate it got, and the site answers only what that server's roles need:
 *
 *   GET  /api/v1/join/ca                             the site CA (PEM), to be pinned by fingerprint
 *   POST /api/v1/join                                { token, csr, server? } -> { server, certificate, ca }
 *   GET  /api/v1/join/config                         the server's roles and their settings (403 once it has none)
 *   GET  /api/v1/join/connection-point               its connection point's configuration and proxy route
 *   POST /api/v1/join/connection-point/certificate   its tunnel certificate, for the key it holds
 *   POST /api/v1/join/connection-point/report        its health and tunnels
 *   POST /api/v1/join/connection-point/traffic       its traffic
 *   POST /api/v1/join/role-certificate               { role } -> its MP's or SUP's server certificate, for its host key
 *   POST /api/v1/join/management-point/client-token  { clientId, jkt } -> a client token the site signed
 *   GET  /api/v1/join/software-update-point          its SUP's role ID and settings
 *   GET  /api/v1/join/software-update-point/updates  the synchronised updates (?id=ID: one update's files)
 */
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { ForbiddenError, OpenCmgError, ValidationError } from "../errors.ts";
import { LOG_FILES } from "../logs/files.ts";
import type { SitePki } from "../site/site-pki.ts";
import type { OpenedSite, SiteServices } from "../site/site.ts";
import { cmgGone, connectionPointReportSchema, knownCmgRule, servicesLink, trafficReportSchema } from "../roles/cmg-connection-point/site-link.ts";
import { check } from "../site/validation.ts";
import { clientTokenFor, needRole, roleCertificateRequestSchema, softwareUpdatePointConfig, softwareUpdatePointUpdates } from "./site-roles.ts";

import { JOIN_API } from "./client.ts";
export { JOIN_API };
const MAX_BODY = 1024 * 1024;

export interface JoinListener {
  /** https://host:port */
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface JoinListenerOptions {
  site: OpenedSite;
  pki: SitePki;
  listen: { host: string; port: number };
  /** The names its certificate carries (the site server's FQDN; loopback is added). */
  names: string[];
}

class HttpError extends OpenCmgError {}

export async function startJoinListener(o: JoinListenerOptions): Promise<JoinListener> {
  const log = o.site.logs.component(LOG_FILES.sitecomp);
  const names = [...new Set([...o.names.map((n) => n.toLowerCase()), "localhost"])];
  const cert = await o.pki.issue("join-listener", { commonName: names[0]!, usage: "server", dnsNames: names, ipAddresses: ["127.0.0.1", "::1"] });
  const caPem = o.pki.caPem;
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem, ca: [caPem], requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.2" }, (req, res) => {
    handle(req, res).catch((e: unknown) => answerError(res, e));
  });

  /** The joined server presenting its host certificate: its FQDN and services acting for it. */
  const joined = async (req: IncomingMessage): Promise<{ fqdn: string; s: SiteServices; socket: TLSSocket }> => {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerX509Certificate();
    if (!peer || !socket.authorized) throw new HttpError("unauthorized", "HOST_CERTIFICATE_REQUIRED", "present the host certificate this server got when it joined (opencmg server join)");
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(peer.subject)?.[1] ?? "";
    const fqdn = await o.site.services.joins.joinedServer(peer.serialNumber, cn);
    return { fqdn, s: o.site.servicesAs({ name: fqdn, via: "join" }), socket };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "https://join");
    const path = url.pathname;
    const route = `${req.method} ${path}`;
    if (route === `GET ${JOIN_API}/ca`) return answer(res, 200, { ca: caPem });
    if (route === `POST ${JOIN_API}`) {
      const body = await readJson(req);
      const r = await o.site.servicesAs({ name: "joining server", via: "join" }).joins.join(body);
      return answer(res, 200, { server: r.server, certificate: r.certPem, ca: r.caPem });
    }
    const { fqdn, s, socket } = await joined(req);
    if (route === `GET ${JOIN_API}/config`) {
      const roles = await s.roles.list(fqdn);
      if (roles.length === 0) throw new ForbiddenError(`${fqdn} has no role at this site: nothing to configure`);
      return answer(res, 200, { server: fqdn, roles: roles.map((r) => ({ kind: r.kind, settings: r.settings })) });
    }
    const link = servicesLink(s, () => caPem);
    const needConnectionPoint = async (knownCmg?: string): Promise<void> => {
      if (await s.roles.findOn(fqdn, "cmg-connection-point")) return;
      // Deleting a CMG removes its connection point roles: the connection point learns it was deleted.
      if (knownCmg !== undefined) await cmgGone(s, knownCmg);
      throw new ForbiddenError(`${fqdn} has no CMG connection point role at this site`);
    };
    if (route === `GET ${JOIN_API}/connection-point`) {
      const cmgParam = url.searchParams.get("cmg");
      const knownCmg = cmgParam === null ? undefined : check("cmg", knownCmgRule, cmgParam);
      await needConnectionPoint(knownCmg);
      const config = await link.config(fqdn, knownCmg);
      const egress = await s.proxies.route(fqdn, "cmg-connection-point");
      return answer(res, 200, { ...config, egress });
    }
    if (route === `POST ${JOIN_API}/connection-point/certificate`) {
      await needConnectionPoint();
      const spki = socket.getPeerX509Certificate()!.publicKey.export({ type: "spki", format: "der" });
      const r = await s.cmgTrust.connectionPointCertificateFor(fqdn, spki);
      return answer(res, 200, { certificate: r.certPem });
    }
    if (route === `POST ${JOIN_API}/connection-point/report`) {
      await needConnectionPoint();
      await link.report(fqdn, check("report", connectionPointReportSchema, await readJson(req)));
      return answer(res, 204);
    }
    if (route === `POST ${JOIN_API}/connection-point/traffic`) {
      await needConnectionPoint();
      const t = check("traffic", trafficReportSchema, await readJson(req));
      await link.traffic(fqdn, t.cmg, t.records);
      return answer(res, 204);
    }
    if (route === `POST ${JOIN_API}/role-certificate`) {
      const { role } = check("roleCertificate", roleCertificateRequestSchema, await readJson(req));
      await needRole(s, fqdn, role);
      const spki = socket.getPeerX509Certificate()!.publicKey.export({ type: "spki", format: "der" });
      const r = await s.joins.roleCertificateFor(fqdn, role, spki);
      return answer(res, 200, { certificate: r.certPem, names: r.names });
    }
    if (route === `POST ${JOIN_API}/management-point/client-token`) return answer(res, 200, await clientTokenFor(s, fqdn, await readJson(req)));
    if (route === `GET ${JOIN_API}/software-update-point`) return answer(res, 200, await softwareUpdatePointConfig(s, fqdn));
    if (route === `GET ${JOIN_API}/software-update-point/updates`) return answer(res, 200, await softwareUpdatePointUpdates(s, fqdn, url.searchParams.get("id")));
    throw new HttpError("not_found", "NO_SUCH_ROUTE", `${route} is not a join API route`);
  };

  function answerError(res: ServerResponse, e: unknown): void {
    if (e instanceof OpenCmgError) {
      if (e.kind === "forbidden" || e.kind === "unauthorized") log.warn(`Join API refused a request: ${e.message}`);
      return answer(res, e.httpStatus, e.toJSON());
    }
    log.error(`Join API: ${(e as Error).message}`);
    answer(res, 500, { error: "InternalError", kind: "internal", code: "INTERNAL", message: "internal error (see the site's sitecomp.log)" });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.listen.port, o.listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.listen.host.includes(":") ? `[${o.listen.host}]` : o.listen.host;
  const url = `https://${host === "0.0.0.0" || host === "[::]" ? names[0] : host}:${port}`;
  log.info(`Join API listening on ${o.listen.host}:${port} (TLS, certificate for ${names.join(", ")} from the site CA).`);
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function answer(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  if (!/^application\/json\b/.test(req.headers["content-type"] ?? "")) throw new ValidationError("body", "must be JSON (content-type: application/json)");
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ValidationError("body", `must be at most ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new ValidationError("body", "must be valid JSON");
  }
}
