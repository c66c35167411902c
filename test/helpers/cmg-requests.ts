/** Requests to a gateway instance's client port, over HTTP/1.1 or HTTP/2, with or without a client certificate. */
import http2 from "node:http2";
import https from "node:https";
import type { CertKeyPem } from "../../src/pki/issue.ts";

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** "h2" or "http/1.1" as negotiated. */
  protocol: string;
}

export interface RequestOptions {
  /** Client certificate to present (null: none). */
  cert?: CertKeyPem | null;
  method?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Use HTTP/2 (default HTTP/1.1). */
  h2?: boolean;
  /** Gives up after this (default 30 s) so a broken gateway fails the test instead of hanging it. */
  timeoutMs?: number;
}

/** HTTP/1.1 request with an optional client certificate; a fresh connection each time. */
export function requestH1(port: number, path: string, ca: string, o: RequestOptions): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1",
      port,
      path,
      method: o.method ?? "GET",
      headers: o.headers,
      ca,
      servername: "cmg.opencmg.test",
      agent: false,
      // Not in https.RequestOptions' type, but passed on to tls.connect: force HTTP/1.1.
      ...({ ALPNProtocols: ["http/1.1"] } as object),
      ...(o.cert ? { cert: o.cert.certPem, key: o.cert.keyPem } : {}),
    });
    req.setTimeout(o.timeoutMs ?? 30_000, () => req.destroy(new Error("client timeout")));
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("aborted", () => reject(new Error("response aborted")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), protocol: "http/1.1" }));
    });
    req.end(o.body);
  });
}

/** HTTP/2 request with an optional client certificate; a fresh session each time. */
export function requestH2(port: number, path: string, ca: string, o: RequestOptions): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      ca,
      servername: "cmg.opencmg.test",
      ...(o.cert ? { cert: o.cert.certPem, key: o.cert.keyPem } : {}),
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error("client timeout"));
    }, o.timeoutMs ?? 30_000);
    session.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    const stream = session.request({ ":method": o.method ?? "GET", ":path": path, ...o.headers }, { endStream: o.body === undefined });
    stream.on("error", (err) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    });
    stream.on("response", (headers) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        clearTimeout(timer);
        session.close();
        const { ":status": status, ...rest } = headers;
        resolve({ status: Number(status), headers: rest as HttpResult["headers"], body: Buffer.concat(chunks), protocol: "h2" });
      });
    });
    if (o.body !== undefined) stream.end(o.body);
  });
}
