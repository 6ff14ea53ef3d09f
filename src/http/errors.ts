import { LargeObjectError, type LargeObjectErrorCode, type LargeObjectErrorDetails } from "../index";

/**
 * Codes of the refusals an upload can meet because of what the client sent. Each error carrying
 * one has the HTTP status of the refusal in `status` (and `statusCode`), as http-errors does.
 */
export type LargeObjectHttpErrorCode =
  | "ERR_LO_HTTP_TOO_LARGE"
  | "ERR_LO_HTTP_ABORTED"
  | "ERR_LO_HTTP_MALFORMED"
  | "ERR_LO_HTTP_NO_FILE"
  | "ERR_LO_HTTP_TOO_MANY_FILES"
  | "ERR_LO_HTTP_UNSUPPORTED_TYPE";

/** A refusal the client caused: a LargeObjectError with the HTTP status to answer it with. */
export interface LargeObjectHttpError extends Omit<LargeObjectError, "code"> {
  readonly code: LargeObjectHttpErrorCode;
  readonly status: number;
  readonly statusCode: number;
  readonly expose: true;
}

/**
 * The one table from errors to HTTP statuses. Codes absent from it are failures of the server or
 * of the application's code (a missing primary key, an undecorated property): 500.
 *
 * | code | status |
 * |---|---|
 * | ERR_LO_HTTP_TOO_LARGE | 413 |
 * | ERR_LO_HTTP_UNSUPPORTED_TYPE | 415 |
 * | ERR_LO_HTTP_ABORTED, ERR_LO_HTTP_MALFORMED, ERR_LO_HTTP_NO_FILE, ERR_LO_HTTP_TOO_MANY_FILES | 400 |
 * | ERR_LO_NOT_FOUND (no such row or object), ERR_LO_NULL (the column is null) | 404 |
 * | ERR_LO_POOL_EXHAUSTED, ERR_LO_TIMEOUT, ERR_LO_CONNECTION | 503 |
 * | ERR_LO_DISK_FULL | 507 |
 * | anything else | 500 |
 */
export const HTTP_STATUS_OF_CODE: Readonly<Record<LargeObjectHttpErrorCode | LargeObjectErrorCode, number>> = {
  ERR_LO_HTTP_TOO_LARGE: 413,
  ERR_LO_HTTP_UNSUPPORTED_TYPE: 415,
  ERR_LO_HTTP_ABORTED: 400,
  ERR_LO_HTTP_MALFORMED: 400,
  ERR_LO_HTTP_NO_FILE: 400,
  ERR_LO_HTTP_TOO_MANY_FILES: 400,
  ERR_LO_NOT_FOUND: 404,
  ERR_LO_NULL: 404,
  ERR_LO_POOL_EXHAUSTED: 503,
  ERR_LO_TIMEOUT: 503,
  ERR_LO_CONNECTION: 503,
  ERR_LO_DISK_FULL: 507,
  ERR_LO_MODE: 500,
  ERR_LO_CLOSED: 500,
  ERR_LO_INVALID_ARGUMENT: 500,
  ERR_LO_PERMISSION_DENIED: 500,
  ERR_LO_NOT_POSTGRES: 500,
  ERR_LO_CONFLICT: 500,
  ERR_LO_TRANSACTION: 500,
  ERR_LO_NOT_DECORATED: 500,
  ERR_LO_NO_PRIMARY_KEY: 500,
  ERR_LO_INVALID_VALUE: 500,
  ERR_LO_TOO_LARGE: 500,
  ERR_LO_IN_USE: 500,
  ERR_LO_INVALID_TRACK: 500,
  ERR_LO_NOT_REGISTERED: 500,
  ERR_LO_DATABASE: 500,
};

/**
 * The HTTP status that answers `err`, by {@link HTTP_STATUS_OF_CODE}: 500 for anything that is not
 * a LargeObjectError.
 *
 * @example
 * catch (err) { res.statusCode = httpStatusOf(err); res.end(); }
 */
export function httpStatusOf(err: unknown): number {
  if (!(err instanceof LargeObjectError)) return 500;
  return (HTTP_STATUS_OF_CODE as Record<string, number | undefined>)[err.code] ?? 500;
}

/** Whether `err` is a refusal the client caused (it carries `status`). */
export function isLargeObjectHttpError(err: unknown): err is LargeObjectHttpError {
  return err instanceof LargeObjectError && err.code.startsWith("ERR_LO_HTTP_") && typeof (err as { status?: unknown }).status === "number";
}

/** A refusal with its code, status and message. */
export function httpRefusal(
  code: LargeObjectHttpErrorCode,
  message: string,
  details: LargeObjectErrorDetails = {},
): LargeObjectHttpError {
  // The core's code union does not list the HTTP codes yet; the cast is confined to this line.
  const err = new LargeObjectError(code as unknown as LargeObjectErrorCode, message, details);
  const status = HTTP_STATUS_OF_CODE[code];
  return Object.assign(err, { status, statusCode: status, expose: true as const }) as unknown as LargeObjectHttpError;
}
