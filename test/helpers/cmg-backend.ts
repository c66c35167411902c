/**
 * The stand-ins of the CMG harness: a plain HTTP backend for the management point / software
 * update point, and a CRL server that can be switched off.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** What the backend saw of one request. */
export interface BackendRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bodyBytes: number;
  /** The whole request arrived (its body ended cleanly). */
  complete: boolean;
  /** The request was cut off before its end (the client side aborted it). */
  aborted: boolean;
}

/**
 * The stand-in management point. Routes (under any prefix):
 *   /echo...          JSON { method, url, headers, bodyBytes } after reading the whole body
 *   /bytes/<n>        n bytes, streamed in 64 KiB chunks with backpressure (never in memory at once)
 *   /hold/<key>       sends nothing until release(key) (for failover while a request is in flight)
 *   anything else     same as /echo
 */
export interface TestBackend {
  url: string;
  port: number;
  requests: BackendRequest[];
  /** Responses whose connection closed before the whole response was written (the request was cancelled). */
  readonly closedEarly: number;
  /** Responses under way now (not yet closed, finished or cut off). */
  readonly open: number;
  /** Answers the held requests with `key` (200, body "released"). */
  release(key: string): void;
  /** Resolves when a request for /hold/<key> has arrived. */
  held(key: string): Promise<void>;
  close(): Promise<void>;
}

export async function startBackend(): Promise<TestBackend> {
  const requests: BackendRequest[] = [];
  const holds = new Map<string, ServerResponse[]>();
  const arrivals = new Map<string, () => void>();
  const arrived = new Set<string>();
  let closedEarly = 0;
  let open = 0;
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? "/";
    const record: BackendRequest = { method: req.method ?? "", url, headers: req.headers, bodyBytes: 0, complete: false, aborted: false };
    requests.push(record);
    req.once("end", () => (record.complete = true));
    req.once("close", () => {
      if (!req.complete) record.aborted = true;
    });
    open++;
    res.once("close", () => {
      open--;
      if (!res.writableFinished) closedEarly++;
    });
    const bytes = /\/bytes\/(\d+)/.exec(url);
    const hold = /\/hold\/([\w-]+)/.exec(url);
    if (bytes) {
      req.resume();
      streamBytes(res, Number(bytes[1]));
    } else if (hold) {
      req.resume();
      const key = hold[1]!;
      holds.set(key, [...(holds.get(key) ?? []), res]);
      arrived.add(key);
      arrivals.get(key)?.();
    } else {
      req.on("data", (c: Buffer) => (record.bodyBytes += c.length));
      req.on("end", () => {
        const body = JSON.stringify({ method: record.method, url, headers: req.headers, bodyBytes: record.bodyBytes });
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "keep-alive", "keep-alive": "timeout=5" });
        res.end(body);
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    get closedEarly() {
      return closedEarly;
    },
    get open() {
      return open;
    },
    release(key) {
      for (const res of holds.get(key) ?? []) if (!res.destroyed) res.end("released");
      holds.delete(key);
    },
    held(key) {
      if (arrived.has(key)) return Promise.resolve();
      return new Promise((r) => arrivals.set(key, r));
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Writes `n` bytes in 64 KiB chunks, waiting for drain: the backend never holds the body either. */
function streamBytes(res: ServerResponse, n: number): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": n });
  let left = n;
  const pump = (): void => {
    while (left > 0) {
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      left -= part.length;
      if (!res.write(part)) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  res.on("close", () => {
    left = 0;
  });
  pump();
}

export interface CrlServer {
  base: string;
  available: boolean;
  hits: number;
  files: Record<string, string>;
  close(): Promise<void>;
}

export async function startCrlServer(): Promise<CrlServer> {
  const state: CrlServer = {
    base: "",
    available: true,
    hits: 0,
    files: {},
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  const server = http.createServer((req, res) => {
    state.hits++;
    const file = state.files[req.url ?? ""];
    if (!state.available || !file) {
      res.writeHead(state.available ? 404 : 503);
      res.end();
      return;
    }
    res.writeHead(200, { "content-type": "application/pkix-crl" });
    res.end(file);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}
