/** Site settings over the admin API: the same service as `opencmg settings`. */
import { z } from "zod";
import { parseBody, type ApiRoute } from "./routes.ts";

export const settingBody = z.strictObject({ value: z.string() });

export const SETTINGS_ROUTES: ApiRoute[] = [
  { method: "GET", path: "/api/v1/settings", tag: "settings", summary: "Every site setting with its value, default and rule", handle: (s) => s.settings.list() },
  { method: "GET", path: "/api/v1/settings/:key", tag: "settings", summary: "One site setting", handle: (s, i) => s.settings.get(i.params.key!) },
  { method: "PUT", path: "/api/v1/settings/:key", tag: "settings", summary: "Change a site setting (the value as text, e.g. \"5m\")", body: settingBody, handle: (s, i) => s.settings.set(i.params.key!, parseBody(settingBody, i.body).value) },
  { method: "DELETE", path: "/api/v1/settings/:key", tag: "settings", summary: "Put a site setting back to its default", handle: (s, i) => s.settings.reset(i.params.key!) },
];
