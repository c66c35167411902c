/**
 * What the gateway instances trust, over the admin API: the same service as `opencmg cmg
 * settings-keys` / `rotate-settings-key` and `opencmg connection-point certificates` / `revoke`.
 * No key material is ever in an answer.
 */
import { z } from "zod";
import { emptyBody, needing } from "./route-kit.ts";
import { parseBody, type ApiRoute } from "./routes.ts";
import * as S from "./schemas.ts";

export const revokeBody = z.strictObject({ serial: z.string().optional(), reason: z.string().optional() });

export const CMG_TRUST_ROUTES: ApiRoute[] = needing("infrastructure", [
  { method: "GET", path: "/api/v1/cmgs/settings-keys", tag: "cmgs", summary: "The site's settings-signing keys: current, previous (still signing), retired", response: z.array(S.signingKey), handle: (s) => s.cmgTrust.settingsKeys() },
  { method: "POST", path: "/api/v1/cmgs/settings-keys/rotate", tag: "cmgs", summary: "A new settings-signing key; the current one keeps signing beside it until the next rotation", body: emptyBody, response: S.keyRotation, handle: (s, i) => (parseBody(emptyBody, i.body), s.cmgTrust.rotateSettingsKey()) },
  { method: "GET", path: "/api/v1/connection-point-certificates", tag: "cmgs", summary: "Tunnel certificates issued to connection points (filter with ?server=FQDN)", query: { server: "FQDN" }, response: z.array(S.connectionPointCert), handle: (s, i) => s.cmgTrust.connectionPointCertificates(i.query.server) },
  {
    method: "POST",
    path: "/api/v1/servers/:fqdn/connection-point-certificates/revoke",
    tag: "cmgs",
    summary: "Revoke a connection point's tunnel certificate(s): the instances close its tunnels with the next settings push",
    body: revokeBody,
    response: z.array(S.connectionPointCert),
    handle: (s, i) => s.cmgTrust.revokeConnectionPoint(i.params.fqdn!, parseBody(revokeBody, i.body ?? {})),
  },
]);
