/**
 * The pure rules of changing a CMG after creation (SPEC.md section 3, "Modify, replace, delete"):
 * what can never change, how trusted roots and intermediates are added, removed or replaced, and
 * which changes would lock clients out. No database, no clock: the service hands in what it read.
 */
import { X509Certificate } from "node:crypto";
import { ConflictError, ValidationError } from "../../errors.ts";
import { thumbprintOf } from "../../pki/cert.ts";

/** Settings fixed at creation, with the words an administrator knows them by. */
export const IMMUTABLE = {
  serviceFqdn: "the service FQDN",
  serviceName: "the service name",
  cloud: "the cloud environment",
  provider: "the deployment provider",
  region: "the region",
  resourceGroup: "the resource group",
} as const;
export type ImmutableField = keyof typeof IMMUTABLE;

/**
 * Refuses a change of a setting fixed at creation (a value equal to the current one is no change).
 *
 * @example
 * refuseImmutable({ region: "westeurope" }, { region: "local", ... }); // ValidationError: ... create a new CMG
 */
export function refuseImmutable(input: Partial<Record<ImmutableField, unknown>>, current: Record<ImmutableField, string>): void {
  for (const field of Object.keys(IMMUTABLE) as ImmutableField[]) {
    const v = input[field];
    if (v === undefined) continue;
    const same = typeof v === "string" && (field === "serviceFqdn" || field === "serviceName" ? v.toLowerCase() === current[field].toLowerCase() : v === current[field]);
    if (!same) throw new ValidationError(field, `cannot change after creation (${IMMUTABLE[field]} is ${current[field]}): create a new CMG with the new setting, move clients to it, then delete this one`);
  }
}

/** How one CA list changes: replaced whole, or certificates added and removed (by thumbprint). */
export interface CaListChange {
  replace?: string[] | undefined;
  add?: string[] | undefined;
  remove?: string[] | undefined;
}

/** Thumbprint (SHA-1, uppercase hex) of a PEM certificate. */
export function thumbprintOfPem(pem: string): string {
  return thumbprintOf(new X509Certificate(pem).raw);
}

/**
 * The list after `change`. Replacing needs `replaceAllowed` (the CLI's --replace-certificates):
 * giving the whole list by mistake would drop the others without a word. Adding one already there
 * or removing one that is not there is refused, and so is a list over `max`.
 *
 * @example
 * const roots = changeCaList("trustedRoots", current, { add: [root2Pem] }, 2, false);
 */
export function changeCaList(field: string, current: readonly string[], change: CaListChange, max: number, replaceAllowed: boolean, flags: { add: string; remove: string; replace: string }): string[] {
  const adding = change.add ?? [];
  const removing = (change.remove ?? []).map((t) => t.replace(/[\s:]/g, "").toUpperCase());
  if (change.replace !== undefined) {
    if (!replaceAllowed)
      throw new ValidationError(field, `${flags.replace} replaces the whole list (now ${current.length} certificate(s)); to keep the others use ${flags.add} FILE / ${flags.remove} THUMBPRINT, or say --replace-certificates to replace it`);
    if (adding.length > 0 || removing.length > 0) throw new ValidationError(field, `give either ${flags.replace} (replace) or ${flags.add}/${flags.remove}, not both`);
    if (change.replace.length > max) throw new ValidationError(field, `at most ${max} certificates (got ${change.replace.length})`);
    return [...change.replace];
  }
  const next = [...current];
  for (const t of removing) {
    if (!/^[0-9A-F]{40}$/.test(t)) throw new ValidationError(field, `${flags.remove} takes a SHA-1 thumbprint (40 hex digits); got ${t || "nothing"}`);
    const i = next.findIndex((p) => thumbprintOfPem(p) === t);
    if (i < 0) throw new ValidationError(field, `no certificate with thumbprint ${t} is in the list (${current.map(thumbprintOfPem).join(", ") || "empty"})`);
    next.splice(i, 1);
  }
  for (const pem of adding) {
    const t = thumbprintOfPem(pem);
    if (next.some((p) => thumbprintOfPem(p) === t)) throw new ValidationError(field, `the certificate ${t} is already in the list`);
    next.push(pem);
  }
  if (next.length > max) throw new ValidationError(field, `at most ${max} certificates: there would be ${next.length}; remove one with ${flags.remove} THUMBPRINT`);
  return next;
}

/** True when `child` is signed by `issuer` (names and signature). */
function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * The intermediates that chain to none of the roots (directly or through other intermediates), by
 * subject and thumbprint. A client whose certificate an orphan intermediate signed gets
 * `403 untrusted_chain`.
 */
export function orphanIntermediates(roots: readonly string[], intermediates: readonly string[]): string[] {
  const anchors = roots.map((p) => new X509Certificate(p));
  const pending = intermediates.map((p) => new X509Certificate(p));
  const reached: X509Certificate[] = [];
  for (let grew = true; grew; ) {
    grew = false;
    for (const c of [...pending]) {
      if ([...anchors, ...reached].some((a) => issuedBy(c, a))) {
        reached.push(c);
        pending.splice(pending.indexOf(c), 1);
        grew = true;
      }
    }
  }
  return pending.map((c) => `${c.subject.replace(/\n/g, ", ")} (${thumbprintOf(c.raw)})`);
}

/** A client that registered through a CMG, with the root its certificate chained to (null: not recorded). */
export interface InternetClient {
  name: string;
  rootThumbprint: string | null;
}

/**
 * Why a new trust list would lock clients out, one sentence per reason; empty when it would not.
 * Clients registered before the root was recorded count as locked out when any root is removed:
 * their root is unknown, and guessing wrong would cut them off.
 */
export function lockouts(before: { roots: readonly string[] }, after: { roots: readonly string[]; intermediates: readonly string[] }, clients: readonly InternetClient[]): string[] {
  const out: string[] = [];
  const orphans = orphanIntermediates(after.roots, after.intermediates);
  if (orphans.length > 0) out.push(`the intermediate(s) ${orphans.join("; ")} would chain to no trusted root, so every client whose certificate they issued would get 403 untrusted_chain`);
  const kept = new Set(after.roots.map(thumbprintOfPem));
  const removed = before.roots.map(thumbprintOfPem).filter((t) => !kept.has(t));
  if (removed.length === 0) return out;
  const names = (list: readonly InternetClient[]): string => list.slice(0, 5).map((c) => c.name).join(", ") + (list.length > 5 ? ` and ${list.length - 5} more` : "");
  for (const t of removed) {
    const hit = clients.filter((c) => c.rootThumbprint?.toUpperCase() === t);
    if (hit.length > 0) out.push(`${hit.length} client(s) registered through the internet chain to the root ${t} that would no longer be trusted: ${names(hit)}`);
  }
  const unknown = clients.filter((c) => c.rootThumbprint === null);
  if (unknown.length > 0) out.push(`${unknown.length} client(s) registered through the internet before their root was recorded, and may chain to the removed root: ${names(unknown)}`);
  return out;
}

/** Throws when `problems` is not empty and the change was not forced. */
export function refuseLockout(field: string, problems: readonly string[], force: boolean): void {
  if (problems.length === 0 || force) return;
  throw new ConflictError(field, `refused: ${problems.join("; ")}. Fix the list, or repeat with --force to lock them out anyway`);
}
