/** Management point URLs as the agent takes them, and how its errors and candidates read in logs. */
import { NetError, ValidationError } from "../errors.ts";
import type { MpCandidate } from "../wire/mp.ts";

/** An MP URL through a CMG (`.../CCM_Proxy_MutualAuth/<roleId>`) is an internet one. */
export function mpTypeOf(url: string): MpCandidate["type"] {
  return /\/CCM_Proxy_[A-Za-z]+\//i.test(url + "/") ? "Internet" : "Intranet";
}

/** An https:// URL without trailing slashes, or a ValidationError naming `field`. */
export function checkHttpsUrl(field: string, value: string): string {
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    u = undefined;
  }
  if (!u || u.protocol !== "https:" || !u.hostname) throw new ValidationError(field, "must be an https:// URL", `${field}: must be an https:// URL (got ${JSON.stringify(value)})`);
  return value.replace(/\/+$/, "");
}

/** An http:// or https:// URL, or a ValidationError naming `field`. */
export function checkUrl(field: string, value: string): string {
  try {
    const u = new URL(value);
    if (u.protocol === "http:" || u.protocol === "https:") return value;
  } catch {
    // below
  }
  throw new ValidationError(field, "must be an http:// or https:// URL", `${field}: must be an http:// or https:// URL (got ${JSON.stringify(value)})`);
}

/** An error for logs and the CLI; network failures carry the platform's code (12002, 12029, ...). */
export function errorText(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return e instanceof NetError && !m.includes(String(e.code)) ? `${m} (error ${e.code})` : m;
}

export function describeCandidates(mps: MpCandidate[]): string {
  if (mps.length === 0) return "no management point";
  return mps.map((m) => `${m.type} ${m.url}`).join(", ");
}
