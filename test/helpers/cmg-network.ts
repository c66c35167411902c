/** The connection points' "network" in the CMG harness: a TCP relay a test can cut, as a crash or a network failure would. */
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

/**
 * A TCP relay per target: `dial(host, port)` connects through a local relay to host:port, and
 * `cut()` destroys both sides of every relayed connection at once.
 */
export class Network {
  private readonly relays = new Map<string, Promise<Server>>();
  private readonly pairs = new Set<[Socket, Socket]>();

  async dial(host: string, port: number): Promise<Socket> {
    const key = `${host}:${port}`;
    let relay = this.relays.get(key);
    if (!relay) {
      relay = this.startRelay(host, port);
      this.relays.set(key, relay);
    }
    const at = (await relay).address() as AddressInfo;
    return new Promise((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port: at.port });
      s.once("connect", () => {
        s.off("error", reject);
        resolve(s);
      });
      s.once("error", reject);
    });
  }

  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    for (const r of this.relays.values()) {
      const server = await r;
      await new Promise<void>((done) => server.close(() => done()));
    }
  }

  private async startRelay(host: string, port: number): Promise<Server> {
    const server = createServer((down) => {
      const up = connect({ host, port });
      const pair: [Socket, Socket] = [down, up];
      this.pairs.add(pair);
      const end = (): void => {
        this.pairs.delete(pair);
        down.destroy();
        up.destroy();
      };
      down.on("error", end).on("close", end);
      up.on("error", end).on("close", end);
      down.pipe(up);
      up.pipe(down);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return server;
  }
}
