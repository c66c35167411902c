/**
 * The CMG connection analyzer over the admin API: the same checks as `opencmg cmg analyze`. The
 * client certificate and key travel in the body (PEM) and are used for this analysis only: never
 * stored, logged or returned.
 */
import { z } from "zod";
import { needing } from "./route-kit.ts";
import type { ApiRoute } from "./routes.ts";
import * as S from "./schemas.ts";

const analyzeBody = z
  .object({
    clientCertPem: z.string().max(64 * 1024, "must be at most 64 KiB").optional(),
    clientKeyPem: z.string().max(64 * 1024, "must be at most 64 KiB").optional(),
    caPem: z.string().max(256 * 1024, "must be at most 256 KiB").optional(),
  })
  .strict();

export const CMG_ANALYZE_ROUTES: ApiRoute[] = needing("infrastructure", [
  {
    method: "POST",
    path: "/api/v1/cmgs/:name/analyze",
    tag: "cmg",
    summary: "Connection analyzer: name resolution, TLS and certificates of each instance, a client certificate against the trusted roots, intermediates and CRL, tunnels, location requests; one result per check",
    body: analyzeBody,
    response: S.cmgAnalysis,
    handle: async (s, i) => {
      const b = analyzeBody.parse(i.body ?? {});
      const { analyzeCmg } = await import("../site/services/cmg-analyze.ts");
      return analyzeCmg({ cmgs: s.cmgs }, i.params.name!, b);
    },
  },
]);
