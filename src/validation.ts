import { invalidArgument } from "./errors";

/** The largest offset PostgreSQL accepts in a large object (4 TB). Below 2^53, so numbers are exact. */
export const MAX_LARGE_OBJECT_SIZE = 4 * 1024 ** 4;

/** An offset or length: a non-negative safe integer, or a bigint for callers that keep 64-bit values. */
export type Offset = number | bigint;

/** @internal Validates an offset or length and returns it as a number (exact: the range stays below 2^53). */
export function toOffset(value: unknown, name: string, oid?: number): number {
  let n: number;
  if (typeof value === "bigint") {
    n = Number(value);
    if (BigInt(n) !== value) throw invalidArgument(`${name} must be an integer between 0 and 4 TB, got ${value}`, { oid });
  } else if (typeof value === "number") {
    n = value;
  } else {
    throw invalidArgument(`${name} must be a number or bigint, got ${typeof value}`, { oid });
  }
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_LARGE_OBJECT_SIZE) {
    throw invalidArgument(`${name} must be an integer between 0 and 4 TB, got ${String(value)}`, { oid });
  }
  return n;
}

/** @internal Validates a signed 64-bit seek distance. */
export function toSignedOffset(value: unknown, name: string, oid?: number): number {
  if (typeof value === "bigint") value = Number(value);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || Math.abs(value) > MAX_LARGE_OBJECT_SIZE) {
    throw invalidArgument(`${name} must be an integer, got ${String(value)}`, { oid });
  }
  return value;
}

/** @internal Validates an oid: an unsigned 32-bit integer other than 0 (InvalidOid). */
export function toOid(value: unknown): number {
  if (typeof value === "bigint") value = Number(value);
  if (typeof value === "string" && /^\d+$/.test(value)) value = Number(value);
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0 || value > 0xffffffff) {
    throw invalidArgument(`an oid must be an integer between 1 and 4294967295, got ${String(value)}`);
  }
  return value;
}

/** @internal Validates a positive chunk or buffer size. */
export function toChunkSize(value: unknown, name: string, oid?: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0 || value > 1024 ** 3) {
    throw invalidArgument(`${name} must be an integer between 1 and 1 GiB, got ${String(value)}`, { oid });
  }
  return value;
}

/**
 * Formats a validated integer for the few statements that cannot take parameters (COPY).
 * Only digits and a sign can come out of it.
 * @internal
 */
export function integerLiteral(n: number): string {
  if (!Number.isSafeInteger(n)) throw invalidArgument(`not an integer: ${n}`);
  return String(n);
}
