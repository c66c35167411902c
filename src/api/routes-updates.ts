/** Software updates: the update point's synchronisation and its schedule, the updates, automatic deployment rules, the product update feed. */
import { z } from "zod";
import type { ApiRoute } from "./route-kit.ts";
import { emptyBody as empty, parseBody, needing } from "./route-kit.ts";
import * as S from "./schemas.ts";
import { syncSchedule } from "../roles/sup/sync-schedule.ts";
import { SYNC_INTERVAL_HOURS } from "../site/services/roles.ts";
import type { SiteServices } from "../site/site.ts";

const adrBody = z.strictObject({
  name: z.string(),
  server: z.string().describe("the software update point whose proxy settings apply"),
  products: z.array(z.string()).optional(),
  classifications: z.array(z.string()).optional(),
  titleContains: z.string().optional(),
  runAfterSync: z.boolean().optional().describe("run after each successful synchronisation of its software update point"),
});
const adrChanges = z.strictObject({
  name: z.string().optional(),
  products: z.array(z.string()).optional(),
  classifications: z.array(z.string()).optional(),
  titleContains: z.string().nullable().optional().describe("null clears the title filter"),
  runAfterSync: z.boolean().optional(),
});
const scheduleBody = z.strictObject({ syncIntervalHours: z.number({ error: "must be a number of hours, or null to turn the schedule off" }).nullable().describe(`hours between scheduled synchronisations (${SYNC_INTERVAL_HOURS.min} to ${SYNC_INTERVAL_HOURS.max}); null turns the schedule off`) });
const SUP_PATH = "/api/v1/servers/:fqdn/software-update-point";
const schedule = (s: SiteServices, fqdn: string) => syncSchedule({ roles: s.roles, status: s.status, now: () => new Date() }, fqdn);

export const UPDATES_ROUTES: ApiRoute[] = needing("infrastructure", [
  {
    method: "POST",
    path: "/api/v1/servers/:fqdn/software-update-point/sync",
    tag: "software updates",
    summary: "Synchronise update metadata from the upstream update source now, through the server's proxy; then run the enabled rules that run after each synchronisation (answers when done)",
    body: empty,
    response: S.syncResult,
    handle: (_s, i) => {
      parseBody(empty, i.body);
      return i.ops.supSync(i.params.fqdn!);
    },
  },
  { method: "GET", path: `${SUP_PATH}/schedule`, tag: "software updates", summary: "The synchronisation schedule: its interval, the last synchronisation and the next", response: S.syncSchedule, handle: (s, i) => schedule(s, i.params.fqdn!) },
  {
    method: "PUT",
    path: `${SUP_PATH}/schedule`,
    tag: "software updates",
    summary: "Set the synchronisation schedule (every N hours) or turn it off (null)",
    body: scheduleBody,
    response: S.syncSchedule,
    handle: async (s, i) => {
      const b = parseBody(scheduleBody, i.body);
      await s.roles.set(i.params.fqdn!, "software-update-point", { syncIntervalHours: b.syncIntervalHours });
      return schedule(s, i.params.fqdn!);
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
  { method: "PATCH", path: "/api/v1/adrs/:name", tag: "software updates", summary: "Edit a rule: the fields given change, the others keep their values", body: adrChanges, response: S.adr, handle: (s, i) => s.adrs.edit(i.params.name!, parseBody(adrChanges, i.body)) },
  { method: "POST", path: "/api/v1/adrs/:name/enable", tag: "software updates", summary: "Enable a rule", body: empty, response: S.adr, handle: (s, i) => (parseBody(empty, i.body), s.adrs.setEnabled(i.params.name!, true)) },
  { method: "POST", path: "/api/v1/adrs/:name/disable", tag: "software updates", summary: "Disable a rule: it runs neither now nor after a synchronisation", body: empty, response: S.adr, handle: (s, i) => (parseBody(empty, i.body), s.adrs.setEnabled(i.params.name!, false)) },
  { method: "DELETE", path: "/api/v1/adrs/:name", tag: "software updates", summary: "Delete a rule and its recorded download results (the content library keeps the files)", response: S.adrDeleted, handle: (s, i) => s.adrs.remove(i.params.name!) },
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
