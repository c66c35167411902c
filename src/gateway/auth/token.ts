/**
 * Site-issued tokens at the gateway (`/CCM_Proxy_ServerAuth/<roleId>/...`, server-authenticated
 * TLS only): the second `ClientAuthenticator`, beside client certificates. Everything it checks
 * against arrives in the settings (`tokens`: the site's public signing keys, issuer, this CMG's
 * audience, the blocked clients, the trusted directory's keys), so an instance stays stateless.
 *
 * Checks, in order, each refusal a 401 with its reason (429 or 503 where a bound is reached): no
 * token in the query string; a token, not oversized; an allowed algorithm (never `none`, never HMAC: an HS256 token "signed" with a
 * public key is refused before any key is looked at); a known issuer and key ID; the signature;
 * expiry and not-before; `iat` not in the future and a lifetime (`exp` - `iat`) within its type's
 * maximum; the audience (this CMG); the token type; a client that is not blocked; a token bound to
 * a key (`cnf.jkt`) sent with the `DPoP` scheme, never `Bearer` (RFC 9449 section 7.1); then the
 * proof of possession (RFC 9449 section 4.3): signed by the client's key, for this method and for
 * this URL in full (`https`, a host and port this CMG is reached by as the settings name them,
 * this path), issued within the last 5 minutes, for this token, by the key a client token is bound
 * to, with a nonce of this instance (else `use_dpop_nonce` and a fresh one, section 8), and not
 * seen before at this instance (dpop-nonce.ts): a proof is accepted once, at one instance.
 * Bulk registration tokens and directory ID tokens are good for the registration request only.
 * A token is never written to a log line or an answer.
 */
import { createHash } from "node:crypto";
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, EmbeddedJWK, errors, importJWK, jwtVerify, type JWK, type JWTPayload, type JWTVerifyResult } from "jose";
import type { PublicJwk, TokenTrust } from "../../wire/tunnel/protocol.ts";
import {
  CLOCK_SKEW_SEC,
  MAX_PROOF_BYTES,
  MAX_TOKEN_BYTES,
  NONCE_HEADER,
  OIDC_TOKEN_ALGS,
  PROOF_ALGS,
  PROOF_HEADER,
  PROOF_MAX_AGE_SEC,
  PROOF_TYPE,
  SITE_TOKEN_ALGS,
  TOKEN_MAX_LIFETIME_MS,
  TOKEN_TYPES,
  USE_DPOP_NONCE,
  type TokenKind,
} from "../../wire/tokens.ts";
import type { AuthRefusal, AuthVerdict, ClientAuthenticator, ClientIdentity, ClientRequest } from "./client-cert.ts";
import { DpopNonces, ProofReplayCache, type ReplayVerdict } from "./dpop-nonce.ts";

export type TokenRefusalReason =
  | "not_configured"
  | "token_in_query"
  | "no_token"
  | "token_too_large"
  | "malformed_token"
  | "alg_not_allowed"
  | "untrusted_issuer"
  | "unknown_key"
  | "bad_signature"
  | "expired"
  | "not_yet_valid"
  | "issued_in_future"
  | "lifetime_too_long"
  | "wrong_audience"
  | "wrong_token_type"
  | "token_not_for_path"
  | "blocked"
  | "bound_token_as_bearer"
  | "proof_required"
  | "bad_proof"
  | "proof_wrong_url"
  | "proof_wrong_method"
  | "proof_not_fresh"
  | "use_dpop_nonce"
  | "proof_replayed"
  | "too_many_proofs"
  | "proof_cache_full";

export const TOKEN_CHECKS: Record<TokenRefusalReason, string> = {
  not_configured: "token trust check: no site signing keys have reached this instance",
  token_in_query: "token placement check: tokens go in the Authorization header, never in the URL",
  no_token: "token presence check: no Authorization: DPoP (or Bearer) token",
  token_too_large: `token size check: the token is over ${MAX_TOKEN_BYTES} bytes`,
  malformed_token: "token format check: not a well-formed signed JWT",
  alg_not_allowed: "algorithm check: the token's signature algorithm is not accepted",
  untrusted_issuer: "issuer check: the token's issuer is neither this site nor the trusted directory",
  unknown_key: "key check: the token names a signing key this instance does not know",
  bad_signature: "signature check: the signature does not verify",
  expired: "validity check: the token has expired",
  not_yet_valid: "validity check: the token is not valid yet",
  issued_in_future: `validity check: the token's iat is more than ${CLOCK_SKEW_SEC} s in the future`,
  lifetime_too_long: "lifetime check: the token's exp - iat is longer than its type is ever issued for",
  wrong_audience: "audience check: the token is not meant for this CMG",
  wrong_token_type: "token type check: not a client, bulk registration or directory ID token",
  token_not_for_path: "token use check: bulk registration and directory ID tokens only register a device",
  blocked: "block list check: an administrator blocked this client",
  bound_token_as_bearer: "token scheme check: a token bound to a key (cnf.jkt) goes with Authorization: DPoP, never Bearer",
  proof_required: "proof of possession check: no DPoP proof",
  bad_proof: "proof of possession check: the DPoP proof is not valid for this request and token",
  proof_wrong_url: "proof of possession check: the proof's htu is not this request's URL at a name this CMG is reached by",
  proof_wrong_method: "proof of possession check: the proof's htm is not this request's method",
  proof_not_fresh: `proof of possession check: the proof's iat is not within the last ${PROOF_MAX_AGE_SEC} s`,
  use_dpop_nonce: "proof of possession check: the proof carries no nonce of this instance (a fresh one is in DPoP-Nonce)",
  proof_replayed: "proof of possession check: the proof was used before",
  too_many_proofs: "proof of possession check: this client sent more proofs than this instance remembers for one client",
  proof_cache_full: "proof of possession check: this instance remembers as many proofs as it can hold",
};

/** Refusals that are not a 401: a bound reached, not a credential refused. */
const REFUSAL_STATUS: Partial<Record<TokenRefusalReason, 429 | 503>> = { too_many_proofs: 429, proof_cache_full: 503 };

/** A token that passed its own checks (signature, times, audience, type); kept per token string. */
interface VerifiedToken {
  kind: TokenKind;
  /** Client ID (client), bulk token ID (bulk), "<issuer> <device claim value>" (oidc). */
  id: string;
  /** Client tokens: the key thumbprint the token is bound to. */
  jkt?: string;
  /** sha256 of the token, base64url (the proof's `ath`). */
  ath: string;
  expiresAt: number;
  /**
   * Directory ID tokens: what makes this token one registration (its `jti`, else its hash). The
   * site records it until the token expires and refuses a second registration with it.
   */
  use?: string;
}

type Checked = { ok: true; token: VerifiedToken } | AuthRefusal;

export interface TokenAuthOptions {
  /** The trust in force (settings.tokens), its generation, or null before any settings arrived. */
  trust: () => { generation: number; tokens: TokenTrust | undefined } | null;
  /** This instance: its name (`<cmg>-<index>`, bound into its nonces) and index (its own origin in the settings). */
  instance: { name: string; index: number };
  /** Clock skew allowed on exp/nbf/iat, seconds (default CLOCK_SKEW_SEC). */
  clockToleranceSec?: number;
  /** How old a proof may be, seconds (default PROOF_MAX_AGE_SEC). */
  proofMaxAgeSec?: number;
  /** Verified tokens kept (default 20,000; oldest dropped first). */
  maxCacheEntries?: number;
  now?: () => number;
  /**
   * The instance runs worker processes (workers.ts): they share its nonce secret, and the proofs
   * accepted are remembered in one place for all of them (the primary), so a proof is good for one
   * request at the instance, whichever worker takes it.
   */
  shared?: { nonceSecret: Buffer; useProof: (window: number, current: number, client: string, id: string) => Promise<ReplayVerdict> };
}

/** The path of a registration request relative to the role (wire/mp.ts MP_PATHS.register). */
const REGISTER_SUFFIX = /^\/CCM_Proxy_ServerAuth\/[^/]+\/SMS_MP\/v1\/register$/i;
/** Query parameters that carry tokens in the wild (RFC 6750 section 2.3 and friends). */
const TOKEN_PARAMS = new Set(["access_token", "id_token", "token", "bulk_token", "dpop"]);
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\./;

/**
 * @example
 * const tokens = new TokenAuthenticator({ instance: { name: "cmg1-0", index: 0 }, trust: () => ({ generation: store.generation, tokens: store.current()?.tokens }) });
 * createRouter({ ..., authenticators: { CCM_Proxy_MutualAuth: mtls, CCM_Proxy_ServerAuth: tokens } });
 */
export class TokenAuthenticator implements ClientAuthenticator {
  readonly method = "token" as const;
  private readonly verified = new Map<string, { generation: number; checked: Checked; until: number }>();
  private readonly keys = new Map<string, { generation: number; key: Promise<CryptoKey | Uint8Array> }>();
  private readonly blockedSets = new WeakMap<TokenTrust, Set<string>>();
  /** This instance's nonces, and the proofs it accepted while their nonce is valid: a proof is good for one request. */
  private readonly nonces: DpopNonces;
  private readonly proofsSeen = new ProofReplayCache();
  private readonly tolerance: number;
  private readonly proofMaxAge: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly o: TokenAuthOptions) {
    this.tolerance = o.clockToleranceSec ?? CLOCK_SKEW_SEC;
    this.proofMaxAge = o.proofMaxAgeSec ?? PROOF_MAX_AGE_SEC;
    this.maxEntries = o.maxCacheEntries ?? 20_000;
    this.now = o.now ?? Date.now;
    this.nonces = new DpopNonces(o.instance.name, this.now, o.shared?.nonceSecret);
  }

  async authenticate(req: ClientRequest): Promise<AuthVerdict> {
    const t = this.o.trust();
    const trust = t?.tokens;
    if (!t || !trust || trust.keys.length === 0) return refuse("not_configured", "the settings carry no token signing keys");
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    if (q >= 0 && tokenInQuery(url.slice(q + 1))) return refuse("token_in_query", "the query string carries a token (refused, whatever it is)");

    const auth = req.headers.authorization;
    const m = typeof auth === "string" ? /^(DPoP|Bearer) +([^\s]+) *$/i.exec(auth) : null;
    if (!m) return refuse("no_token", auth === undefined ? "no Authorization header" : "the Authorization header is not `DPoP <token>` or `Bearer <token>`");
    const raw = m[2]!;
    if (raw.length > MAX_TOKEN_BYTES) return refuse("token_too_large", `${raw.length} bytes`);

    const checked = await this.checkToken(raw, trust, t.generation);
    if (!checked.ok) return checked;
    const token = checked.token;
    if (token.expiresAt <= this.now()) return refuse("expired", "the token expired while cached");
    if (token.kind === "client" && this.blocked(trust).has(token.id)) return refuse("blocked", `client ${token.id}`);
    if (token.jkt !== undefined && m[1]!.toLowerCase() === "bearer") return refuse("bound_token_as_bearer", `a client token of ${token.id} with the Bearer scheme`);
    const path = q < 0 ? url : url.slice(0, q);
    if (token.kind !== "client" && !REGISTER_SUFFIX.test(path)) return refuse("token_not_for_path", `a ${token.kind === "bulk" ? "bulk registration" : "directory ID"} token on ${path}`);

    const proof = await this.checkProof(req, path, token, trust);
    if (!proof.ok) return this.withNonce(proof);
    const identity: ClientIdentity = {
      method: "token",
      thumbprint: proof.jkt,
      subject: token.kind === "client" ? token.id : "",
      sans: [],
      token: { type: token.kind, id: token.id, ...(token.use ? { use: token.use, expiresAt: Math.floor(token.expiresAt / 1000) } : {}) },
    };
    // A nonce of the previous window is still good, but not for long: the client gets the new one.
    return { ok: true, identity, ...(proof.fresh ? {} : { headers: { [NONCE_HEADER]: this.nonces.current() } }) };
  }

  /** Every refusal of a token request hands out this instance's nonce (RFC 9449 section 8). */
  private withNonce(r: AuthRefusal): AuthRefusal {
    return { ...r, headers: { ...r.headers, [NONCE_HEADER]: this.nonces.current() } };
  }

  private blocked(trust: TokenTrust): Set<string> {
    let s = this.blockedSets.get(trust);
    if (!s) this.blockedSets.set(trust, (s = new Set(trust.blocked)));
    return s;
  }

  /** The token's own checks, cached per token string and settings generation. */
  private async checkToken(raw: string, trust: TokenTrust, generation: number): Promise<Checked> {
    // Keyed by the token's hash: 32 bytes per entry whatever the token's size.
    const key = createHash("sha256").update(raw).digest("base64url");
    const hit = this.verified.get(key);
    const now = this.now();
    if (hit && hit.generation === generation && hit.until > now) return hit.checked;
    const checked = await this.verify(raw, trust, generation);
    // Refusals are cached too (a client retrying a bad token costs one lookup), but briefly.
    const until = checked.ok ? Math.min(checked.token.expiresAt, now + 60_000) : now + 5_000;
    this.verified.delete(key);
    this.verified.set(key, { generation, checked, until });
    if (this.verified.size > this.maxEntries) this.verified.delete(this.verified.keys().next().value!);
    return checked;
  }

  private async verify(raw: string, trust: TokenTrust, generation: number): Promise<Checked> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let claims: JWTPayload;
    try {
      header = decodeProtectedHeader(raw);
      claims = decodeJwt(raw);
    } catch {
      return refuse("malformed_token", "the token does not decode as a JWS compact JWT");
    }
    const alg = typeof header.alg === "string" ? header.alg : "(none given)";
    const oidc = trust.oidc && claims.iss === trust.oidc.issuer ? trust.oidc : undefined;
    const site = claims.iss === trust.issuer;
    // Never `none`, never HMAC, whoever the token claims to come from.
    if (!(OIDC_TOKEN_ALGS as readonly string[]).includes(alg) && !(SITE_TOKEN_ALGS as readonly string[]).includes(alg)) return refuse("alg_not_allowed", `alg ${alg}`);
    if (!site && !oidc) return refuse("untrusted_issuer", `issuer ${JSON.stringify(claims.iss ?? null).slice(0, 200)}`);
    const allowed: readonly string[] = oidc ? OIDC_TOKEN_ALGS : SITE_TOKEN_ALGS;
    if (!allowed.includes(alg)) return refuse("alg_not_allowed", `alg ${alg}; accepted: ${allowed.join(", ")}`);
    const keys = oidc ? oidc.keys : trust.keys;
    const jwk = typeof header.kid === "string" ? keys.find((k) => k.kid === header.kid) : undefined;
    if (!jwk) return refuse("unknown_key", `kid ${JSON.stringify(header.kid ?? null).slice(0, 80)} is not among the ${keys.length} key(s) of ${oidc ? "the directory" : "the site"}`);
    if (jwk.alg !== undefined && jwk.alg !== alg) return refuse("alg_not_allowed", `alg ${alg}, but key ${jwk.kid} is for ${jwk.alg}`);

    let kind: TokenKind;
    if (oidc) kind = "oidc";
    else if (header.typ === TOKEN_TYPES.client) kind = "client";
    else if (header.typ === TOKEN_TYPES.bulk) kind = "bulk";
    else return refuse("wrong_token_type", `typ ${JSON.stringify(header.typ ?? null).slice(0, 80)}`);

    let result: JWTVerifyResult;
    try {
      const key = await this.importKey(jwk, alg, generation, oidc ? "oidc" : "site");
      result = await jwtVerify(raw, key, {
        algorithms: [alg],
        issuer: oidc ? oidc.issuer : trust.issuer,
        audience: oidc ? oidc.audience : trust.audience,
        clockTolerance: this.tolerance,
        currentDate: new Date(this.now()),
        requiredClaims: oidc ? ["exp", "iat"] : ["exp", "iat", "jti"],
      });
    } catch (e) {
      return fromJoseError(e);
    }
    const p = result.payload;
    const expiresAt = (p.exp ?? 0) * 1000;
    // jose checks iat only against a maximum age: a token "issued" later than now is refused here.
    const iat = p.iat!;
    if (iat * 1000 > this.now() + this.tolerance * 1000) return refuse("issued_in_future", `iat ${iat} is ${Math.round(iat - this.now() / 1000)} s ahead of this instance's clock (${this.tolerance} s allowed)`);
    const lifetimeMs = expiresAt - iat * 1000;
    if (lifetimeMs > TOKEN_MAX_LIFETIME_MS[kind]) return refuse("lifetime_too_long", `exp - iat is ${Math.round(lifetimeMs / 1000)} s; a ${kind} token lives ${TOKEN_MAX_LIFETIME_MS[kind] / 1000} s at most`);
    const ath = createHash("sha256").update(raw).digest("base64url");
    if (kind === "oidc") {
      const device = p[oidc!.deviceClaim];
      if (typeof device !== "string" || device.length === 0 || device.length > 256) return refuse("malformed_token", `the ID token has no ${oidc!.deviceClaim} claim naming the device`);
      // The issuer goes with the device's name: a device is the same device only at the same directory.
      const jti = typeof p.jti === "string" && /^[\x21-\x7e]{1,128}$/.test(p.jti) ? p.jti : undefined;
      return { ok: true, token: { kind, id: `${oidc!.issuer} ${device}`, ath, expiresAt, use: jti ? `jti:${jti}` : `sha256:${ath}` } };
    }
    if (kind === "bulk") return { ok: true, token: { kind, id: String(p.jti), ath, expiresAt } };
    const jkt = (p.cnf as { jkt?: unknown } | undefined)?.jkt;
    if (typeof p.sub !== "string" || typeof jkt !== "string") return refuse("malformed_token", "a client token needs sub and cnf.jkt");
    return { ok: true, token: { kind, id: p.sub, jkt, ath, expiresAt } };
  }

  private importKey(jwk: PublicJwk, alg: string, generation: number, from: string): Promise<CryptoKey | Uint8Array> {
    const id = `${from}:${jwk.kid}:${alg}`;
    const hit = this.keys.get(id);
    if (hit && hit.generation === generation) return hit.key;
    const key = importJWK(jwk as JWK, alg);
    this.keys.set(id, { generation, key });
    if (this.keys.size > 64) this.keys.delete(this.keys.keys().next().value!);
    return key;
  }

  /** RFC 9449 sections 4.3 and 8, for this request. */
  private async checkProof(req: ClientRequest, path: string, token: VerifiedToken, trust: TokenTrust): Promise<{ ok: true; jkt: string; fresh: boolean } | AuthRefusal> {
    const proof = req.headers[PROOF_HEADER];
    if (typeof proof !== "string" || proof.length === 0) return refuse("proof_required", `no ${PROOF_HEADER} header`);
    if (proof.length > MAX_PROOF_BYTES) return refuse("bad_proof", `the proof is over ${MAX_PROOF_BYTES} bytes`);
    let payload: JWTPayload;
    let jwk: JWK | undefined;
    try {
      // Times are checked below, each with its own refusal.
      const r = await jwtVerify(proof, EmbeddedJWK, { typ: PROOF_TYPE, algorithms: [...PROOF_ALGS], currentDate: new Date(this.now()), clockTolerance: this.tolerance, requiredClaims: ["iat", "jti", "htm", "htu", "ath"] });
      payload = r.payload;
      jwk = r.protectedHeader.jwk;
    } catch (e) {
      return refuse("bad_proof", `the proof does not verify (${e instanceof errors.JOSEError ? e.code : "malformed"})`);
    }
    if (!jwk) return refuse("bad_proof", "the proof carries no public key");
    if (payload.htm !== (req.method ?? "GET")) return refuse("proof_wrong_method", `the proof is for method ${String(payload.htm).slice(0, 16)}, not ${req.method}`);
    const htu = this.checkHtu(payload.htu, path, trust);
    if (htu) return refuse("proof_wrong_url", htu);
    if (payload.ath !== token.ath) return refuse("bad_proof", "the proof is for another token (ath)");
    const jkt = await calculateJwkThumbprint(jwk, "sha256");
    if (token.kind === "client" && jkt !== token.jkt) return refuse("bad_proof", "the proof is signed by another key than the one the client token is bound to");
    const iat = payload.iat!;
    const nowSec = this.now() / 1000;
    if (iat > nowSec + this.tolerance) return refuse("proof_not_fresh", `iat ${iat} is ${Math.round(iat - nowSec)} s ahead of this instance's clock (${this.tolerance} s allowed)`);
    if (nowSec - iat > this.proofMaxAge) return refuse("proof_not_fresh", `iat ${iat} is ${Math.round(nowSec - iat)} s old (${this.proofMaxAge} s allowed)`);
    const nonce = this.nonces.check(payload.nonce);
    if (!nonce.ok) return refuse(USE_DPOP_NONCE, nonce.why);
    const jti = payload.jti;
    if (typeof jti !== "string" || jti.length < 8 || jti.length > 128) return refuse("bad_proof", "the proof's jti is not a string of 8 to 128 characters");
    const seen = this.o.shared
      ? await this.o.shared.useProof(nonce.window, this.nonces.window(), `${token.kind} ${token.id}`, `${jkt} ${jti}`)
      : this.proofsSeen.use(nonce.window, this.nonces.window(), `${token.kind} ${token.id}`, `${jkt} ${jti}`);
    if (!seen.ok) {
      const reason = seen.why === "replayed" ? "proof_replayed" : seen.why === "client_full" ? "too_many_proofs" : "proof_cache_full";
      return refuse(reason, seen.detail);
    }
    return { ok: true, jkt, fresh: nonce.fresh };
  }

  /**
   * Why `htu` is not this request's URL at this CMG (null when it is): `https`, an origin the
   * settings name for the CMG or this instance, this path; query and fragment not compared
   * (RFC 9449 section 4.3). The Host header is the client's to write, so it decides nothing.
   */
  private checkHtu(htu: unknown, path: string, trust: TokenTrust): string | null {
    let u: URL;
    try {
      u = new URL(String(htu));
    } catch {
      return "the proof's htu is not a URL";
    }
    const named = `${u.origin}${u.pathname}`.slice(0, 300);
    if (u.protocol !== "https:") return `htu ${named} is not https`;
    if (u.username || u.password) return "the proof's htu carries user information";
    const own = trust.origins.instances[this.o.instance.index];
    if (!trust.origins.cmg.includes(u.origin) && u.origin !== own) return `htu ${named} names neither this CMG (${trust.origins.cmg.join(", ")}) nor this instance (${own ?? "no client URL in the settings"})`;
    if (u.pathname !== path) return `htu ${named} is for another path`;
    return null;
  }
}

function tokenInQuery(query: string): boolean {
  if (JWT_LIKE.test(query)) return true;
  for (const part of query.split("&")) {
    const name = part.split("=")[0]!;
    let decoded = name;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      // a malformed name is looked at as it is
    }
    if (TOKEN_PARAMS.has(decoded.toLowerCase())) return true;
  }
  return false;
}

function fromJoseError(e: unknown): AuthRefusal {
  if (e instanceof errors.JWTExpired) return refuse("expired", `exp ${e.payload.exp ?? "?"}`);
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === "nbf" || e.claim === "iat") return refuse("not_yet_valid", `${e.claim} ${String(e.payload[e.claim] ?? "?")} is in the future`);
    if (e.claim === "aud") return refuse("wrong_audience", `aud ${JSON.stringify(e.payload.aud ?? null).slice(0, 200)}`);
    if (e.claim === "iss") return refuse("untrusted_issuer", "issuer");
    return refuse("malformed_token", `claim ${e.claim}: ${e.reason}`);
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) return refuse("bad_signature", "signature verification failed");
  if (e instanceof errors.JOSEAlgNotAllowed) return refuse("alg_not_allowed", "algorithm not allowed");
  if (e instanceof errors.JOSEError) return refuse("malformed_token", e.code);
  return refuse("malformed_token", "the token could not be checked");
}

function refuse(reason: TokenRefusalReason, detail: string): AuthRefusal {
  const status = REFUSAL_STATUS[reason] ?? 401;
  // RFC 9449 sections 7.1 and 8 / RFC 6750 section 3: what the client must present.
  const error = reason === USE_DPOP_NONCE ? USE_DPOP_NONCE : reason.startsWith("proof_") || reason === "bad_proof" || reason === "too_many_proofs" ? "invalid_dpop_proof" : "invalid_token";
  return {
    ok: false,
    status,
    reason,
    check: TOKEN_CHECKS[reason],
    detail,
    headers: {
      "www-authenticate": `DPoP algs="${PROOF_ALGS.join(" ")}", error="${error}", error_description="${reason}"`,
      ...(status === 503 ? { "retry-after": "60" } : {}),
    },
  };
}
