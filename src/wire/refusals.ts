/**
 * The gateway's own refusals as they cross the wire to a client: the reason code (JSON `error`
 * and `x-opencmg-reason`), an optional finer cause (JSON `cause` and `x-opencmg-cause`), and what
 * each means: which check refused the request and what an administrator does about it. The
 * gateway writes the codes; the client agent (`client status`, `client diagnose`) and the
 * connection analyzer (`cmg analyze`) read them through this one table.
 *
 * Nothing here is secret: codes and fixed sentences only. The details (names, dates, URLs) stay
 * in the gateway's log.
 */

/** Response headers of a gateway refusal. */
export const REFUSAL_HEADERS = {
  reason: "x-opencmg-reason",
  cause: "x-opencmg-cause",
} as const;

/** Body of a gateway refusal. */
export interface GatewayRefusalBody {
  error: string;
  message: string;
  cause?: string;
}

/** Finer causes, where one reason code covers situations with different fixes. */
export type RefusalCause =
  /** crl_unavailable: a certificate of the chain names no CRL distribution point. */
  | "no_crl_distribution_point"
  /** crl_unavailable: the CRL could not be downloaded or did not verify. */
  | "crl_unreachable"
  /** weak_key: the RSA key meets the built-in floor but not the CMG's stricter policy. */
  | "rsa_below_policy";

export interface RefusalInfo {
  /** The check that refused, as people name it. */
  check: string;
  /** What to do about it. */
  fix: string;
}

/** Every reason code the gateway answers with on its own (not relayed from a role). */
export const GATEWAY_REFUSALS: Record<string, RefusalInfo> = {
  no_certificate: {
    check: "client certificate presence",
    fix: "give the device a client authentication certificate issued under one of the CMG's trusted roots (client install --cert FILE --key FILE)",
  },
  untrusted_chain: {
    check: "client certificate chain",
    fix: "the certificate does not chain to a trusted root of the CMG through its intermediates: add its root (cmg update NAME --trusted-root FILE) or its issuing CA (--intermediate FILE), or reissue the certificate from a trusted CA",
  },
  expired: {
    check: "client certificate validity",
    fix: "a certificate of the chain has expired: renew the client certificate (or the CA that expired)",
  },
  not_yet_valid: {
    check: "client certificate validity",
    fix: "a certificate of the chain is not valid yet: check the device's and the CA's clocks, or wait until its start date",
  },
  weak_signature: {
    check: "client certificate signature strength",
    fix: "a certificate of the chain is signed with SHA-1 or weaker: reissue it with SHA-256 or better",
  },
  weak_key: {
    check: "client certificate key strength",
    fix: "a certificate of the chain has a weak key (RSA under 2048 bits, or under the CMG's smallest RSA key setting, or an uncommon curve): reissue it with a stronger key",
  },
  wrong_usage: {
    check: "client certificate usage",
    fix: "the certificate does not allow client authentication: reissue it with the Client Authentication (1.3.6.1.5.5.7.3.2) extended key usage",
  },
  revoked: {
    check: "client certificate revocation",
    fix: "the certificate is revoked: issue the device a new client certificate",
  },
  crl_unavailable: {
    check: "client certificate revocation",
    fix: "revocation checking is on and no CRL could be used: publish the CRL where the certificates' CRL distribution points say and let the gateway reach it, or turn the check off (cmg update NAME --no-crl-check)",
  },
  no_connection_point: {
    check: "tunnel to the site (connection point)",
    fix: "no connection point is connected to this CMG instance: start the connection point role (connection-point serve) and check that it reaches the instance's tunnel port",
  },
  worker_without_tunnel: {
    check: "tunnel to the site at this worker process (connection point)",
    fix: "the gateway worker process that took the connection has no tunnel: its connection points have not dialled its tunnel port (the instance's tunnel port + 16 per worker), or are of an earlier version that dials worker 0 only: open every worker's tunnel port to the connection points and upgrade them, or run the instance with --workers 1; the client retries on a new connection meanwhile",
  },
  not_configured: {
    check: "gateway settings",
    fix: "no connection point has configured this instance yet: start the connection point role and wait for it to connect",
  },
  role_not_allowed: {
    check: "role allows CMG traffic",
    fix: "the management point or software update point does not allow CMG traffic: role set FQDN ROLE --allow-cmg-traffic, or use another one",
  },
  unknown_role: {
    check: "role in the CMG's URL map",
    fix: "the URL names a role this CMG does not serve (removed, or another site's): make a location request for current management points, or reinstall the client with a current CMG URL",
  },
  bad_path: {
    check: "request path",
    fix: "the request path would leave the role's root (dot segments, encoded slashes or backslashes): fix the management point URL the client uses",
  },
  not_found: {
    check: "gateway endpoint",
    fix: "the URL is not a CMG endpoint (/CCM_Proxy_MutualAuth/ROLE_ID/...): fix the management point URL the client uses",
  },
  body_too_large: {
    check: "request body size",
    fix: "the request body is over the role's limit: send smaller requests (fewer status messages per upload)",
  },
  headers_too_large: {
    check: "request header size",
    fix: "the request's header fields are over the limit: remove oversized headers",
  },
  http_version: {
    check: "HTTP version",
    fix: "use HTTP/1.1 or HTTP/2",
  },
  missing_host: {
    check: "HTTP Host header",
    fix: "an HTTP/1.1 request needs a Host header",
  },
  tunnel_failed: {
    check: "tunnel to the site (connection point)",
    fix: "the tunnel to the site broke while relaying: see SMS_Cloud_ProxyConnector.log on the connection point and CMGHttpHandler.log at the gateway",
  },
  client_busy: {
    check: "requests in progress per client",
    fix: "this device already has as many requests in progress at this gateway as one device may (maxRequestsPerClientIdentity): retry after the others end; a device that keeps hitting it is misbehaving or its certificate or token is used elsewhere",
  },
  address_busy: {
    check: "requests in progress per address",
    fix: "the devices behind this source address already have as many requests in progress at this gateway as one address may (maxRequestsPerAddress): retry later; raise the limit for a NAT with very many devices",
  },
  upstream_timeout: {
    check: "site answer time",
    fix: "the management point did not answer in time through the tunnel: check the management point and the connection point's route to it",
  },
  // Site-issued tokens (/CCM_Proxy_ServerAuth/). expired, not_yet_valid and not_configured are
  // shared with the certificate path above.
  token_in_query: { check: "token placement", fix: "tokens go in the Authorization header, never in the URL: fix the client or tool that sends it" },
  no_token: { check: "token presence", fix: "install the client with a bulk registration token or a directory ID token (client install --token, --id-token)" },
  token_too_large: { check: "token size", fix: "the token is over the size limit: install the client again to get a client token from the site" },
  malformed_token: { check: "token format", fix: "the token is not a signed JWT: install the client again with a token the site issued" },
  alg_not_allowed: { check: "token algorithm", fix: "the token's signature algorithm is not accepted: use a token the site or the trusted directory issued" },
  untrusted_issuer: { check: "token issuer", fix: "the token's issuer is neither this site nor its trusted directory: check opencmg settings get oidc-issuer, or use a site token" },
  unknown_key: { check: "token signing key", fix: "the token names a signing key the CMG does not know (rotated twice since it was issued): renew the client token (client renew-token) or install again" },
  bad_signature: { check: "token signature", fix: "the token's signature does not verify: install the client again with a token the site issued" },
  wrong_audience: { check: "token audience", fix: "the token is for another CMG or site: install the client again through this site" },
  wrong_token_type: { check: "token type", fix: "not a client, bulk registration or directory ID token: install the client again" },
  token_not_for_path: { check: "token use", fix: "bulk registration and directory ID tokens only register a device: let the client register first" },
  blocked: { check: "block list", fix: "an administrator blocked this client: opencmg site clients unblock ID if that was a mistake" },
  issued_in_future: { check: "token issue time", fix: "the token says it was issued in the future (iat beyond the allowed clock skew): check the site's clock, or the token was not made by the site's own issuance" },
  lifetime_too_long: { check: "token lifetime", fix: "the token claims a longer life (exp - iat) than its type is ever issued for (client 90 days, bulk 7 days, directory ID token 1 day): use a token the site or the directory issued" },
  bound_token_as_bearer: { check: "token scheme", fix: "a client token is bound to the device's key: send it as Authorization: DPoP with a proof, never Bearer (update the client agent or the tool that sends it)" },
  proof_required: { check: "proof of possession", fix: "the request carries no DPoP proof: update the client agent" },
  bad_proof: { check: "proof of possession", fix: "the DPoP proof does not match the request, the token or the client's key: install the client again if its key changed" },
  proof_wrong_url: { check: "proof of possession URL", fix: "the proof's htu must be the request's https URL at a name of this CMG (its service name or the instance's client URL): use the CMG URL the location answer gives" },
  proof_wrong_method: { check: "proof of possession method", fix: "the proof's htm must be the request's method: update the client agent" },
  proof_not_fresh: { check: "proof of possession time", fix: "the proof's iat is not within the last 5 minutes (or is ahead of the gateway's clock): check the device's clock" },
  use_dpop_nonce: { check: "proof of possession nonce", fix: "the proof must carry this instance's nonce (sent in the DPoP-Nonce header): the client agent retries with it on its own; if this stays, update the client agent" },
  proof_replayed: { check: "proof of possession replay", fix: "the proof was used before: every request needs a new proof; a device that never resends one may be copied by someone else" },
  too_many_proofs: { check: "proof of possession replay cache", fix: "this client sent more requests in a few minutes than the instance remembers for one client: the client is looping, or its token is used elsewhere; it can go on in a few minutes" },
  proof_cache_full: { check: "proof of possession replay cache", fix: "the instance remembers as many proofs as it can hold (a flood of requests): the client goes on in a few minutes; see CMGHttpHandler.log at the gateway and add instances if real devices are that many" },
  internal_error: {
    check: "gateway",
    fix: "the gateway failed handling the request: see CMGHttpHandler.log at the gateway",
  },
};

/**
 * Refusals of the site's management point about who may register (relayed unchanged through the
 * CMG): what each means and what to do. The management point writes the codes (wire/mp.ts MpReason).
 */
export const REGISTRATION_REFUSALS: Record<string, RefusalInfo> = {
  id_token_replayed: {
    check: "directory ID token use",
    fix: "a directory ID token registers one device, once: sign the device in at the directory again for a new ID token (if the device did not use this one, it was copied: see MP_RegistrationManager.log)",
  },
  key_change_unproven: {
    check: "device key change",
    fix: "the client is bound to another key: send a proof made by the old key (keyChangeProof), or have an administrator approve the new key (opencmg site clients approve-key CLIENT_ID -- KEY_THUMBPRINT; the -- keeps a thumbprint that starts with - from reading as an option) and register again",
  },
  invalid_key_proof: { check: "device key proof", fix: "the token key or key change proof does not verify, is stale, or names another client or key: make a new one with the right key" },
  bulk_token_used: { check: "bulk registration token uses", fix: "the bulk registration token registered as many devices as its --max-uses allows: create another (opencmg token create-bulk)" },
  bulk_token_revoked: { check: "bulk registration token", fix: "the bulk registration token was revoked: create another (opencmg token create-bulk)" },
  bulk_token_expired: { check: "bulk registration token", fix: "the bulk registration token expired (at most 7 days): create another (opencmg token create-bulk)" },
  bulk_token_unknown: { check: "bulk registration token", fix: "the site does not know this bulk registration token: use one that opencmg token create-bulk printed at this site" },
};

/** What a finer cause changes about the fix. */
export const CAUSE_FIXES: Record<RefusalCause, string> = {
  no_crl_distribution_point:
    "revocation checking is on but a certificate of the chain names no CRL distribution point: reissue it from a CA that writes one, or turn the check off (cmg update NAME --no-crl-check)",
  crl_unreachable:
    "revocation checking is on and the CRL could not be downloaded or did not verify: publish it at the CRL distribution point and let the gateway reach it, or turn the check off (cmg update NAME --no-crl-check)",
  rsa_below_policy:
    "the RSA key is shorter than the CMG's smallest RSA key setting: reissue the certificate with a longer key, or lower the setting (cmg update NAME --min-rsa-bits N, at least 2048)",
};

/** A refusal as a client or the analyzer explains it. */
export interface RefusalExplained {
  reason: string;
  cause?: string;
  check: string;
  fix: string;
}

/**
 * The check and the fix for a reason code (and cause), also for a code this version does not
 * know (a newer gateway).
 *
 * @example
 * explainRefusal("crl_unavailable", "no_crl_distribution_point").fix // "revocation checking is on but ..."
 */
export function explainRefusal(reason: string, cause?: string): RefusalExplained {
  const info = GATEWAY_REFUSALS[reason] ?? REGISTRATION_REFUSALS[reason];
  const causeFix = cause !== undefined ? CAUSE_FIXES[cause as RefusalCause] : undefined;
  return {
    reason,
    ...(cause !== undefined ? { cause } : {}),
    check: info?.check ?? `gateway check "${reason}"`,
    fix: causeFix ?? info?.fix ?? "see CMGHttpHandler.log at the gateway for this reason code",
  };
}

/** Reason codes that only a failed client certificate check gives. */
export const CERTIFICATE_REASONS: ReadonlySet<string> = new Set([
  "no_certificate",
  "untrusted_chain",
  "expired",
  "not_yet_valid",
  "weak_signature",
  "weak_key",
  "wrong_usage",
  "revoked",
  "crl_unavailable",
]);
