/**
 * Site-issued tokens at the gateway (`/CCM_Proxy_ServerAuth/<roleId>/...`, server-authenticated
 * TLS only): the second `ClientAuthenticator`, beside client certificates. Everything it checks
 * against arrives in the settings (`tokens`: the site's public signing keys, issuer, this CMG's
 * audience, the blocked clients, the trusted directory's keys), so an instance stays stateless.
 *
 * Checks, in order, each refusal a 401 with its reason: no token in the query string; a token,
 * not oversized; an allowed algorithm (never `none`, never HMAC: an HS256 token "signed" with a
 * public key is refused before any key is looked at); a known issuer and key ID; the signature;
 * expiry and not-before; the audience (this CMG); the token type; a client that is not blocked;
 * then the proof of possession (RFC 9449 DPoP: signed by the client's key, for this method and
 * path, fresh, not replayed, for this token, and for a client token the key the token is bound to).
 * Bulk registration tokens and directory ID tokens are good for the registration request only.
 * A token is never written to a log line or an answer.
 */
import { createHash } from "node:crypto";
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, EmbeddedJWK, errors, importJWK, jwtVerify, type JWK, type JWTPayload, type JWTVerifyResult } from "jose";
import type { PublicJwk, TokenTrust } from "../../wire/tunnel/protocol.ts";
import { MAX_PROOF_BYTES, MAX_TOKEN_BYTES, OIDC_TOKEN_ALGS, PROOF_ALGS, PROOF_HEADER, PROOF_TYPE, SITE_TOKEN_ALGS, TOKEN_TYPES, type TokenKind } from "../../wire/tokens.ts";
import type { AuthRefusal, AuthVerdict, ClientAuthenticator, ClientIdentity, ClientRequest } from "./client-cert.ts";

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
  | "wrong_audience"
  | "wrong_token_type"
  | "token_not_for_path"
  | "blocked"
  | "proof_required"
  | "bad_proof";

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
  wrong_audience: "audience check: the token is not meant for this CMG",
  wrong_token_type: "token type check: not a client, bulk registration or directory ID token",
  token_not_for_path: "token use check: bulk registration and directory ID tokens only register a device",
  blocked: "block list check: an administrator blocked this client",
  proof_required: "proof of possession check: no DPoP proof",
  bad_proof: "proof of possession check: the DPoP proof is not valid for this request and token",
};

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
  /** Clock skew allowed on exp/nbf/iat, seconds (default 60). */
  clockToleranceSec?: number;
  /** How old a proof may be, seconds (default 300). */
  proofMaxAgeSec?: number;
  /** Verified tokens kept (default 20,000; oldest dropped first). */
  maxCacheEntries?: number;
  now?: () => number;
}

/** The path of a registration request relative to the role (wire/mp.ts MP_PATHS.register). */
const REGISTER_SUFFIX = /^\/CCM_Proxy_ServerAuth\/[^/]+\/SMS_MP\/v1\/register$/i;
/** Query parameters that carry tokens in the wild (RFC 6750 section 2.3 and friends). */
const TOKEN_PARAMS = new Set(["access_token", "id_token", "token", "bulk_token", "dpop"]);
const JWT_LIKE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\./;

/**
 * @example
 * const tokens = new TokenAuthenticator({ trust: () => ({ generation: store.generation, tokens: store.current()?.tokens }) });
 * createRouter({ ..., authenticators: { CCM_Proxy_MutualAuth: mtls, CCM_Proxy_ServerAuth: tokens } });
 */
export class TokenAuthenticator implements ClientAuthenticator {
  readonly method = "token" as const;
  private readonly verified = new Map<string, { generation: number; checked: Checked; until: number }>();
  private readonly keys = new Map<string, { generation: number; key: Promise<CryptoKey | Uint8Array> }>();
  private readonly blockedSets = new WeakMap<TokenTrust, Set<string>>();
  /** Proof IDs seen, with when they may be forgotten: a proof is good for one request. */
  private readonly proofsSeen = new Map<string, number>();
  private readonly tolerance: number;
  private readonly proofMaxAge: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(private readonly o: TokenAuthOptions) {
    this.tolerance = o.clockToleranceSec ?? 60;
    this.proofMaxAge = o.proofMaxAgeSec ?? 300;
    this.maxEntries = o.maxCacheEntries ?? 20_000;
    this.now = o.now ?? Date.now;
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
    const path = q < 0 ? url : url.slice(0, q);
    if (token.kind !== "client" && !REGISTER_SUFFIX.test(path)) return refuse("token_not_for_path", `a ${token.kind === "bulk" ? "bulk registration" : "directory ID"} token on ${path}`);

    const proof = await this.checkProof(req, path, token);
    if (!proof.ok) return proof;
    const identity: ClientIdentity = {
      method: "token",
      thumbprint: proof.jkt,
      subject: token.kind === "client" ? token.id : "",
      sans: [],
      token: { type: token.kind, id: token.id, ...(token.use ? { use: token.use, expiresAt: Math.floor(token.expiresAt / 1000) } : {}) },
    };
    return { ok: true, identity };
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

  /** RFC 9449 section 4.3, for this request. */
  private async checkProof(req: ClientRequest, path: string, token: VerifiedToken): Promise<{ ok: true; jkt: string } | AuthRefusal> {
    const proof = req.headers[PROOF_HEADER];
    if (typeof proof !== "string" || proof.length === 0) return refuse("proof_required", `no ${PROOF_HEADER} header`);
    if (proof.length > MAX_PROOF_BYTES) return refuse("bad_proof", `the proof is over ${MAX_PROOF_BYTES} bytes`);
    let payload: JWTPayload;
    let jwk: JWK | undefined;
    try {
      const r = await jwtVerify(proof, EmbeddedJWK, { typ: PROOF_TYPE, algorithms: [...PROOF_ALGS], maxTokenAge: this.proofMaxAge, clockTolerance: this.tolerance, currentDate: new Date(this.now()), requiredClaims: ["iat", "jti", "htm", "htu", "ath"] });
      payload = r.payload;
      jwk = r.protectedHeader.jwk;
    } catch (e) {
      return refuse("bad_proof", `the proof does not verify (${e instanceof errors.JOSEError ? e.code : "malformed"})`);
    }
    if (!jwk) return refuse("bad_proof", "the proof carries no public key");
    if (payload.htm !== (req.method ?? "GET")) return refuse("bad_proof", `the proof is for method ${String(payload.htm).slice(0, 16)}, not ${req.method}`);
    let htuPath: string;
    try {
      htuPath = new URL(String(payload.htu)).pathname;
    } catch {
      return refuse("bad_proof", "the proof's htu is not a URL");
    }
    // The path, not the host: behind a load balancer or another name the client's URL host differs.
    if (htuPath !== path) return refuse("bad_proof", `the proof is for another path`);
    if (payload.ath !== token.ath) return refuse("bad_proof", "the proof is for another token (ath)");
    const jkt = await calculateJwkThumbprint(jwk, "sha256");
    if (token.kind === "client" && jkt !== token.jkt) return refuse("bad_proof", "the proof is signed by another key than the one the client token is bound to");
    const jti = `${jkt}:${String(payload.jti).slice(0, 128)}`;
    const now = this.now();
    if ((this.proofsSeen.get(jti) ?? 0) > now) return refuse("bad_proof", "the proof was used before (replay)");
    this.proofsSeen.set(jti, now + (this.proofMaxAge + this.tolerance) * 1000);
    if (this.proofsSeen.size > this.maxEntries * 5) {
      for (const [k, until] of this.proofsSeen) if (until <= now || this.proofsSeen.size > this.maxEntries * 5) this.proofsSeen.delete(k);
    }
    return { ok: true, jkt };
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
  return {
    ok: false,
    status: 401,
    reason,
    check: TOKEN_CHECKS[reason],
    detail,
    // RFC 9449 section 7.1 / RFC 6750 section 3: what the client must present.
    headers: { "www-authenticate": `DPoP algs="${PROOF_ALGS.join(" ")}", error="invalid_token", error_description="${reason}"` },
  };
}
