/**
 * A raw HTTP/2 client over TLS for abuse tests: it writes frames itself, so a HEADERS frame and
 * the RST_STREAM that cancels it really go out together (node:http2's client drops a request it
 * cancels before sending it). Enough HPACK for GET requests; it answers SETTINGS and PING and
 * records GOAWAY.
 */
import tls from "node:tls";
import type { CertKeyPem } from "../../src/pki/issue.ts";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK integer with an n-bit prefix. */
function int(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

/** Literal without indexing, name by static index (4-bit prefix) or new name. */
function literal(nameIndex: number | string, value: string): Buffer {
  const v = Buffer.from(value, "latin1");
  if (typeof nameIndex === "number") return Buffer.concat([Buffer.from(int(nameIndex, 4, 0)), Buffer.from(int(v.length, 7, 0)), v]);
  const n = Buffer.from(nameIndex, "latin1");
  return Buffer.concat([Buffer.from([0]), Buffer.from(int(n.length, 7, 0)), n, Buffer.from(int(v.length, 7, 0)), v]);
}

export interface RawH2 {
  /** Error code of the first GOAWAY received, if any. */
  goaway: number | undefined;
  /** Stream ids the server answered with HEADERS. */
  answered: Set<number>;
  closed: boolean;
  /** HEADERS for a GET of `path` on a new stream (END_STREAM); returns the stream id. */
  headers(path: string): number;
  rst(id: number, code?: number): void;
  /** Both at once: one write, as a rapid-reset attacker does. */
  openAndCancel(path: string): number;
  flush(): void;
  /** Bytes written and not yet taken by the kernel (for an attacker that must not buffer without bound). */
  readonly buffered: number;
  destroy(): void;
  whenClosed: Promise<void>;
}

/**
 * @example
 * const c = await rawH2({ port, ca, cert });
 * for (let i = 0; i < 1000 && !c.closed; i++) c.openAndCancel("/x");
 */
export async function rawH2(o: { port: number; ca: string; cert: CertKeyPem; localAddress?: string }): Promise<RawH2> {
  const socket = tls.connect({
    host: "127.0.0.1",
    port: o.port,
    ca: o.ca,
    servername: "cmg.opencmg.test",
    cert: o.cert.certPem,
    key: o.cert.keyPem,
    ALPNProtocols: ["h2"],
    ...(o.localAddress ? { localAddress: o.localAddress } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve());
    socket.once("error", reject);
    socket.once("close", () => reject(new Error("the server closed the connection during the handshake")));
  });
  socket.on("error", () => {});
  let out: Buffer[] = [PREFACE, frame(T.SETTINGS, 0, 0)];
  let nextId = 1;
  let buf = Buffer.alloc(0);
  const c: RawH2 = {
    goaway: undefined,
    answered: new Set(),
    closed: false,
    whenClosed: new Promise((r) => socket.once("close", () => r())),
    headers(path) {
      const id = nextId;
      nextId += 2;
      const block = Buffer.concat([Buffer.from([0x82, 0x87]), literal(4, path), literal(1, "cmg.opencmg.test")]);
      out.push(frame(T.HEADERS, 0x5, id, block));
      return id;
    },
    rst(id, code = 8) {
      const p = Buffer.alloc(4);
      p.writeUInt32BE(code);
      out.push(frame(T.RST_STREAM, 0, id, p));
    },
    openAndCancel(path) {
      const id = c.headers(path);
      c.rst(id);
      return id;
    },
    flush() {
      if (out.length && !socket.destroyed) socket.write(Buffer.concat(out));
      out = [];
    },
    get buffered() {
      return socket.writableLength;
    },
    destroy() {
      socket.destroy();
    },
  };
  socket.once("close", () => (c.closed = true));
  socket.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const type = buf[3]!;
      const flags = buf[4]!;
      const id = buf.readUInt32BE(5) & 0x7fffffff;
      const payload = buf.subarray(9, 9 + len);
      buf = buf.subarray(9 + len);
      if (type === T.SETTINGS && !(flags & 1)) out.push(frame(T.SETTINGS, 1, 0));
      else if (type === T.PING && !(flags & 1)) out.push(frame(T.PING, 1, 0, Buffer.from(payload)));
      else if (type === T.GOAWAY) c.goaway ??= payload.readUInt32BE(4);
      else if (type === T.HEADERS) c.answered.add(id);
    }
    c.flush();
  });
  c.flush();
  return c;
}
