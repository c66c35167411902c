/**
 * Paths under `/CCM_Proxy_MutualAuth/<roleId>` that try to climb out of the role (dot segments,
 * plain and encoded), and the look-alikes that servers read differently (encoded separators,
 * backslashes, empty segments, NUL, double encoding, broken escapes). None may reach anything but
 * the role's root.
 */
export const TRAVERSAL_MATRIX = [
  "/../forbidden/x",
  "/../admin",
  "/..",
  "/a/../../admin",
  "/./../admin",
  "/%2e%2e/forbidden/x",
  "/%2E%2E/admin",
  "/.%2e/admin",
  "/%2e./admin",
  "/a/%2e%2e/%2e%2e/admin",
  "/..%2fforbidden/x",
  "/..%2Fadmin",
  "/%2e%2e%2fadmin",
  "/..%5cadmin",
  "/..%5Cforbidden/x",
  "/..\\admin",
  "/a\\..\\..\\admin",
  "//admin",
  "/a//../../admin",
  "/x%00/../../admin",
  "/%00",
  "/%252e%252e/admin",
  "/%252fadmin",
  "/%zz",
  "/a%2",
] as const;
