/** The directory's discovery document and JWKS: a plain GET of a small JSON document, bounded in time and size. */
import { request } from "undici";

export async function getJson(url: string, maxBytes: number): Promise<unknown> {
  const res = await request(url, { method: "GET", headers: { accept: "application/json" }, headersTimeout: 10_000, bodyTimeout: 10_000 });
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`${url} answered HTTP ${res.statusCode}`);
  }
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) {
      res.body.destroy();
      throw new Error(`${url} sent more than ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
}
