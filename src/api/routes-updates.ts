/** Software updates: the update point's synchronisation, the updates, automatic deployment rules, the product update feed. */
import { z } from "zod";
import type { ApiRoute } from "./route-kit.ts";
import { emptyBody as empty, parseBody, needing } from "./route-kit.ts";
import * as S from "./schemas.ts";

const adrBody = z.strictObject({
  name: z.string(),
  server: z.string().describe("the software update point whose proxy settings apply"),
  products: z.array(z.string()).optional(),
  classifications: z.array(z.string()).optional(),
  titleContains: z.string().optional(),
});

export const UPDATES_ROUTES: ApiRoute[] = needing("infrastructure", [
  {
    method: "POST",
    path: "/api/v1/servers/:fqdn/software-update-point/sync",
    tag: "software updates",
    summary: "Synchronise update metadata from the upstream update source now, through the server's proxy",
    body: empty,
    response: S.syncResult,
    handle: (_s, i) => {
      parseBody(empty, i.body);
      return i.ops.supSync(i.params.fqdn!);
    },
  },
  {
    method: "POST",
    path: "/api/v1/servers/:fqdn/service-connection-point/check-updates",
    tag: "software updates",
    summary: "Check the product update feed now, through the server's proxy",
    body: empty,
    response: S.feedResult,
    handle: (_s, i) => {
      parseBody(empty, i.body);
      return i.ops.scpCheckUpdates(i.params.fqdn!);
    },
  },
  { method: "GET", path: "/api/v1/updates", tag: "software updates", summary: "Synchronised updates, newest first", response: z.array(S.update), handle: (s) => s.updates.list() },
  { method: "GET", path: "/api/v1/adrs", tag: "software updates", summary: "Automatic deployment rules", response: z.array(S.adr), handle: (s) => s.adrs.list() },
  { method: "POST", path: "/api/v1/adrs", tag: "software updates", summary: "Create an automatic deployment rule", body: adrBody, response: S.adr, status: 201, handle: (s, i) => s.adrs.add(parseBody(adrBody, i.body)) },
  { method: "GET", path: "/api/v1/adrs/:name", tag: "software updates", summary: "One automatic deployment rule", response: S.adr, handle: (s, i) => s.adrs.get(i.params.name!) },
  {
    method: "POST",
    path: "/api/v1/adrs/:name/run",
    tag: "software updates",
    summary: "Run a rule now: download the matching updates' content through the server's proxy (answers when done)",
    body: empty,
    response: S.adrRun,
    handle: (_s, i) => {
      parseBody(empty, i.body);
      return i.ops.adrRun(i.params.name!);
    },
  },
  { method: "GET", path: "/api/v1/adrs/:name/results", tag: "software updates", summary: "The recorded download results of a rule", response: z.array(S.adrFile), handle: (s, i) => s.adrs.results(i.params.name!) },
]);
