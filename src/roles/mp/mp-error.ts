import { OpenCmgError, type ErrorKind } from "../../errors.ts";
import type { MpReason } from "../../wire/mp.ts";

const KIND: Record<number, ErrorKind> = { 400: "validation", 401: "unauthorized", 403: "unauthorized", 404: "not_found", 409: "conflict" };

/**
 * A refusal the management point answers with: the HTTP status, a stable reason code (data, for
 * clients and tests) and a message for people (what was wrong, what to do).
 *
 * @example
 * throw new MpError(403, "awaiting_approval", `client ${id} awaits approval: opencmg site clients approve ${id}`);
 */
export class MpError extends OpenCmgError {
  constructor(
    readonly status: number,
    readonly reason: MpReason,
    message: string,
    /** Seconds after which a refused client may try again (429, 503). */
    readonly retryAfterSeconds?: number,
  ) {
    super(KIND[status] ?? (status >= 500 ? "internal" : "validation"), reason, message);
  }
  override get httpStatus(): number {
    return this.status;
  }
}
