/**
 * The path a device asks for under a role: `/<scheme>/<roleId><path>` reaches `<internal URL><path>`.
 * It must stay under the role's internal URL, whatever the server behind it makes of it: a server
 * that normalizes (nginx, IIS) would otherwise turn `/<roleId>/../admin` into `/admin`, a path of
 * the site the CMG was never meant to reach. Both ends check (the gateway before routing, the
 * connection point before it forwards), with this one function.
 *
 * The path is normalized as RFC 3986 section 5.2.4 does (remove_dot_segments), with `%2e` taken as
 * a dot for that check, and refused when:
 *   - a `..` would climb above the role's root (RFC 3986 would clamp it at the root; here the
 *     intent is plain, so the request is refused instead of served from somewhere else);
 *   - it carries an encoded `/` (%2F), `\` (%5C) or NUL (%00), or one of them (or a dot) encoded
 *     twice (%252F ...): servers disagree on whether such a byte separates segments;
 *   - it holds a backslash (IIS takes it for `/`) or an empty segment (`//`: some servers merge
 *     slashes, others do not, so the two ends could see different paths);
 *   - a `%` is not followed by two hex digits.
 */

export type RolePathCheck =
  | { ok: true; /** The normalized path (no dot segments; other escapes kept as sent). */ path: string }
  | { ok: false; /** Why, in words, for the answer and the log. */ detail: string };

const ENCODED_FORBIDDEN = /%(?:2f|5c|00)/i;
const DOUBLE_ENCODED = /%25(?:2e|2f|5c|00)/i;
const BAD_ESCAPE = /%(?![0-9a-f]{2})/i;
const ENCODED_DOT = /%2e/gi;
/** What the full check would change or refuse: an escape, a backslash, an empty segment, a dot segment. */
const NEEDS_FULL_CHECK = /[%\\]|\/\/|\/\.\.?(?:\/|$)/;

/**
 * Checks and normalizes the path (no query) after `/<scheme>/<roleId>`; "" stands for "/".
 *
 * @example
 * checkRolePath("/SMS_MP/./.sms_aut")    // { ok: true, path: "/SMS_MP/.sms_aut" }
 * checkRolePath("/SMS_MP/../../admin")   // { ok: false, detail: "the path climbs above the role's root (..)" }
 */
export function checkRolePath(path: string): RolePathCheck {
  if (path === "") return { ok: true, path: "/" };
  if (!path.startsWith("/")) return { ok: false, detail: 'the path must start with "/"' };
  // Nearly every request: nothing to normalize or refuse, the path is its own normal form.
  if (!NEEDS_FULL_CHECK.test(path)) return { ok: true, path };
  if (path.includes("\\")) return { ok: false, detail: "the path holds a backslash" };
  if (BAD_ESCAPE.test(path)) return { ok: false, detail: "the path holds a % that is not followed by two hex digits" };
  if (ENCODED_FORBIDDEN.test(path)) return { ok: false, detail: "the path holds an encoded /, \\ or NUL (%2F, %5C, %00)" };
  if (DOUBLE_ENCODED.test(path)) return { ok: false, detail: "the path holds a doubly encoded dot, /, \\ or NUL (%252E, %252F, %255C, %2500)" };
  const segments = path.slice(1).split("/");
  const out: string[] = [];
  for (const [i, segment] of segments.entries()) {
    const last = i === segments.length - 1;
    const plain = segment.replace(ENCODED_DOT, ".");
    if (segment === "" && !last) return { ok: false, detail: "the path holds an empty segment (//)" };
    if (plain === ".") {
      // "/a/." is "/a/": the directory itself.
      if (last) out.push("");
      continue;
    }
    if (plain === "..") {
      if (out.length === 0 || (out.length === 1 && out[0] === "")) return { ok: false, detail: "the path climbs above the role's root (..)" };
      out.pop();
      if (last) out.push("");
      continue;
    }
    out.push(segment);
  }
  return { ok: true, path: "/" + out.join("/") };
}

/**
 * True when `joined` (the role's internal URL path followed by the request path, as the server
 * behind it will read it after its own normalization) is still under `prefix` (that path without
 * trailing slashes; "" for the root).
 *
 * @example
 * staysUnder("/sup", "/sup/x")      // true
 * staysUnder("/sup", "/supx")       // false
 */
export function staysUnder(prefix: string, joined: string): boolean {
  let normalized: string;
  try {
    // The WHATWG URL parser removes dot segments (%2e included) and reads "\" as "/" for http(s),
    // as a normalizing server would.
    normalized = new URL("http://role.invalid" + (joined.startsWith("/") ? joined : "/" + joined)).pathname;
  } catch {
    return false;
  }
  if (prefix === "") return normalized.startsWith("/");
  return normalized === prefix || normalized.startsWith(prefix + "/");
}
