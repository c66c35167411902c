/**
 * Directory sign-in (OpenID Connect): the issuer the site trusts, the audience its ID tokens must
 * name (the client ID registered at the directory), and the claim that names the device. The
 * issuer's signing keys are found the standard way (discovery document, then its `jwks_uri`),
 * kept for ten minutes, and pushed to the gateway instances with the CMG settings, so an instance
 * checks ID tokens without reaching the directory itself.
 */
import { ValidationError } from "../../errors.ts";
import type { ComponentLog } from "../../logs/cmtrace.ts";
import { MAX_OIDC_KEYS, type PublicJwk, type TokenTrust } from "../../wire/tunnel/protocol.ts";

export interface DirectoryConfig {
  issuer: string;
  audience: string;
  /** The ID token claim whose value names the device (default `sub`). */
  deviceClaim: string;
}

/** The site settings of directory sign-in (entries of SITE_SETTINGS, src/site/services/settings.ts). */
export const DIRECTORY_SETTINGS = {
  "oidc-issuer": {
    description: "OpenID Connect issuer whose ID tokens may register devices (directory sign-in); empty: none",
    default: "",
    rule: "an https:// issuer URL (http:// only on a loopback address), or empty",
    normalize: (field: string, raw: string): string => (raw.trim() === "" ? "" : checkIssuerUrl(field, raw.trim())),
  },
  "oidc-audience": {
    description: "The audience (client ID at the directory) the ID tokens must name",
    default: "opencmg",
    rule: "1 to 256 visible characters",
    normalize: (field: string, raw: string): string => visible(field, raw, 256),
  },
  "oidc-device-claim": {
    description: "The ID token claim whose value names the device (its client ID stays the same across registrations)",
    default: "sub",
    rule: "a claim name: 1 to 64 letters, digits, underscores, hyphens or dots",
    normalize: (field: string, raw: string): string => {
      const v = raw.trim();
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(v)) throw new ValidationError(field, "must be a claim name: 1 to 64 letters, digits, underscores, hyphens or dots", `${field}: must be a claim name: 1 to 64 letters, digits, underscores, hyphens or dots (got ${JSON.stringify(raw)})`);
      return v;
    },
  },
};

function visible(field: string, raw: string, max: number): string {
  const v = raw.trim();
  if (v.length < 1 || v.length > max || !/^[\x21-\x7e]+$/.test(v)) throw new ValidationError(field, `must be 1 to ${max} visible characters`, `${field}: must be 1 to ${max} visible characters (got ${JSON.stringify(raw)})`);
  return v;
}

/** What the directory configuration is read from (the settings service's `get`). */
export interface SettingReader {
  get(key: string): Promise<{ value: string }>;
}

/** The configuration from the site settings; null while `oidc-issuer` is empty. */
export function directoryConfigFrom(settings: SettingReader): DirectoryConfigSource {
  return async () => {
    const issuer = (await settings.get("oidc-issuer")).value;
    if (!issuer) return null;
    return { issuer, audience: (await settings.get("oidc-audience")).value, deviceClaim: (await settings.get("oidc-device-claim")).value };
  };
}

/** Where the configuration comes from (the site settings `oidc-issuer`, `oidc-audience`, `oidc-device-claim`). */
export type DirectoryConfigSource = () => Promise<DirectoryConfig | null>;

/** Fetches a small JSON document (discovery, JWKS). */
export type JsonFetch = (url: string) => Promise<unknown>;

const KEYS_FRESH_MS = 10 * 60_000;
const RETRY_MS = 60_000;
const MAX_DOCUMENT_BYTES = 256 * 1024;

/**
 * An issuer URL: https, or http on a loopback address only (a directory on the same host, as in
 * tests; a remote directory over plain HTTP could hand out any key).
 */
export function checkIssuerUrl(field: string, value: string): string {
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    u = undefined;
  }
  const loopback = u && (u.hostname === "127.0.0.1" || u.hostname === "[::1]" || u.hostname === "localhost");
  if (!u || !(u.protocol === "https:" || (u.protocol === "http:" && loopback)) || u.search || u.hash) {
    throw new ValidationError(field, "must be an https:// issuer URL (http:// only on a loopback address), without query or fragment", `${field}: must be an https:// issuer URL (http:// only on a loopback address), without query or fragment (got ${JSON.stringify(value)})`);
  }
  return value;
}

/** Plain GET of a JSON document, bounded in time and size (undici is loaded with the first fetch). */
export const fetchJson: JsonFetch = async (url) => (await import("./directory-fetch.ts")).getJson(url, MAX_DOCUMENT_BYTES);

/** The public signing keys of a JWKS document, private members dropped, at most MAX_OIDC_KEYS. */
function publicKeysOf(jwks: unknown): PublicJwk[] {
  const keys = (jwks as { keys?: unknown })?.keys;
  if (!Array.isArray(keys)) throw new Error("the JWKS document has no keys array");
  const out: PublicJwk[] = [];
  for (const k of keys as Record<string, unknown>[]) {
    if (!k || typeof k !== "object" || typeof k.kid !== "string" || (k.use !== undefined && k.use !== "sig")) continue;
    if (k.kty !== "RSA" && k.kty !== "EC" && k.kty !== "OKP") continue;
    const pick = (n: string): string | undefined => (typeof k[n] === "string" ? (k[n] as string) : undefined);
    const jwk: PublicJwk = { kty: k.kty, kid: k.kid };
    for (const n of ["alg", "crv", "x", "y", "n", "e"] as const) {
      const v = pick(n);
      if (v !== undefined) jwk[n] = v;
    }
    if (k.use === "sig") jwk.use = "sig";
    out.push(jwk);
    if (out.length === MAX_OIDC_KEYS) break;
  }
  return out;
}

/**
 * @example
 * const dir = new DirectoryTrust(async () => ({ issuer, audience: "opencmg", deviceClaim: "sub" }), fetchJson, log);
 * const trust = await dir.gatewayTrust(); // pushed in the CMG settings
 */
export class DirectoryTrust {
  private cached: { issuer: string; keys: PublicJwk[]; at: number } | null = null;
  private failedAt = 0;

  constructor(
    private readonly source: DirectoryConfigSource,
    private readonly fetch: JsonFetch,
    private readonly log: () => ComponentLog,
    private readonly now: () => number = Date.now,
  ) {}

  async config(): Promise<DirectoryConfig | null> {
    return this.source();
  }

  /** Discovery, then the JWKS of the issuer (throws with what failed). */
  private async fetchKeys(issuer: string): Promise<PublicJwk[]> {
    const discovery = (await this.fetch(`${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`)) as { issuer?: unknown; jwks_uri?: unknown };
    // OpenID Connect Discovery 1.0 section 4.3: the document must name the issuer it was fetched for.
    if (discovery?.issuer !== issuer) throw new Error(`the discovery document names issuer ${JSON.stringify(discovery?.issuer)}, not ${issuer}`);
    if (typeof discovery.jwks_uri !== "string") throw new Error("the discovery document has no jwks_uri");
    checkIssuerUrl("jwks_uri", discovery.jwks_uri);
    return publicKeysOf(await this.fetch(discovery.jwks_uri));
  }

  /** The directory part of the instances' token trust, or undefined when no directory is trusted. */
  async gatewayTrust(): Promise<TokenTrust["oidc"] | undefined> {
    const c = await this.source();
    if (!c) return undefined;
    const now = this.now();
    const fresh = this.cached && this.cached.issuer === c.issuer && now - this.cached.at < KEYS_FRESH_MS;
    if (!fresh && now - this.failedAt >= RETRY_MS) {
      try {
        const keys = await this.fetchKeys(c.issuer);
        this.cached = { issuer: c.issuer, keys, at: now };
        this.log().info(`Directory ${c.issuer}: ${keys.length} signing key(s) read through discovery (${keys.map((k) => k.kid).join(", ")}).`);
      } catch (e) {
        this.failedAt = now;
        this.log().warn(`Directory ${c.issuer}: could not read its signing keys (${(e as Error).message}); ${this.cached?.issuer === c.issuer ? "the keys read before stay in force" : "ID tokens are refused until they can be read"}.`);
      }
    }
    const keys = this.cached?.issuer === c.issuer ? this.cached.keys : [];
    return { issuer: c.issuer, audience: c.audience, deviceClaim: c.deviceClaim, keys };
  }
}
