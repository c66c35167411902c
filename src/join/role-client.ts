/**
 * A joined management point's and software update point's side of the join API: the server
 * certificate the site issues for the host key, the client tokens the site signs, and the SUP's
 * settings and update metadata. The host keeps no site key, no token-signing key, no CA key.
 */
import { z } from "zod";
import { isOpenCmgError } from "../errors.ts";
import type { ComponentLog } from "../logs/cmtrace.ts";
import { MpError } from "../roles/mp/mp-error.ts";
import type { SoftwareUpdate, SoftwareUpdateFile } from "../site/services/updates.ts";
import type { ServedRoleKind } from "../site/services/joins.ts";
import { check } from "../site/validation.ts";
import type { JoinedHost } from "./client.ts";
import { clientTokenAnswerSchema, roleCertificateAnswerSchema } from "./site-roles.ts";

/** The role's server certificate, issued now by the site CA for the host key: with the key, what the role serves TLS with. */
export async function joinedRoleTls(host: JoinedHost, role: ServedRoleKind): Promise<{ certPem: string; keyPem: string; names: string[] }> {
  const r = check("certificate", roleCertificateAnswerSchema, await host.post("/role-certificate", { role }));
  return { certPem: r.certificate, keyPem: host.keyPem, names: r.names };
}

/**
 * Client tokens signed by the site for the management point of a joined server. A refusal or an
 * unreachable site is logged here with the site's reason and answered to the device as `503
 * token_issuer_unavailable`: it is not the device's fault, and the reason names the site's records.
 */
export function joinedClientTokens(host: JoinedHost, log: ComponentLog): { issueClientToken(clientId: string, jkt: string): Promise<{ token: string; expiresAt: string }> } {
  return {
    async issueClientToken(clientId, jkt) {
      let answer: unknown;
      try {
        answer = await host.post("/management-point/client-token", { clientId, jkt });
      } catch (e) {
        if (!isOpenCmgError(e)) throw e;
        log.error(`The site at ${host.site} signed no client token for ${clientId}: ${e.message} (${String(e.code)}).`);
        throw new MpError(503, "token_issuer_unavailable", "the site issued no client token through this management point; try again later", 300);
      }
      return check("clientToken", clientTokenAnswerSchema, answer);
    },
  };
}

const fileSchema = z.object({ name: z.string(), url: z.string(), size: z.number(), sha256: z.string() });
const updateSchema = z.object({ id: z.string(), title: z.string(), classification: z.string(), product: z.string(), releaseDate: z.string(), files: z.array(fileSchema) });
const supConfigSchema = z.object({ roleId: z.number().int(), settings: z.looseObject({ upstreamUrl: z.string().optional() }) });

/** What `sup serve` reads of the site on a joined server: its role and the update metadata. */
export function joinedSoftwareUpdatePointSite(host: JoinedHost) {
  return {
    /** The role's ID and settings; `403` (an OpenCmgError "forbidden") once the role is removed. */
    async config(): Promise<z.infer<typeof supConfigSchema>> {
      return check("config", supConfigSchema, await host.get("/software-update-point"));
    },
    roles: {
      async findOn(fqdn: string, _kind: "software-update-point"): Promise<{ id: number } | undefined> {
        if (fqdn !== host.server) throw new Error(`this data folder joined the site as ${host.server}, not ${fqdn}`);
        const c = check("config", supConfigSchema, await host.get("/software-update-point"));
        return { id: c.roleId };
      },
    },
    updates: {
      async list(): Promise<SoftwareUpdate[]> {
        return check("updates", z.object({ updates: z.array(updateSchema) }), await host.get("/software-update-point/updates")).updates;
      },
      async filesOf(updateId: string): Promise<SoftwareUpdateFile[]> {
        return check("files", z.object({ files: z.array(fileSchema) }), await host.get(`/software-update-point/updates?id=${encodeURIComponent(updateId)}`)).files;
      },
    },
  };
}
