/**
 * A client's request body on its way to a tunnel stream: backpressure, the size limit, the
 * client's upload share (fairness.ts), and a copy of the first bytes so the request can be sent
 * again on another tunnel after a failure.
 */
import type { ClientHttp2Stream } from "node:http2";
import type { ClientRequest } from "../auth/client-cert.ts";

/** Bodies up to this size are kept while they stream, so the request can be retried on another tunnel. */
export const REPLAY_LIMIT = 64 * 1024;

/**
 * Feeds a client's request body to the current tunnel stream, with backpressure, counting bytes
 * and enforcing the size limit; keeps the first REPLAY_LIMIT bytes so the body can be sent again
 * on another tunnel after a failure. `throttle` (the client's upload share) says how long to stop
 * reading after each chunk: the request is paused meanwhile, so the sender is slowed by TCP or
 * HTTP/2 flow control and nothing piles up here.
 *
 * @example
 * const body = new BodyRelay(req, maxBody, (n) => (trace.bytesIn += n), (n) => share.throttle(n));
 * body.onTooLarge = () => reply(req, res, 413, "body_too_large", "...");
 * body.attach(tunnel.open(headers, false));
 */
export class BodyRelay {
  replayable = true;
  onTooLarge: () => void = () => {};
  private readonly kept: Buffer[] = [];
  private bytes = 0;
  private ended = false;
  private stopped = false;
  private target: ClientHttp2Stream | null = null;
  /** Reasons the body is paused now (the tunnel stream's backpressure, the upload share). */
  private holds = 0;
  private throttleTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly req: ClientRequest,
    private readonly max: number,
    onBytes: (n: number) => void,
    private readonly throttle: (n: number) => number = () => 0,
  ) {
    req.on("data", (chunk: Buffer) => {
      this.bytes += chunk.length;
      onBytes(chunk.length);
      if (this.bytes > this.max) {
        this.stopped = true;
        this.req.pause();
        this.replayable = false;
        this.onTooLarge();
        return;
      }
      this.keep(chunk);
      const t = this.target;
      if (t && !t.destroyed && !t.write(chunk)) {
        this.hold();
        // "close" too: a stream that is gone never drains, and the body must not stay held for it.
        const go = (): void => {
          t.off("drain", go);
          t.off("close", go);
          this.release();
        };
        t.on("drain", go);
        t.on("close", go);
      }
      const wait = this.throttle(chunk.length);
      if (wait > 0 && !this.throttleTimer) {
        this.hold();
        this.throttleTimer = setTimeout(() => {
          this.throttleTimer = null;
          this.release();
        }, wait);
        this.throttleTimer.unref();
      }
    });
    req.on("end", () => {
      this.ended = true;
      if (this.target && !this.target.destroyed) this.target.end();
    });
    req.once("close", () => {
      if (this.throttleTimer) clearTimeout(this.throttleTimer);
      this.throttleTimer = null;
    });
    // Nothing flows until a tunnel stream is attached.
    req.pause();
  }

  /** Sends the body (what was kept, then the rest) to a new tunnel stream. */
  attach(target: ClientHttp2Stream): void {
    this.target = target;
    for (const c of this.kept) target.write(c);
    if (this.ended) target.end();
    else if (this.holds === 0 && !this.stopped) this.req.resume();
  }

  private hold(): void {
    if (this.holds++ === 0) this.req.pause();
  }

  private release(): void {
    if (--this.holds === 0 && this.target && !this.stopped) this.req.resume();
  }

  private keep(chunk: Buffer): void {
    if (!this.replayable) return;
    if (this.bytes <= REPLAY_LIMIT) this.kept.push(chunk);
    else {
      this.replayable = false;
      this.kept.length = 0;
    }
  }
}
