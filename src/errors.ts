/**
 * Stable codes carried by every {@link LargeObjectError}. Messages may change between versions;
 * codes do not.
 */
export type LargeObjectErrorCode =
  | "ERR_LO_NOT_FOUND"
  | "ERR_LO_MODE"
  | "ERR_LO_CLOSED"
  | "ERR_LO_INVALID_ARGUMENT"
  | "ERR_LO_PERMISSION_DENIED"
  | "ERR_LO_NOT_POSTGRES"
  | "ERR_LO_CONNECTION"
  | "ERR_LO_TIMEOUT"
  | "ERR_LO_CONFLICT"
  | "ERR_LO_TRANSACTION"
  | "ERR_LO_NOT_DECORATED"
  | "ERR_LO_NULL"
  | "ERR_LO_NO_PRIMARY_KEY"
  | "ERR_LO_INVALID_VALUE"
  | "ERR_LO_TOO_LARGE"
  | "ERR_LO_IN_USE"
  | "ERR_LO_INVALID_TRACK"
  | "ERR_LO_NOT_REGISTERED"
  | "ERR_LO_POOL_EXHAUSTED"
  | "ERR_LO_DISK_FULL"
  | "ERR_LO_DATABASE";

/** Context attached to an error: which object, where, and on which entity. */
export interface LargeObjectErrorDetails {
  oid?: number;
  offset?: number;
  entity?: string;
  property?: string;
  cause?: unknown;
}

/**
 * Sets the details `err` does not have yet and keeps those it has: a new error gets all of them, and
 * one raised deeper down gets what only its caller knows (the repository knows the entity and
 * property of a handle's failure).
 */
function fillDetails(err: LargeObjectError, details: LargeObjectErrorDetails): LargeObjectError {
  const fields = err as unknown as Record<string, unknown>;
  for (const key of ["oid", "offset", "entity", "property"] as const) {
    if (details[key] !== undefined && fields[key] === undefined) fields[key] = details[key];
  }
  return err;
}

/**
 * The one error type this library throws. Switch on `code`, not on the message.
 *
 * @example
 * try { await LargeObject.open(dataSource, oid, "r"); }
 * catch (err) { if (err instanceof LargeObjectError && err.code === "ERR_LO_NOT_FOUND") return 404; }
 */
export class LargeObjectError extends Error {
  override readonly name = "LargeObjectError";
  readonly code: LargeObjectErrorCode;
  readonly oid?: number;
  readonly offset?: number;
  readonly entity?: string;
  readonly property?: string;

  constructor(code: LargeObjectErrorCode, message: string, details: LargeObjectErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    fillDetails(this, details);
  }
}

/** True when `err` is a {@link LargeObjectError}, optionally with the given code. */
export function isLargeObjectError(err: unknown, code?: LargeObjectErrorCode): err is LargeObjectError {
  return err instanceof LargeObjectError && (code === undefined || err.code === code);
}

const CONNECTION_MESSAGES = [
  "Connection terminated",
  "connection error",
  "Client was closed",
  "Client has encountered a connection error",
  "not queryable",
  "ECONNRESET",
  "EPIPE",
  "ECONNREFUSED",
];

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** @internal Whether an error means the connection itself is gone (so it must not go back to the pool). */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof LargeObjectError) return err.code === "ERR_LO_CONNECTION";
  const state = sqlState(err);
  if (state !== undefined && (state.startsWith("08") || state.startsWith("57P"))) return true;
  const message = err instanceof Error ? err.message : String(err);
  return CONNECTION_MESSAGES.some((m) => message.includes(m));
}

/**
 * Turns a driver or server error into a LargeObjectError. The one place where SQLSTATEs map to
 * codes; an error that already is a LargeObjectError passes through, with the details it lacked
 * filled in.
 * @internal
 */
export function toLargeObjectError(err: unknown, details: Omit<LargeObjectErrorDetails, "cause"> = {}): LargeObjectError {
  if (err instanceof LargeObjectError) return fillDetails(err, details);
  const state = sqlState(err);
  const message = err instanceof Error ? err.message : String(err);
  const withCause = { ...details, cause: err };
  if (isConnectionFailure(err)) {
    return new LargeObjectError("ERR_LO_CONNECTION", `The database connection failed: ${message}`, withCause);
  }
  if (message.includes("invalid large-object descriptor")) {
    return new LargeObjectError(
      "ERR_LO_TRANSACTION",
      `${message}: a descriptor was used outside the transaction that opened it`,
      withCause,
    );
  }
  if (message.includes("tuple concurrently updated")) {
    // XX000 from the server: another transaction wrote the same 2 KiB page of the object and
    // committed first. Retrying the transaction is the fix, as for a serialization failure.
    return new LargeObjectError("ERR_LO_CONFLICT", message, withCause);
  }
  switch (state) {
    case "42704": // undefined_object: "large object N does not exist"
      return new LargeObjectError("ERR_LO_NOT_FOUND", message, withCause);
    case "42501": // insufficient_privilege
      return new LargeObjectError("ERR_LO_PERMISSION_DENIED", message, withCause);
    case "22023": // invalid_parameter_value: "invalid large object seek target", truncation target
      return new LargeObjectError("ERR_LO_INVALID_ARGUMENT", message, withCause);
    case "57014": // query_canceled (statement_timeout)
    case "55P03": // lock_not_available (lock_timeout, NOWAIT)
    case "25P03": // idle_in_transaction_session_timeout
      return new LargeObjectError("ERR_LO_TIMEOUT", message, withCause);
    case "40001": // serialization_failure
    case "40P01": // deadlock_detected
      return new LargeObjectError("ERR_LO_CONFLICT", message, withCause);
    case "25P02": // in_failed_sql_transaction
    case "25P01": // no_active_sql_transaction
      return new LargeObjectError("ERR_LO_TRANSACTION", message, withCause);
    case "53100": // disk_full: "could not extend file ...: No space left on device"
      return new LargeObjectError("ERR_LO_DISK_FULL", message, withCause);
    case "53200": // out_of_memory, usually max_locks_per_transaction
    default:
      return new LargeObjectError("ERR_LO_DATABASE", message, withCause);
  }
}

/**
 * @internal What to do about a data source that was not prepared for large objects: said wherever
 * the library or its CLI can tell, because TypeORM's own error ("Data type "oid" ... is not
 * supported") names no cause.
 */
export const REGISTRATION_HINT =
  "call registerLargeObjects(dataSource) before dataSource.initialize() (in NestJS, inside TypeOrmModule's dataSourceFactory)";

/** @internal ERR_LO_NOT_REGISTERED, with what happened and {@link REGISTRATION_HINT}. */
export function notRegistered(what: string, details: LargeObjectErrorDetails = {}): LargeObjectError {
  return new LargeObjectError("ERR_LO_NOT_REGISTERED", `${what}: ${REGISTRATION_HINT}`, details);
}

/** @internal Shorthand for argument errors. */
export function invalidArgument(message: string, details: LargeObjectErrorDetails = {}): LargeObjectError {
  return new LargeObjectError("ERR_LO_INVALID_ARGUMENT", message, details);
}
