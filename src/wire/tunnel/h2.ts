/**
 * HTTP/2 sizing of a tunnel, both ends. Each side sets what it receives; docs/protocol.md says why
 * these sizes.
 */
/** HTTP/2 sizing on the gateway instance's side (the h2 client): a tunnel carries many clients' downloads at once. */
export const TUNNEL_H2 = {
  /**
   * Per-stream receive window: bytes of one response in flight before the client reads them. It
   * sets the throughput of one download (1 MiB gave about 80 MB/s on loopback, 4 MiB about
   * 120 MB/s, 8 MiB and more about 145 MB/s: bench/gateway.ts) and it is also what one slow
   * client can make the instance buffer, so it stays at 4 MiB.
   */
  streamWindow: 4 * 1024 * 1024,
  /** Connection-level receive window, shared by all streams of the tunnel (Node consumes it on receipt). */
  connectionWindow: 64 * 1024 * 1024,
  /** nghttp2 memory cap per session, MB (Node's default of 10 throttles busy tunnels). */
  maxSessionMemoryMb: 64,
  maxFrameSize: 64 * 1024,
};

/** HTTP/2 sizing on the connection point's side (it sends the big responses). */
export const CONNECTION_POINT_H2 = {
  /** Receive window per stream (request bodies from the gateway). */
  streamWindow: 1024 * 1024,
  connectionWindow: 32 * 1024 * 1024,
  maxSessionMemoryMb: 64,
  maxConcurrentStreams: 1000,
  maxFrameSize: 64 * 1024,
  /**
   * Largest request header list (SETTINGS_MAX_HEADER_LIST_SIZE; HPACK size: name + value + 32 per
   * field) and most header fields (pseudo-headers included) the connection point accepts. The
   * gateway's own limits stay below these less GATEWAY_ADDED_HEADERS and it checks each tunnel
   * request against them, so a request too large for the tunnel gets 431 at the gateway.
   */
  maxHeaderListSize: 64 * 1024,
  maxHeaderListPairs: 256,
};

/**
 * Room the gateway keeps for the headers it adds to a client's request (pseudo-headers, routing,
 * request id, client identity, x-forwarded-*): the client's own headers get the rest.
 */
export const GATEWAY_ADDED_HEADERS = {
  count: 20,
  bytes: 16 * 1024,
};

/**
 * A header list's size as HTTP/2 counts it (RFC 9113 section 6.5.2: name + value + 32 per field)
 * and its number of fields, arrays counting once per value.
 *
 * @example
 * const { bytes, count } = headerListSize({ ":method": "GET", ":path": "/" }); // { bytes: 76, count: 2 }
 */
export function headerListSize(headers: Readonly<Record<string, unknown>>): { bytes: number; count: number } {
  let bytes = 0;
  let count = 0;
  // for...in and no array per field: this runs on every relayed request.
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    // Field names are ASCII tokens (both parsers refuse anything else; the gateway's own are ASCII): a byte a character.
    const n = name.length + 32;
    if (Array.isArray(value)) {
      for (const v of value as unknown[]) bytes += n + Buffer.byteLength(String(v));
      count += value.length;
    } else {
      bytes += n + Buffer.byteLength(typeof value === "string" ? value : String(value));
      count++;
    }
  }
  return { bytes, count };
}
