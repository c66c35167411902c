/** The admin API's CMG traffic and traffic alert routes (the same services as `cmg traffic` and `cmg update --traffic-alert-*`). */
import { z } from "zod";
import { needing } from "./route-kit.ts";
import type { ApiRoute } from "./routes.ts";
import * as S from "./schemas.ts";

const trafficAlertBody = z
  .object({
    thresholdGb: z.union([z.number(), z.string()]).optional(),
    warningPct: z.union([z.number(), z.string()]).optional(),
    criticalPct: z.union([z.number(), z.string()]).optional(),
    stopOnCritical: z.boolean().optional(),
  })
  .strict();

export const CMG_TRAFFIC_ROUTES: ApiRoute[] = needing("infrastructure", [
  {
    method: "GET",
    path: "/api/v1/cmgs/:name/traffic",
    tag: "cmg",
    summary: "A CMG's traffic: 14-day outbound total, per day, per instance, connection point and role kind, with its traffic alert",
    query: { days: "days to show, today included (1-90, default 14)" },
    response: S.cmgTraffic,
    handle: async (s, i) => {
      const summary = await s.cmgTraffic.summary(i.params.name!, i.query.days ?? 14);
      return { ...summary, alert: await s.cmgAlerts.trafficAlert(i.params.name!), alertStates: await s.cmgAlerts.states(i.params.name!) };
    },
  },
  {
    method: "PUT",
    path: "/api/v1/cmgs/:name/traffic-alert",
    tag: "cmg",
    summary: "Set or change a CMG's traffic alert (what is left out stays; a new alert needs thresholdGb; percentages default to 50 and 90)",
    body: trafficAlertBody,
    response: S.trafficAlert,
    handle: (s, i) => s.cmgAlerts.setTrafficAlert(i.params.name!, trafficAlertBody.parse(i.body ?? {})),
  },
  { method: "DELETE", path: "/api/v1/cmgs/:name/traffic-alert", tag: "cmg", summary: "Remove a CMG's traffic alert", status: 204, handle: async (s, i) => void (await s.cmgAlerts.setTrafficAlert(i.params.name!, null)) },
]);
