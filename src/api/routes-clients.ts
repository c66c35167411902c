/** Clients as the site knows them (`opencmg site clients`), their approval, and the client settings. */
import { z } from "zod";
import type { ApiRoute } from "./route-kit.ts";
import { emptyBody, parseBody, parsedQuery, q, needing } from "./route-kit.ts";
import * as S from "./schemas.ts";
import { settingsPatch } from "../site/services/clients.ts";

const clientsQuery = z.strictObject({
  approved: q.bool.describe("true: approved clients only; false: those awaiting approval"),
  connectionType: z.enum(["intranet", "internet"], { error: "must be intranet or internet" }).optional().describe("how the client last reached a management point"),
  name: z.string().optional().describe("this computer name"),
});
// The service's rules in the body, so one pass names every field at fault.
const settingsBody = z.strictObject(settingsPatch.shape);

export const CLIENTS_ROUTES: ApiRoute[] = needing("infrastructure", [
  { method: "GET", path: "/api/v1/clients", tag: "clients", summary: "Registered clients with their last contact and connection type", query: clientsQuery, response: z.array(S.client), handle: (s, i) => s.clients.list(parsedQuery(clientsQuery, i)) },
  { method: "GET", path: "/api/v1/clients/settings", tag: "clients", summary: "The default client settings (policy)", response: S.clientSettings, handle: (s) => s.clients.settings() },
  { method: "PATCH", path: "/api/v1/clients/settings", tag: "clients", summary: "Change the given client settings; the others keep their values", body: settingsBody, response: S.clientSettings, handle: (s, i) => s.clients.setSettings(parseBody(settingsBody, i.body)) },
  { method: "GET", path: "/api/v1/clients/:id", tag: "clients", summary: "One client", response: S.client, handle: (s, i) => s.clients.get(i.params.id!) },
  { method: "POST", path: "/api/v1/clients/:id/approve", tag: "clients", summary: "Approve a client that registered without a certificate", body: emptyBody, response: S.client, handle: (s, i) => (parseBody(emptyBody, i.body), s.clients.approve(i.params.id!)) },
]);
