/**
 * The rules every setting must meet where it enters (API, CLI, config file). Each failure becomes a
 * ValidationError naming the field and the rule.
 */
import { isIP } from "node:net";
import { z } from "zod";
import { issueProblems, ValidationError } from "../errors.ts";

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** True for a host name or FQDN (letters, digits, hyphens; dot-separated labels of 1-63). */
export function isHostName(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  const t = s.endsWith(".") ? s.slice(0, -1) : s;
  return t.split(".").every((l) => LABEL.test(l));
}

export const siteCode = z
  .string()
  .regex(/^[A-Za-z0-9]{3}$/, "must be exactly 3 letters or digits")
  .transform((s) => s.toUpperCase());

export const fqdn = z
  .string()
  .trim()
  .refine((s) => !s.includes("://") && !/\s/.test(s), "must be a host name or FQDN, not a URL and without spaces")
  .refine(isHostName, "must be a host name or FQDN (letters, digits and hyphens in dot-separated labels)")
  .transform((s) => s.toLowerCase().replace(/\.$/, ""));

export const proxyHost = z
  .string()
  .refine((s) => s.trim() === s && !/\s/.test(s), "must not contain spaces")
  .refine((s) => !s.includes("://") && !s.includes("/"), "must be a host name or FQDN, not a URL")
  .refine((s) => !/:\d+$/.test(s) || isIP(s) === 6, "must not include a port: give the port separately")
  .refine((s) => isHostName(s) || isIP(s) !== 0, "must be a host name, FQDN or IP address")
  .transform((s) => s.toLowerCase());

/** Ports arrive as text from the CLI: "abc" must be refused, not turned into NaN. */
export const port = z.preprocess(
  (v) => (typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z.number({ error: "must be a whole number from 1 to 65535" }).int("must be a whole number from 1 to 65535").min(1, "must be from 1 to 65535").max(65535, "must be from 1 to 65535"),
);

/** `DOMAIN\user`, `user@domain` or a plain name, as the platform names accounts. */
export const accountName = z
  .string()
  .min(1, "must not be empty")
  .max(256, "must be at most 256 characters")
  .refine((s) => !/[\x00-\x1f]/.test(s), "must not contain control characters")
  .refine((s) => s.trim() === s, "must not start or end with spaces");

export const httpUrl = z
  .string()
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "";
    } catch {
      return false;
    }
  }, "must be an http:// or https:// URL");

/**
 * Parses `value` with `schema`; a failure becomes a ValidationError for `field` (or the field inside
 * it), every issue of the value among its problems.
 */
export function check<T extends z.ZodType>(field: string, schema: T, value: unknown): z.output<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const [first, ...more] = r.error.issues.flatMap((i) => issueProblems(i, [field]));
  const sub = first?.field ?? field;
  const rule = first?.rule ?? "is invalid";
  // Quote what was given, but never more than a glance: the value may be a stranger's megabyte.
  const got = JSON.stringify(value) ?? String(value);
  throw new ValidationError(sub, rule, `${sub}: ${rule} (got ${got.length > 80 ? `${got.slice(0, 80)}... (${got.length} characters)` : got})`, more);
}

/** Validates `value` against a schema; the first issue becomes a ValidationError naming its field. */
export { checkObject } from "../errors.ts";
