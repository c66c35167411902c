/** The dns and http stages' probes: name resolution, and a HEAD request over a connection or through the proxy. */
import { request as httpRequest } from "node:http";
import { isIP, type LookupFunction, type Socket } from "node:net";
import type { Egress } from "../egress/egress.ts";
import { hostForUrl } from "../egress/route.ts";
import type { CheckTarget } from "./check-targets.ts";

const USER_AGENT = "OpenCMG endpoint check";

/** The address `host` resolves to (an IP address as it is). */
export function resolve(lookup: LookupFunction, host: string): Promise<string> {
  if (isIP(host)) return Promise.resolve(host);
  return new Promise((ok, fail) =>
    lookup(host, { all: false }, (err, address) => {
      if (err) fail(err);
      else ok(typeof address === "string" ? address : (address as unknown as { address: string }[])[0]!.address);
    }),
  );
}

/** HEAD over an open connection (plain or TLS); resolves with the status. */
export function headOver(socket: Socket, t: CheckTarget, signal: AbortSignal): Promise<number> {
  return new Promise((ok, fail) => {
    const req = httpRequest({
      createConnection: () => socket,
      method: "HEAD",
      host: t.host,
      port: t.port,
      path: t.path,
      headers: { host: hostHeader(t), "user-agent": USER_AGENT, connection: "close" },
      signal,
    });
    req.once("response", (res) => {
      res.resume();
      ok(res.statusCode ?? 0);
    });
    req.once("error", (e) => fail(signal.aborted ? signal.reason : e));
    req.end();
  });
}

/** HEAD as an absolute-form request to the proxy, as the roles send http: requests. */
export async function headViaProxy(egress: Egress, t: CheckTarget, timeoutMs: number, signal: AbortSignal): Promise<number> {
  const res = await egress.request(t.url, {
    method: "HEAD",
    headers: { "user-agent": USER_AGENT },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal,
  });
  await res.body.dump().catch(() => {});
  return res.statusCode;
}

function hostHeader(t: CheckTarget): string {
  const def = t.scheme === "https" ? 443 : 80;
  return t.port === def ? hostForUrl(t.host) : `${hostForUrl(t.host)}:${t.port}`;
}
