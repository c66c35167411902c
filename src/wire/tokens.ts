/**
 * Site-issued tokens on the wire: what a client sends on `/CCM_Proxy_ServerAuth/<roleId>/...`,
 * and the names both ends and the management point agree on.
 *
 *   Authorization: DPoP <token>     the site's client token, a bulk registration token, or a
 *                                   directory (OpenID Connect) ID token at registration
 *   DPoP: <proof>                   RFC 9449 proof of possession: a JWT signed by the key the
 *                                   client generated (public key in its header), naming the
 *                                   method (htm), URL (htu) and token hash (ath); fresh per request
 *
 * A client token carries `cnf.jkt`, the RFC 7638 thumbprint of that key, so a stolen token is
 * useless without the key, which never leaves the client folder.
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

/** A client token is valid this long... */
export const CLIENT_TOKEN_LIFETIME_MS = 90 * 24 * 3600 * 1000;
/** ...and the client renews it once it is older than this. */
export const CLIENT_TOKEN_RENEW_AFTER_MS = 30 * 24 * 3600 * 1000;

/** Header of the proof. */
export const PROOF_HEADER = "dpop";
