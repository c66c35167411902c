/**
 * The gateway's own answers to clients: a reason code as JSON and in `x-opencmg-reason`, and the
 * way a response already under way is cut short.
 */
import type { ServerResponse } from "node:http";
import http2, { type Http2ServerResponse } from "node:http2";
import type { ClientRequest } from "../auth/client-cert.ts";
import { REFUSAL_HEADERS, type GatewayRefusalBody } from "../../wire/refusals.ts";

export type ClientResponse = ServerResponse | Http2ServerResponse;

/**
 * Sends the gateway's own answer: a reason code, as JSON, and in `x-opencmg-reason`; a finer cause
 * given as `x-opencmg-cause` in `extra` goes into the JSON too (codes: src/wire/refusals.ts). A
 * response whose headers went out already is cut short instead.
 *
 * @example
 * reply(req, res, 503, "no_connection_point", "no connection point is connected to this gateway", { "retry-after": "5" });
 */
export function reply(req: ClientRequest, res: ClientResponse, status: number, reason: string, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent || gone(res)) {
    abortResponse(res);
    return;
  }
  const cause = extra[REFUSAL_HEADERS.cause];
  const answer: GatewayRefusalBody = { error: reason, message, ...(cause ? { cause } : {}) };
  const body = JSON.stringify(answer) + "\n";
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    [REFUSAL_HEADERS.reason]: reason,
    "cache-control": "no-store",
    ...extra,
  };
  // An HTTP/1.1 request whose body was not read would leave the connection in an unknown state.
  if (req.httpVersionMajor === 1 && !req.complete) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(body);
}

/** True when the response can no longer be written (Http2ServerResponse has no `destroyed`). */
export function gone(res: ClientResponse): boolean {
  const stream = (res as Http2ServerResponse).stream as { destroyed?: boolean } | undefined;
  return (res as ServerResponse).destroyed === true || stream?.destroyed === true;
}

/**
 * Cuts a response short so the client cannot mistake it for a complete one: RST_STREAM with
 * INTERNAL_ERROR on HTTP/2 (a plain destroy would send NO_ERROR, which clients read as the end),
 * the connection closed on HTTP/1.1.
 */
export function abortResponse(res: ClientResponse): void {
  const stream = (res as Http2ServerResponse).stream as http2.ServerHttp2Stream | undefined;
  if (stream && typeof stream.close === "function") {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  } else {
    (res as ServerResponse).destroy();
  }
}
