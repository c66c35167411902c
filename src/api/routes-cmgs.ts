/**
 * Cloud management gateways: list, show, create with the server certificate uploaded as PEM or as
 * a PFX (base64) with its password. Updating, starting, stopping and deleting are in their own file.
 */
import { z } from "zod";
import { FieldChecks, ValidationError } from "../errors.ts";
import { caCertificatesFromFiles, serverCertificateFromFiles } from "../cmg/certificate-files.ts";
import { CLOUDS, cmgName, deploySchema, instanceCount, label, minRsaBits, PROVIDERS } from "../site/services/cmg-model.ts";
import type { ApiRoute } from "./route-kit.ts";
import { needing, parseFields } from "./route-kit.ts";
import * as S from "./schemas.ts";

const pemList = (what: string) => z.array(z.string().max(65536)).optional().describe(`${what}, PEM (each may hold several certificates)`);

export const cmgCreateBody = z.strictObject({
  // The rules of the fields that need no other (the service checks them again) are here, so one pass names every field at fault.
  name: cmgName.describe("1-63 letters, digits or hyphens"),
  serverCertPem: z.string().max(65536).optional().describe("server authentication certificate, PEM (more certificates after it are its chain); with serverKeyPem"),
  serverKeyPem: z.string().max(65536).optional().describe("its unencrypted private key, PEM"),
  serverPfx: z.string().max(262144).optional().describe("or: certificate and key as a PFX, base64; with pfxPassword"),
  pfxPassword: z.string().max(1024).optional(),
  serviceFqdn: z.string().optional().describe("required with a wildcard certificate (the * replaced)"),
  instances: instanceCount.optional().describe("VM instances, 1 to 16 (default 1)"),
  trustedRoots: pemList("trusted root CAs for client certificates (at most 2)"),
  intermediates: pemList("intermediate CAs for client certificates (at most 4)"),
  crlCheck: z.boolean().optional().describe("verify client certificate revocation (default true)"),
  minRsaBits: minRsaBits.optional().describe("smallest RSA key in a client certificate chain (2048-16384)"),
  cloud: z.enum(CLOUDS, { error: `must be one of ${CLOUDS.join(", ")}` }).optional().describe("public, usgov or custom (default public)"),
  region: label.optional(),
  resourceGroup: label.optional(),
  provider: z.enum(PROVIDERS, { error: `must be one of ${PROVIDERS.join(", ")}` }).optional().describe("local, external or kubernetes (default local)"),
  deploy: z.strictObject(deploySchema.shape).optional().describe("where the instances listen and how they are reached"),
});

const BASE64 = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

/**
 * The upload's certificate fields as CmgsService.create takes them; the API's field names in errors,
 * the rules in the console's words (its Certificate file, PFX password and Private key file).
 */
function serverCertificate(b: Partial<z.output<typeof cmgCreateBody>>) {
  if (b.serverPfx !== undefined) {
    if (b.serverCertPem !== undefined || b.serverKeyPem !== undefined) throw new ValidationError("serverPfx", "give either a PFX file (serverPfx, with its password) or a PEM certificate with its private key (serverCertPem, serverKeyPem), not both");
    if (!BASE64.test(b.serverPfx)) throw new ValidationError("serverPfx", "must be the PFX file in base64");
    if (b.pfxPassword === undefined) throw new ValidationError("pfxPassword", "is required with a PFX file (an empty one for a PFX without a password)");
    return serverCertificateFromFiles({ pfx: { name: "serverPfx", content: Buffer.from(b.serverPfx, "base64") }, pfxPassword: b.pfxPassword });
  }
  if (b.pfxPassword !== undefined) throw new ValidationError("pfxPassword", "goes with a PFX file only");
  if (b.serverCertPem === undefined) throw new ValidationError("serverCertPem", "choose the server authentication certificate: a PEM certificate with its private key, or a PFX file with its password");
  if (b.serverKeyPem === undefined) throw new ValidationError("serverKeyPem", "is required with a PEM certificate file (choose its private key file)");
  return serverCertificateFromFiles({ cert: { name: "the certificate file", content: b.serverCertPem }, key: { name: "the private key file", content: b.serverKeyPem } }, { cert: "serverCertPem", key: "serverKeyPem" });
}

const cas = (field: string, pems: string[] | undefined) => caCertificatesFromFiles(field, pems?.map((content, i) => ({ name: `file ${i + 1}`, content })));

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
      // Every field's problem at once: the body's shape and rules, then the certificate files.
      const v = new FieldChecks();
      const b = parseFields(cmgCreateBody, i.body, v);
      const server = v.take(() => serverCertificate(b));
      const trustedRoots = v.take(() => cas("trustedRoots", b.trustedRoots));
      const intermediates = v.take(() => cas("intermediates", b.intermediates));
      v.done();
      return s.cmgs.create({
        name: b.name!,
        serverCertPem: server!.certPem,
        serverKeyPem: server!.keyPem,
        serverChainPem: server!.chainPem,
        serviceFqdn: b.serviceFqdn,
        instances: b.instances,
        trustedRoots,
        intermediates,
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
