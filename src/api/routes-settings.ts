/** Site settings over the admin API: the same service as `opencmg settings`. */
import { z } from "zod";
import { parseBody, type ApiRoute, needing } from "./route-kit.ts";
import * as S from "./schemas.ts";

export const settingBody = z.strictObject({ value: z.string() });

/** The settings of who may sign in (directory sign-in of devices and of administrators) are of security. */
export const isSecuritySetting = (key: string): boolean => key.startsWith("oidc-") || key.startsWith("admin-oidc-");
const settingNeeds = (i: { params: Record<string, string> }): "security" | "infrastructure" => (isSecuritySetting(i.params.key ?? "") ? "security" : "infrastructure");

export const SETTINGS_ROUTES: ApiRoute[] = needing("infrastructure", [
  { method: "GET", path: "/api/v1/settings", tag: "settings", summary: "Every site setting with its value, default and rule", response: z.array(S.setting), handle: (s) => s.settings.list() },
  { method: "GET", path: "/api/v1/settings/:key", tag: "settings", summary: "One site setting", response: S.setting, handle: (s, i) => s.settings.get(i.params.key!) },
  { method: "PUT", path: "/api/v1/settings/:key", tag: "settings", summary: "Change a site setting (the value as text, e.g. \"5m\"); the settings of directory sign-in need a Full Administrator", needs: settingNeeds, body: settingBody, response: S.setting, handle: (s, i) => s.settings.set(i.params.key!, parseBody(settingBody, i.body).value) },
  { method: "DELETE", path: "/api/v1/settings/:key", tag: "settings", summary: "Put a site setting back to its default", needs: settingNeeds, response: S.setting, handle: (s, i) => s.settings.reset(i.params.key!) },
]);
