import { isLargeObjectError } from "../../src";

/** An error with the HTTP status to answer it with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** The status and message a failure is answered with; unexpected errors become a bare 500. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  // The client went away mid-response: nothing to answer and nothing wrong with the server.
  if ((err as { code?: unknown } | null)?.code === "ERR_STREAM_PREMATURE_CLOSE") return new HttpError(499, "client closed the request");
  if (isLargeObjectError(err, "ERR_LO_POOL_EXHAUSTED")) {
    return new HttpError(503, "the server is busy, try again shortly", { "Retry-After": "1" });
  }
  if (isLargeObjectError(err, "ERR_LO_NOT_FOUND")) return new HttpError(404, "not found");
  return new HttpError(500, "internal error");
}
