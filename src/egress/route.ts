/** How an outbound connection leaves the server: directly, or through its proxy. */
export type EgressRoute =
  | { mode: "direct" }
  | { mode: "proxy"; host: string; port: number; credentials?: { username: string; password: string } };

/** `host:port` of the proxy, with brackets around an IPv6 address. */
export function proxyAddress(route: Extract<EgressRoute, { mode: "proxy" }>): string {
  return `${hostForUrl(route.host)}:${route.port}`;
}

/** How the route reads in logs and messages: never with the password. */
export function describeRoute(route: EgressRoute): string {
  if (route.mode === "direct") return "direct";
  const who = route.credentials ? ` as ${route.credentials.username}` : "";
  return `proxy ${proxyAddress(route)}${who}`;
}

export function hostForUrl(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
