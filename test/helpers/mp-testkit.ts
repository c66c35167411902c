/**
 * Test support for the management point and the client agent (imported by src/mp/*.test.ts and
 * src/client/*.test.ts only): a site with a management-point role, the certificates, a running MP,
 * and a stand-in for the CMG data path that relays `/CCM_Proxy_MutualAuth/<roleId>/<path>` to an
 * MP the way the gateway and connection point do (client certificate checked, client identity
 * headers added, connection point certificate presented to the MP).
 */
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { X509Certificate } from "node:crypto";
import { Agent, request } from "undici";
import { makeTestPki, type TestPki } from "./pki-fixtures.ts";
import { freePort } from "./ports.ts";
import type { TestDatabase } from "./databases.ts";
import { encodeHeaderValue } from "../../src/wire/tunnel/headers.ts";
import { Header } from "../../src/wire/tunnel/protocol.ts";
import { describe } from "../../src/pki/cert.ts";
import { issueCert, type IssuedCert } from "../../src/pki/issue.ts";
import { verifyClientChain } from "../../src/pki/verify.ts";
import { initSite, openSite, type OpenedSite } from "../../src/site/site.ts";
import type { InternetMp } from "../../src/roles/mp/internet-mps.ts";
import { startManagementPoint, type ManagementPoint } from "../../src/roles/mp/server.ts";
import { managementPointDeps } from "../../src/app/role-deps.ts";
import type { RegistrationLimits } from "../../src/roles/mp/registration-limit.ts";

export const MP_FQDN = "mp01.contoso.test";

export interface MpPki extends TestPki {
  /** The MP's server certificate, issued by the site CA for MP_FQDN and 127.0.0.1. */
  mpServer: IssuedCert;
  /** The stand-in CMG's server certificate (site CA, 127.0.0.1). */
  cmgServer: IssuedCert;
  /** A connection point's certificate: site CA, CN `opencmg-cp:cp01.contoso.test`. */
  connectionPoint: IssuedCert;
  /** Named like a connection point, issued by a CA the site does not know. */
  fakeConnectionPoint: IssuedCert;
  /** A second valid client. */
  client2: IssuedCert;
  /** The roots a client trusts for MPs and the CMG: the site CA. */
  caPem: string;
  /** What the MP trusts for client certificates. */
  clientRoots: string[];
}

export async function makeMpPki(): Promise<MpPki> {
  const pki = await makeTestPki();
  return {
    ...pki,
    mpServer: await issueCert({ issuer: pki.siteCa, commonName: MP_FQDN, dnsNames: [MP_FQDN], ipAddresses: ["127.0.0.1"], usage: "server" }),
    cmgServer: await issueCert({ issuer: pki.siteCa, commonName: "cmg.contoso.test", dnsNames: ["cmg.contoso.test"], ipAddresses: ["127.0.0.1"], usage: "server" }),
    connectionPoint: await issueCert({ issuer: pki.siteCa, commonName: "opencmg-cp:cp01.contoso.test", dnsNames: ["cp01.contoso.test"], usage: "client" }),
    fakeConnectionPoint: await issueCert({ issuer: pki.untrustedRoot, commonName: "opencmg-cp:cp01.contoso.test", usage: "client" }),
    client2: await issueCert({ issuer: pki.intermediate, commonName: "PC-002", usage: "client" }),
    caPem: pki.siteCa.certPem,
    clientRoots: [pki.root.certPem, pki.intermediate.certPem, pki.root2.certPem],
  };
}

export interface MpSite {
  site: OpenedSite;
  /** For the CLI: `--data` and `--database`. */
  dataDir: string;
  databaseUrl: string | undefined;
  /** Port the MP role's internal URL names (free a moment ago). */
  port: number;
  roleId: number;
}

/** A site (P01) with server MP_FQDN and its management-point role, internal URL https://127.0.0.1:<port>. */
export async function openMpSite(db: TestDatabase): Promise<MpSite> {
  const { dataDir, databaseUrl } = await db.fresh();
  const site = await openSite({ dataDir, databaseUrl });
  await initSite(site, { code: "P01", name: "Test site" });
  const port = await freePort();
  await site.services.servers.add({ fqdn: MP_FQDN });
  const role = await site.services.roles.add(MP_FQDN, "management-point", { allowCmgTraffic: true, internalUrl: `https://127.0.0.1:${port}` });
  return { site, dataDir, databaseUrl, port, roleId: role.id };
}

export function startTestMp(s: MpSite, pki: MpPki, o: { port?: number; internetMps?: () => Promise<InternetMp[]>; maxBodyBytes?: number; registrationLimits?: Partial<RegistrationLimits> } = {}): Promise<ManagementPoint> {
  return startManagementPoint({
    deps: { ...managementPointDeps(s.site), internetMps: o.internetMps ?? (async () => []) },
    serverFqdn: MP_FQDN,
    listen: { host: "127.0.0.1", port: o.port ?? s.port },
    tls: { certPem: pki.mpServer.certPem, keyPem: pki.mpServer.keyPem, caPem: pki.caPem },
    trustedClientRoots: pki.clientRoots,
    maxBodyBytes: o.maxBodyBytes,
    registrationLimits: o.registrationLimits,
  });
}

export interface StandinCmg {
  /** The CMG's client URL, e.g. https://127.0.0.1:41234 */
  clientUrl: string;
  /** `<clientUrl>/CCM_Proxy_MutualAuth/<roleId>` */
  mpUrl(roleId: number): string;
  requests(): number;
  stop(): Promise<void>;
}

/**
 * The CMG data path in one process: client TLS with a certificate checked against `clientRoots`,
 * client-sent `x-opencmg-*` headers dropped, identity headers added, and the request sent to
 * `target` with the connection point's certificate.
 */
export async function startStandinCmg(o: {
  target: () => string;
  pki: MpPki;
  connectionPointCert?: IssuedCert;
  /** When it returns true, the MP's answer is dropped and the client's connection cut (a lost answer). */
  loseAnswer?: (path: string) => boolean;
}): Promise<StandinCmg> {
  const cp = o.connectionPointCert ?? o.pki.connectionPoint;
  const agent = new Agent({ connect: { cert: cp.certPem, key: cp.keyPem, ca: [o.pki.caPem] } });
  const trust = { roots: [o.pki.root.certPem, o.pki.root2.certPem], intermediates: [o.pki.intermediate.certPem] };
  let count = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer({ cert: o.pki.cmgServer.certPem, key: o.pki.cmgServer.keyPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    count++;
    const answer = (status: number, text: string): void => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "gateway", message: text }));
    };
    const m = /^\/CCM_Proxy_MutualAuth\/(\d+)(\/.*)$/.exec(req.url ?? "");
    if (!m) return answer(404, "not a CMG path");
    const raw = (req.socket as TLSSocket).getPeerCertificate();
    if (!raw?.raw) return answer(403, "no client certificate");
    const leaf = new X509Certificate(raw.raw);
    if (!verifyClientChain(leaf, trust).ok) return answer(403, "untrusted client certificate");
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (k.startsWith("x-opencmg-") || k.startsWith("opencmg-") || ["host", "connection", "keep-alive", "transfer-encoding", "content-length"].includes(k)) continue;
        if (typeof v === "string") headers[k] = v;
      }
      const d = describe(leaf);
      headers[Header.clientAuth] = "mtls";
      headers[Header.clientThumbprint] = d.thumbprint;
      headers[Header.clientSubject] = encodeHeaderValue(d.subject);
      headers[Header.clientSans] = encodeHeaderValue(leaf.subjectAltName ?? "");
      headers["x-opencmg-request-id"] = `standin-${count}`;
      const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      request(o.target() + m[2], { dispatcher: agent, method: req.method as "GET", headers, body }).then(
        async (r) => {
          const text = await r.body.text();
          if (o.loseAnswer?.(m[2]!)) return void req.socket.destroy();
          res.writeHead(r.statusCode, { "content-type": String(r.headers["content-type"] ?? "application/json") });
          res.end(text);
        },
        (e: Error) => answer(502, `management point unreachable: ${e.message}`),
      );
    });
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const clientUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    clientUrl,
    mpUrl: (roleId) => `${clientUrl}/CCM_Proxy_MutualAuth/${roleId}`,
    requests: () => count,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
      await agent.close();
    },
  };
}
