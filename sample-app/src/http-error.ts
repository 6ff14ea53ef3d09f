import { httpStatusOf, isLargeObjectHttpError } from "../../src/http";

/** An error of the app's own routes, with the HTTP status to answer it with. */
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

/**
 * The status, message and headers a failure is answered with: the app's own errors as they are,
 * the library's by its status table (a refusal the client caused keeps its message), and anything
 * else as a bare 500.
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (isLargeObjectHttpError(err)) return new HttpError(err.status, err.message);
  const status = httpStatusOf(err);
  if (status === 503) return new HttpError(503, "the server is busy, try again shortly", { "Retry-After": "1" });
  if (status === 404) return new HttpError(404, "not found");
  return new HttpError(500, "internal error");
}
