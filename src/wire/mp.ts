/**
 * What crosses the wire between a client agent and a management point: paths, request and answer
 * shapes, limits. The management point and the client both import this file.
 *
 * Every path is relative to the MP's URL, so the same request works directly on the intranet
 * (`https://mp01.contoso.com/SMS_MP/v1/policy`) and through a CMG
 * (`https://cmg.contoso.com/CCM_Proxy_MutualAuth/72057594037927939/SMS_MP/v1/policy`).
 */
import { z } from "zod";
import { keyProofText } from "./key-proof.ts";

/** How a client last reached a management point: directly (intranet) or through a CMG (internet). */
export type ConnectionType = "intranet" | "internet";

/** Client settings, as the site's default client settings hold them and a policy answer carries them. */
export interface ClientSettings {
  /** How often a client makes a location request (documents: every 24 hours). */
  locationIntervalMinutes: number;
  /** How often a client fetches policy. */
  policyIntervalMinutes: number;
  /** Clients receive CMG locations ("use CMG" on by default; off gives them no CMG). */
  useCmg: boolean;
  /** The documents' ClientAlwaysOnInternet = 1: use the CMG wherever the client is. */
  alwaysOnInternet: boolean;
  /**
   * The site's "Use PKI client certificate (client authentication capability) when available"
   * (absent from an older management point: on).
   */
  usePkiClientCertificate?: boolean;
  /** The site's "Clients check the certificate revocation list (CRL) for site systems" (absent: on). */
  clientsCheckCrl?: boolean;
}

export const DEFAULT_CLIENT_SETTINGS: ClientSettings = { locationIntervalMinutes: 24 * 60, policyIntervalMinutes: 60, useCmg: true, alwaysOnInternet: false };

export const MP_PATHS = {
  /** GET: does an MP answer here? (the client's intranet check; no identity needed) */
  ping: "/SMS_MP/v1/ping",
  /** POST RegisterRequest -> RegisterAnswer */
  register: "/SMS_MP/v1/register",
  /** GET -> LocationAnswer: the management point candidates */
  location: "/SMS_MP/v1/location",
  /** GET -> PolicyAnswer: the client settings */
  policy: "/SMS_MP/v1/policy",
  /** POST StatusUpload -> StatusUploadAnswer */
  status: "/SMS_MP/v1/status",
  /** POST (client token) -> ClientTokenAnswer: a renewed client token, bound to the same key */
  token: "/SMS_MP/v1/token",
} as const;

/** Largest request body an MP accepts (a full status batch of short messages fits many times). */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** Most messages in one status upload. */
export const MAX_STATUS_BATCH = 500;
/** Message types a client may upload. Status messages only for now; inventory would be another. */
export const UPLOAD_TYPES = ["status"] as const;

/** Reason codes of MP refusals, in the answer's `error`. */
export type MpReason =
  | "unknown_endpoint"
  | "method_not_allowed"
  | "unsupported_media_type"
  | "malformed_json"
  | "body_too_large"
  | "invalid_request"
  | "unknown_message_type"
  | "forged_identity"
  | "untrusted_certificate"
  | "certificate_not_seen"
  | "client_identity_required"
  | "not_registered"
  | "awaiting_approval"
  | "too_many_registrations"
  | "client_blocked"
  | "token_key_mismatch"
  | "registration_token_only"
  | "bulk_token_unknown"
  | "bulk_token_used"
  | "bulk_token_revoked"
  | "bulk_token_expired"
  | "id_token_replayed"
  | "key_change_unproven"
  | "invalid_key_proof"
  /** A status message names a site component (SMS_*) or uses a site message ID. */
  | "site_component"
  | "site_message_id"
  /** The client is over its status message limits (429 with Retry-After: send them again then). */
  | "too_many_status_messages"
  /** Registration: another client has the name, or it is a site system server's. */
  | "name_taken"
  | "reserved_name"
  /** A joined management point: the site did not sign the client token (the server's role was removed, the site is unreachable). */
  | "token_issuer_unavailable"
  | "internal_error";

/** Body of every refusal. */
export interface MpErrorAnswer {
  error: MpReason;
  message: string;
}

export const registerRequest = z.object({
  /** Computer name. */
  name: z.string().max(253, "must be at most 253 characters"),
  /**
   * Thumbprint of the certificate the client registers with. Must be the certificate the MP saw
   * in TLS (or that the connection point relayed); a registration for any other is refused.
   */
  thumbprint: z.string().regex(/^[0-9A-Fa-f]{40}$/, "must be a SHA-1 thumbprint (40 hex digits)").optional(),
  /** Installed with `--always-internet` (CCMALWAYSINF=1). */
  alwaysInternet: z.boolean().optional(),
  /**
   * A certificate or request-token registration: proof of the key the client token is to be bound
   * to (wire/key-proof.ts, purpose "bind"). With it the answer carries a client token.
   */
  tokenKeyProof: keyProofText.optional(),
  /** Replacing the bound key: a proof made by the OLD key naming the new one (purpose "replace"). */
  keyChangeProof: keyProofText.optional(),
});
export type RegisterRequest = z.infer<typeof registerRequest>;

export interface RegisterAnswer {
  clientId: string;
  approved: boolean;
  /** Only for a registration without certificate: what the client authenticates with from now on. */
  token?: string;
  connectionType: ConnectionType;
  /**
   * The client's own token, bound to the key it proved: at every registration with a bulk
   * registration token or a directory ID token, and at a certificate or approved request-token
   * registration that carried a `tokenKeyProof`.
   */
  clientToken?: string;
  clientTokenExpiresAt?: string;
  /** A certificate or request-token registration whose key was not bound (the key change was not proven): why. */
  clientTokenRefused?: { error: MpReason; message: string };
}

export interface ClientTokenAnswer {
  clientToken: string;
  expiresAt: string;
}

export type MpType = "Intranet" | "Internet";

/** One management point candidate (the documents' SMS_ActiveMPCandidate). */
export interface MpCandidate {
  type: MpType;
  url: string;
  /** The MP's server, for intranet candidates. */
  fqdn?: string;
  /** The CMG, for internet candidates. */
  cmg?: string;
}

export interface LocationAnswer {
  siteCode: string;
  mps: MpCandidate[];
  locationIntervalMinutes: number;
}

export interface PolicyAnswer {
  clientId: string;
  settings: ClientSettings;
}

const iso = z.string().datetime({ offset: true, error: "must be an ISO-8601 time" });

export const statusItem = z.object({
  type: z.literal("status"),
  /** Unique per message and client: the key that makes a retried upload harmless. */
  id: z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, "must be 1-128 letters, digits, dots, colons, hyphens or underscores"),
  /** The status message ID (e.g. 10002). */
  messageId: z.number().int().min(0, "must be 0 or more").max(2 ** 31 - 1, "must fit in 32 bits"),
  severity: z.enum(["informational", "warning", "error"], { error: "must be informational, warning or error" }),
  component: z.string().min(1, "must not be empty").max(128, "must be at most 128 characters"),
  text: z.string().max(8192, "must be at most 8192 characters"),
  time: iso,
  properties: z.record(z.string(), z.unknown()).optional(),
});
export type StatusItem = z.infer<typeof statusItem>;

export const statusUpload = z.object({
  messages: z.array(z.unknown()).min(1, "must hold at least one message").max(MAX_STATUS_BATCH, `must hold at most ${MAX_STATUS_BATCH} messages`),
});

export interface StatusUploadAnswer {
  /** IDs the site now holds (new or seen before): the client may forget them. */
  acknowledged: string[];
  /** How many of them the site already had (a retried upload). */
  duplicates: number;
}
