/**
 * A CMG's life after creation over the admin API (live changes, stop, start, delete; list, show and
 * create are in routes-cmgs.ts): the same CmgsService the CLI uses, so a change made here is checked,
 * logged and pushed to the instances exactly as `opencmg cmg update` does it.
 */
import { z } from "zod";
import { emptyBody, needing, parseBody } from "./route-kit.ts";
import * as S from "./schemas.ts";
import type { ApiRoute } from "./route-kit.ts";
import { deleteCmg } from "../site/services/cmgs.ts";
import { instanceCount, minRsaBits } from "../site/services/cmg-model.ts";

const pems = z.array(z.string().max(64 * 1024)).max(8);
const thumbprints = z.array(z.string().max(100)).max(8);

export const cmgBodies = {
  update: z
    .object({
      // The service's rules of the fields that need no other, so one answer names each of them.
      instances: instanceCount.optional(),
      crlCheck: z.boolean().optional(),
      minRsaBits: minRsaBits.optional(),
      trustedRoots: pems.optional(),
      intermediates: pems.optional(),
      replaceCertificates: z.boolean().optional(),
      addTrustedRoots: pems.optional(),
      removeTrustedRoots: thumbprints.optional(),
      addIntermediates: pems.optional(),
      removeIntermediates: thumbprints.optional(),
      serverCertPem: z.string().max(64 * 1024).optional(),
      serverKeyPem: z.string().max(64 * 1024).optional(),
      serverChainPem: pems.optional(),
      force: z.boolean().optional(),
      // Refused by the service with "create a new CMG" when they differ; accepted here so the answer says so.
      serviceFqdn: z.string().optional(),
      serviceName: z.string().optional(),
      cloud: z.string().optional(),
      provider: z.string().optional(),
      region: z.string().optional(),
      resourceGroup: z.string().optional(),
    })
    .strict(),
};

export const CMG_ROUTES: ApiRoute[] = needing("infrastructure", [
  {
    method: "PATCH",
    path: "/api/v1/cmgs/:name",
    tag: "cmg",
    summary: "Change a CMG live: instances, server certificate, trusted roots and intermediates (add/remove, or replace with replaceCertificates), revocation checking",
    body: cmgBodies.update,
    response: S.cmg,
    handle: (s, i) => s.cmgs.update(i.params.name!, cmgBodies.update.parse(i.body ?? {})),
  },
  { method: "POST", path: "/api/v1/cmgs/:name/stop", tag: "cmg", summary: "Stop the service: instances stop, tunnels end; it stays stopped until started", body: emptyBody, response: S.cmg, handle: (s, i) => (parseBody(emptyBody, i.body), s.cmgs.stop(i.params.name!, "admin API")) },
  { method: "POST", path: "/api/v1/cmgs/:name/start", tag: "cmg", summary: "Start a stopped service", body: emptyBody, response: S.cmg, handle: (s, i) => (parseBody(emptyBody, i.body), s.cmgs.start(i.params.name!, "admin API")) },
  {
    method: "DELETE",
    path: "/api/v1/cmgs/:name",
    tag: "cmg",
    summary: "Delete a CMG: instances stopped, tunnels ended, bundle and keys removed (?force=true to delete the last Ready CMG while internet clients exist)",
    query: { force: "true to delete the last Ready CMG while clients registered through the internet exist" },
    response: S.cmgDeleted,
    handle: (s, i) => deleteCmg(s, i.params.name!, { force: i.query.force === "true" }),
  },
]);
