/**
 * Site-issued tokens on the wire: what a client sends on `/CCM_Proxy_ServerAuth/<roleId>/...`,
 * and the names both ends and the management point agree on.
 *
 *   Authorization: DPoP <token>     the site's client token, a bulk registration token, or a
 *                                   directory (OpenID Connect) ID token at registration
 *   DPoP: <proof>                   RFC 9449 proof of possession: a JWT signed by the key the
 *                                   client generated (public key in its header), naming the
 *                                   method (htm), URL (htu), token hash (ath) and the instance's
 *                                   nonce (nonce); fresh per request, good for one request
 *
 * A client token carries `cnf.jkt`, the RFC 7638 thumbprint of that key, so a stolen token is
 * useless without the key, which never leaves the client folder. Each instance hands out its own
 * nonces (RFC 9449 section 8: `401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a
 * `DPoP-Nonce` header), so a proof is accepted at one instance, once.
 */

/** The URL scheme segment of token-authenticated requests. */
export const TOKEN_SCHEME = "CCM_Proxy_ServerAuth";

/** JWT `typ` header of each site-issued token type. */
export const TOKEN_TYPES = {
  client: "opencmg-client+jwt",
  bulk: "opencmg-bulk+jwt",
} as const;

export type TokenKind = "client" | "bulk" | "oidc";

/** `typ` of proofs of possession (RFC 9449). */
export const PROOF_TYPE = "dpop+jwt";
/** Algorithms a client key may use for its proofs. */
export const PROOF_ALGS = ["ES256", "EdDSA"] as const;
/** Algorithms of site-issued tokens. */
export const SITE_TOKEN_ALGS = ["ES256", "EdDSA"] as const;
/** Algorithms accepted from a directory's ID tokens (never `none`, never HMAC). */
export const OIDC_TOKEN_ALGS = ["RS256", "PS256", "ES256", "EdDSA"] as const;

/** Longest token accepted (a client token is about 700 bytes; ID tokens are larger, still under this). */
export const MAX_TOKEN_BYTES = 8 * 1024;
/** Longest proof accepted. */
export const MAX_PROOF_BYTES = 2 * 1024;

/** A client token is valid this long (and the gateway refuses one that claims a longer life)... */
export const CLIENT_TOKEN_LIFETIME_MS = 90 * 24 * 3600 * 1000;
/** ...and the client renews it once it is older than this. */
export const CLIENT_TOKEN_RENEW_AFTER_MS = 30 * 24 * 3600 * 1000;

/** Header of the proof. */
export const PROOF_HEADER = "dpop";

/** Bulk registration tokens: valid 3 days unless told otherwise, 7 days at most. */
export const BULK_DEFAULT_MINUTES = 4320;
export const BULK_MAX_MINUTES = 10080;
/**
 * Longest lifetime (`exp` - `iat`) the gateway accepts of a directory's ID token. ID tokens live an
 * hour or so; Microsoft Entra ID lets an administrator set at most one day.
 */
export const ID_TOKEN_MAX_LIFETIME_MS = 24 * 3600 * 1000;

/** Longest lifetime (`exp` - `iat`) accepted per token type: what the issuer gives at most. */
export const TOKEN_MAX_LIFETIME_MS: Record<TokenKind, number> = {
  client: CLIENT_TOKEN_LIFETIME_MS,
  bulk: BULK_MAX_MINUTES * 60_000,
  oidc: ID_TOKEN_MAX_LIFETIME_MS,
};

/** Clock skew allowed between a device, the site and an instance: `iat`/`nbf` this far ahead, `exp` this far behind. */
export const CLOCK_SKEW_SEC = 60;
/** A proof is acceptable this long after its `iat` (RFC 9449 section 11.1: a short window). */
export const PROOF_MAX_AGE_SEC = 300;

/** Response header carrying the instance's nonce (RFC 9449 section 8). */
export const NONCE_HEADER = "dpop-nonce";
/** `error` of the `WWW-Authenticate: DPoP` challenge asking for (another) nonce, and its refusal code. */
export const USE_DPOP_NONCE = "use_dpop_nonce";
