/**
 * The administrators' directory: the OpenID Connect provider administrators sign in to the console
 * with (authorization code flow with PKCE). Its settings are site settings (SITE_SETTINGS), the
 * client secret a secret one (sealed with the site key, never shown). The redirect URL is not a
 * setting: it is the site's console address + ADMIN_OIDC_CALLBACK, to register at the directory.
 */
import { ValidationError } from "../../errors.ts";
import { checkIssuerUrl } from "./directory.ts";

export const ADMIN_OIDC_CALLBACK = "/api/v1/session/directory/callback";

const CLAIM_RULE = "a claim name: 1 to 64 letters, digits, underscores, hyphens or dots";
function claimName(field: string, raw: string): string {
  const v = raw.trim();
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(v)) throw new ValidationError(field, `must be ${CLAIM_RULE}`, `${field}: must be ${CLAIM_RULE} (got ${JSON.stringify(raw)})`);
  return v;
}

const CLIENT_ID_RULE = "1 to 256 visible characters";
const SECRET_RULE = "1 to 512 visible characters, or empty for none (a public client: PKCE only)";

export const ADMIN_DIRECTORY_SETTINGS = {
  "admin-oidc-issuer": {
    description: "OpenID Connect issuer administrators sign in to the console with (authorization code with PKCE); empty: token sign-in only",
    default: "",
    rule: "an https:// issuer URL (http:// only on a loopback address), or empty",
    normalize: (field: string, raw: string): string => (raw.trim() === "" ? "" : checkIssuerUrl(field, raw.trim())),
  },
  "admin-oidc-client-id": {
    description: "The console's client ID at the administrators' directory",
    default: "opencmg-console",
    rule: CLIENT_ID_RULE,
    normalize: (field: string, raw: string): string => {
      const v = raw.trim();
      if (v.length < 1 || v.length > 256 || !/^[\x21-\x7e]+$/.test(v)) throw new ValidationError(field, `must be ${CLIENT_ID_RULE}`, `${field}: must be ${CLIENT_ID_RULE} (got ${JSON.stringify(raw)})`);
      return v;
    },
  },
  "admin-oidc-client-secret": {
    description: "The console's client secret at the administrators' directory (stored sealed, never shown); empty: a public client",
    default: "",
    rule: SECRET_RULE,
    secret: true as const,
    // Never quotes what was given: it is a secret.
    normalize: (field: string, raw: string): string => {
      const v = raw.trim();
      if (v.length > 512 || !/^[\x21-\x7e]*$/.test(v)) throw new ValidationError(field, `must be ${SECRET_RULE}`, `${field}: must be ${SECRET_RULE}`);
      // What the setting reads as while one is stored (SECRET_SET): saving it back unchanged is no new secret.
      if (v === "(set)") throw new ValidationError(field, "must be the new secret, not (set)", `${field}: must be the new secret; (set) only says that one is stored`);
      return v;
    },
  },
  "admin-oidc-name-claim": {
    description: "The ID token claim that names the person (the audit log's who; what a user's role is assigned to)",
    default: "preferred_username",
    rule: CLAIM_RULE,
    normalize: claimName,
  },
  "admin-oidc-groups-claim": {
    description: "The ID token claim that carries the person's groups (what a group's role is assigned to)",
    default: "groups",
    rule: CLAIM_RULE,
    normalize: claimName,
  },
};

export interface AdminDirectoryConfig {
  issuer: string;
  clientId: string;
  /** "" for a public client. */
  clientSecret: string;
  nameClaim: string;
  groupsClaim: string;
}

/** What the configuration is read from (the settings service). */
export interface AdminDirectorySettings {
  get(key: string): Promise<{ value: string }>;
  secret(key: "admin-oidc-client-secret"): Promise<string>;
}

/** The configuration, or null while `admin-oidc-issuer` is empty. */
export async function adminDirectoryConfig(s: AdminDirectorySettings): Promise<AdminDirectoryConfig | null> {
  const issuer = (await s.get("admin-oidc-issuer")).value;
  if (!issuer) return null;
  return {
    issuer,
    clientId: (await s.get("admin-oidc-client-id")).value,
    clientSecret: await s.secret("admin-oidc-client-secret"),
    nameClaim: (await s.get("admin-oidc-name-claim")).value,
    groupsClaim: (await s.get("admin-oidc-groups-claim")).value,
  };
}
