import { ERRORS } from "@tus/server";
import { LargeObjectError, toLargeObjectError, type LargeObjectErrorCode } from "../errors";

/** What `@tus/server` reads from a thrown error to answer a request: the status and the body. */
export interface TusErrorFields {
  status_code: number;
  body: string;
}

/** A {@link LargeObjectError} that `@tus/server` answers with its own status and body. */
export type TusLargeObjectError = LargeObjectError & TusErrorFields;

/** The upload is being written by another request (a row lock held elsewhere): 423, which tus clients retry. */
export const UPLOAD_LOCKED: TusErrorFields = { status_code: 423, body: "The upload is being written by another request\n" };

/** @internal A typed error carrying the status and body of one of the protocol's answers. */
export function tusError(code: LargeObjectErrorCode, answer: TusErrorFields, message: string, oid?: number): TusLargeObjectError {
  const err = new LargeObjectError(code, message, oid === undefined ? {} : { oid });
  return Object.assign(err, { status_code: answer.status_code, body: answer.body });
}

/**
 * @internal The error a store method rejects with: the server's own and ours pass through; a row
 * lock held by another request is 423; anything else becomes a typed error answered as a plain
 * 500, so that no database message reaches the client.
 */
export function toTusError(err: unknown, oid?: number): unknown {
  if (typeof (err as Partial<TusErrorFields> | null)?.status_code === "number") return err;
  const typed = toLargeObjectError(err, oid === undefined ? {} : { oid });
  if ((typed.cause as { code?: unknown } | undefined)?.code === "55P03") {
    return tusError("ERR_LO_CONFLICT", UPLOAD_LOCKED, "another request is writing this upload", oid);
  }
  return Object.assign(typed, { status_code: ERRORS.UNKNOWN_ERROR.status_code, body: ERRORS.UNKNOWN_ERROR.body });
}
