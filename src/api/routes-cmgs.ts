/**
 * Cloud management gateways: list, show, create with the server certificate uploaded as PEM or as
 * a PFX (base64) with its password. Updating, starting, stopping and deleting are in their own file.
 */
import { z } from "zod";
import { ValidationError } from "../errors.ts";
import { caCertificatesFromFiles, serverCertificateFromFiles } from "../cmg/certificate-files.ts";
import { deploySchema } from "../site/services/cmg-model.ts";
import type { ApiRoute } from "./route-kit.ts";
import { parseBody, needing } from "./route-kit.ts";
import * as S from "./schemas.ts";

const pemList = (what: string) => z.array(z.string().max(65536)).optional().describe(`${what}, PEM (each may hold several certificates)`);

export const cmgCreateBody = z.strictObject({
  name: z.string().describe("1-63 letters, digits or hyphens"),
  serverCertPem: z.string().max(65536).optional().describe("server authentication certificate, PEM (more certificates after it are its chain); with serverKeyPem"),
  serverKeyPem: z.string().max(65536).optional().describe("its unencrypted private key, PEM"),
  serverPfx: z.string().max(262144).optional().describe("or: certificate and key as a PFX, base64; with pfxPassword"),
  pfxPassword: z.string().max(1024).optional(),
  serviceFqdn: z.string().optional().describe("required with a wildcard certificate (the * replaced)"),
  instances: z.number().optional().describe("VM instances, 1 to 16 (default 1)"),
  trustedRoots: pemList("trusted root CAs for client certificates (at most 2)"),
  intermediates: pemList("intermediate CAs for client certificates (at most 4)"),
  crlCheck: z.boolean().optional().describe("verify client certificate revocation (default true)"),
  minRsaBits: z.number().optional().describe("smallest RSA key in a client certificate chain (2048-16384)"),
  cloud: z.string().optional().describe("public, usgov or custom (default public)"),
  region: z.string().optional(),
  resourceGroup: z.string().optional(),
  provider: z.string().optional().describe("local, external or kubernetes (default local)"),
  deploy: z.strictObject(deploySchema.shape).optional().describe("where the instances listen and how they are reached"),
});

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

/** The upload's certificate fields as CmgsService.create takes them; the API's field names in errors. */
function serverCertificate(b: z.output<typeof cmgCreateBody>) {
  if (b.serverPfx !== undefined) {
    if (b.serverCertPem !== undefined || b.serverKeyPem !== undefined) throw new ValidationError("serverPfx", "give either serverPfx (with pfxPassword) or serverCertPem with serverKeyPem, not both");
    if (!BASE64.test(b.serverPfx)) throw new ValidationError("serverPfx", "must be the PFX file in base64");
    if (b.pfxPassword === undefined) throw new ValidationError("pfxPassword", "is required with serverPfx (an empty string for a PFX without one)");
    return serverCertificateFromFiles({ pfx: { name: "serverPfx", content: Buffer.from(b.serverPfx, "base64") }, pfxPassword: b.pfxPassword });
  }
  if (b.pfxPassword !== undefined) throw new ValidationError("pfxPassword", "goes with serverPfx only");
  if (b.serverCertPem === undefined) throw new ValidationError("serverCertPem", "give the server authentication certificate: serverCertPem with serverKeyPem, or serverPfx with pfxPassword");
  if (b.serverKeyPem === undefined) throw new ValidationError("serverKeyPem", "is required with serverCertPem");
  return serverCertificateFromFiles({ cert: { name: "serverCertPem", content: b.serverCertPem }, key: { name: "serverKeyPem", content: b.serverKeyPem } });
}

const cas = (field: string, pems: string[] | undefined) => caCertificatesFromFiles(field, pems?.map((content, i) => ({ name: `${field}[${i}]`, content })));

export const CMGS_ROUTES: ApiRoute[] = needing("infrastructure", [
  { method: "GET", path: "/api/v1/cmgs", tag: "cmg", summary: "Cloud management gateways with their status", response: z.array(S.cmg), handle: (s) => s.cmgs.list() },
  { method: "GET", path: "/api/v1/cmgs/:name", tag: "cmg", summary: "A CMG's settings, instances and status", response: S.cmg, handle: (s, i) => s.cmgs.show(i.params.name!) },
  {
    method: "POST",
    path: "/api/v1/cmgs",
    tag: "cmg",
    summary: "Create a CMG at the top-level site, its server certificate uploaded as PEM or PFX",
    body: cmgCreateBody,
    response: S.cmg,
    status: 201,
    handle: (s, i) => {
      const b = parseBody(cmgCreateBody, i.body);
      const server = serverCertificate(b);
      return s.cmgs.create({
        name: b.name,
        serverCertPem: server.certPem,
        serverKeyPem: server.keyPem,
        serverChainPem: server.chainPem,
        serviceFqdn: b.serviceFqdn,
        instances: b.instances,
        trustedRoots: cas("trustedRoots", b.trustedRoots),
        intermediates: cas("intermediates", b.intermediates),
        crlCheck: b.crlCheck,
        minRsaBits: b.minRsaBits,
        cloud: b.cloud,
        region: b.region,
        resourceGroup: b.resourceGroup,
        provider: b.provider,
        deploy: b.deploy,
      });
    },
  },
]);
