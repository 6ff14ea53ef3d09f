import { Readable } from "node:stream";
import { LargeObjectError } from "../errors";

/** Content a large object can be created or filled from. */
export type LargeObjectContent =
  | Buffer
  | Uint8Array
  | string
  | Readable
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array>;

/** @internal Whether `value` is content (as opposed to an oid, null or undefined). */
export function isContent(value: unknown): value is LargeObjectContent {
  if (typeof value === "string" || value instanceof Uint8Array || value instanceof Readable) return true;
  if (value === null || typeof value !== "object") return false;
  return Symbol.asyncIterator in value || (Symbol.iterator in value && !Array.isArray(value));
}

/** @internal A Buffer view of a chunk, or a typed error for anything that is not bytes. */
export function chunkToBuffer(chunk: unknown, oid?: number): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === "string") return Buffer.from(chunk, "utf8");
  throw new LargeObjectError(
    "ERR_LO_INVALID_VALUE",
    `a large object's content must be made of Buffers, Uint8Arrays or strings, got ${chunk === null ? "null" : typeof chunk}`,
    oid === undefined ? {} : { oid },
  );
}

/** @internal The whole content as one Buffer when it is already in memory and no longer than `max`. */
export function singlePiece(data: LargeObjectContent, max: number): Buffer | undefined {
  if (typeof data === "string" || data instanceof Uint8Array) {
    const buffer = chunkToBuffer(data);
    return buffer.length <= max ? buffer : undefined;
  }
  return undefined;
}
