/**
 * Console sign-in with the administrators' directory: OpenID Connect authorization code flow with
 * PKCE (S256), state and nonce, through `openid-client`. The browser goes to the directory, comes
 * back to the site's callback with a code, and the site exchanges it (with the client secret if
 * one is set) for an ID token whose name claim names the person and whose groups claim carries
 * their groups; their security role comes from the administrative users (admin-users.ts).
 *
 * A sign-in under way is kept in memory (bounded, ten minutes) and bound to the browser that
 * started it by a cookie, so a code from someone else's sign-in cannot be pushed into a browser.
 * Errors name what to fix and never carry the client secret or a token.
 */
import { randomBytes } from "node:crypto";
import * as oidc from "openid-client";
import { OpenCmgError } from "../errors.ts";
import { LOG_FILES } from "../logs/files.ts";
import { ADMIN_OIDC_CALLBACK, adminDirectoryConfig, type AdminDirectoryConfig } from "../site/services/admin-directory.ts";
import type { AdminIdentity } from "../site/services/admin-tokens.ts";
import type { OpenedSite } from "../site/site.ts";

export class DirectorySignInError extends OpenCmgError {
  constructor(code: string, message: string) {
    super("unauthorized", code, message);
  }
}

interface Pending {
  verifier: string;
  nonce: string;
  binding: string;
  redirectUri: string;
  config: AdminDirectoryConfig;
  expiresAt: number;
}

const PENDING_MS = 10 * 60_000;
const MAX_PENDING = 1000;
const DISCOVERY_FRESH_MS = 10 * 60_000;

export interface DirectoryStatus {
  configured: boolean;
  /** What to register at the directory as the console's redirect URL; null until the site listens. */
  redirectUri: string | null;
  issuer: string | null;
}

const isLoopbackHttp = (u: URL): boolean => u.protocol === "http:" && ["127.0.0.1", "[::1]", "localhost"].includes(u.hostname);

export class DirectorySignIn {
  readonly #pending = new Map<string, Pending>();
  #discovered: { key: string; config: oidc.Configuration; at: number } | undefined;

  constructor(
    private readonly site: OpenedSite,
    /** The console's address (`https://site01.contoso.com:8240/`), known once the listener is up. */
    private readonly consoleUrl: () => string | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  redirectUri(): string | undefined {
    const base = this.consoleUrl();
    return base ? new URL(ADMIN_OIDC_CALLBACK, base).toString() : undefined;
  }

  async status(): Promise<DirectoryStatus> {
    const c = await adminDirectoryConfig(this.site.services.settings);
    return { configured: c !== null, redirectUri: this.redirectUri() ?? null, issuer: c?.issuer ?? null };
  }

  /** A new sign-in: where to send the browser, and the binding cookie's value. */
  async start(): Promise<{ url: string; binding: string }> {
    const config = await adminDirectoryConfig(this.site.services.settings);
    if (!config) throw new DirectorySignInError("DIRECTORY_NOT_CONFIGURED", "directory sign-in is not set up: set admin-oidc-issuer (opencmg settings set admin-oidc-issuer https://...)");
    const redirectUri = this.redirectUri();
    if (!redirectUri) throw new DirectorySignInError("DIRECTORY_NOT_CONFIGURED", "the console's address is not known yet");
    const client = await this.#client(config);
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const binding = randomBytes(24).toString("base64url");
    this.#sweep();
    while (this.#pending.size >= MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
    this.#pending.set(state, { verifier, nonce, binding, redirectUri, config, expiresAt: this.now() + PENDING_MS });
    const url = oidc.buildAuthorizationUrl(client, {
      redirect_uri: redirectUri,
      scope: "openid profile",
      response_type: "code",
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: "S256",
      state,
      nonce,
    });
    return { url: url.toString(), binding };
  }

  /** The directory's answer at the callback (its query) for the browser holding `binding`: who signed in, with their role. */
  async finish(query: URLSearchParams, binding: string | undefined): Promise<AdminIdentity> {
    const state = query.get("state") ?? "";
    const p = this.#pending.get(state);
    if (!p || this.now() >= p.expiresAt) throw new DirectorySignInError("DIRECTORY_SIGN_IN", "this sign-in is unknown or took longer than 10 minutes: start it again");
    this.#pending.delete(state);
    if (!binding || binding !== p.binding) throw new DirectorySignInError("DIRECTORY_SIGN_IN", "this sign-in was started in another browser: start it again here");
    const err = query.get("error");
    if (err) throw new DirectorySignInError("DIRECTORY_REFUSED", `the directory refused the sign-in: ${err}${query.get("error_description") ? ` (${query.get("error_description")!.slice(0, 200)})` : ""}`);
    const client = await this.#client(p.config);
    const current = new URL(p.redirectUri);
    for (const [k, v] of query) current.searchParams.append(k, v);
    let claims: Record<string, unknown>;
    try {
      const tokens = await oidc.authorizationCodeGrant(client, current, { pkceCodeVerifier: p.verifier, expectedState: state, expectedNonce: p.nonce, idTokenExpected: true });
      claims = { ...(tokens.claims() ?? {}) };
      if (claims[p.config.nameClaim] === undefined || claims[p.config.groupsClaim] === undefined) {
        // Some directories give the profile at the userinfo endpoint only.
        const info = await oidc.fetchUserInfo(client, tokens.access_token, String(claims.sub ?? oidc.skipSubjectCheck));
        claims = { ...info, ...claims };
      }
    } catch (e) {
      // openid-client's messages name the check that failed; they hold no secret.
      throw new DirectorySignInError("DIRECTORY_SIGN_IN", `the sign-in could not be completed with the directory: ${e instanceof Error ? e.message : String(e)}`);
    }
    const name = claims[p.config.nameClaim];
    if (typeof name !== "string" || name.trim() === "") throw new DirectorySignInError("DIRECTORY_CLAIM", `the directory's ID token has no ${p.config.nameClaim} claim (admin-oidc-name-claim) naming the person`);
    const raw = claims[p.config.groupsClaim];
    const groups = Array.isArray(raw) ? raw.filter((g): g is string => typeof g === "string") : typeof raw === "string" ? [raw] : [];
    const r = await this.site.services.adminUsers.resolve(name, groups);
    const log = this.site.logs.component(LOG_FILES.smsprov);
    if (!r) {
      log.warn(`Console sign-in with the directory refused: ${name} has no security role.`);
      throw new DirectorySignInError("NOT_AN_ADMINISTRATOR", `${name} signed in with the directory but has no security role here: a Full Administrator gives one (opencmg admin-users add user|group VALUE ROLE)`);
    }
    log.info(`${name} signed in to the console with the directory as ${r.role}.`);
    return { name, role: r.role, readOnly: r.readOnly, source: "directory", groups };
  }

  /** The directory's discovery, kept ten minutes per configuration. */
  async #client(c: AdminDirectoryConfig): Promise<oidc.Configuration> {
    const key = JSON.stringify([c.issuer, c.clientId, c.clientSecret]);
    if (this.#discovered && this.#discovered.key === key && this.now() - this.#discovered.at < DISCOVERY_FRESH_MS) return this.#discovered.config;
    const issuer = new URL(c.issuer);
    try {
      const config = await oidc.discovery(issuer, c.clientId, c.clientSecret || undefined, c.clientSecret ? oidc.ClientSecretPost(c.clientSecret) : oidc.None(), {
        // Plain HTTP only to a directory on this host (the issuer setting allows no other).
        ...(isLoopbackHttp(issuer) ? { execute: [oidc.allowInsecureRequests] } : {}),
        timeout: 15,
      });
      this.#discovered = { key, config, at: this.now() };
      return config;
    } catch (e) {
      throw new DirectorySignInError("DIRECTORY_UNREACHABLE", `the directory ${c.issuer} could not be discovered: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  #sweep(): void {
    const now = this.now();
    for (const [k, p] of this.#pending) if (now >= p.expiresAt) this.#pending.delete(k);
  }
}
