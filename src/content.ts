import { Readable } from "node:stream";
import { LargeObjectError } from "./errors";
import { PieceAssembler, type FirstPieces } from "./piece-assembler";

/** Content a large object can be created or filled from. */
export type LargeObjectContent =
  | Buffer
  | Uint8Array
  | string
  | Readable
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array>;

/** Whether `value` is content (as opposed to an oid, null or undefined). */
export function isContent(value: unknown): value is LargeObjectContent {
  if (typeof value === "string" || value instanceof Uint8Array || value instanceof Readable) return true;
  if (value === null || typeof value !== "object") return false;
  return Symbol.asyncIterator in value || (Symbol.iterator in value && !Array.isArray(value));
}

/** A Buffer view of a chunk, or a typed error for anything that is not bytes. */
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

/** The whole content as one Buffer when it is already in memory and no longer than `max`. */
export function singlePiece(data: LargeObjectContent, max: number): Buffer | undefined {
  if (typeof data === "string" || data instanceof Uint8Array) {
    const buffer = chunkToBuffer(data);
    return buffer.length <= max ? buffer : undefined;
  }
  return undefined;
}

/**
 * Feeds every piece of `data` (`pieceSize` bytes, the last one shorter; `first.size` bytes up to
 * `first.bytes`), in order, to `write`, and awaits each write before reading on. Pieces are views
 * of one reused buffer, or of the caller's chunks: `write` must be done with a piece when it resolves.
 */
export async function forEachPiece(
  data: LargeObjectContent,
  pieceSize: number,
  write: (piece: Buffer) => Promise<void>,
  first?: FirstPieces,
): Promise<void> {
  const iterable = data !== null && typeof data === "object" && (Symbol.asyncIterator in data || Symbol.iterator in data);
  if (typeof data !== "string" && !(data instanceof Uint8Array) && !iterable) {
    throw new LargeObjectError(
      "ERR_LO_INVALID_VALUE",
      `content must be a Buffer, Uint8Array, string, Readable or (async) iterable of chunks, got ${data === null ? "null" : typeof data}`,
    );
  }
  const pieces = new PieceAssembler(pieceSize, write, first);
  const chunks: AsyncIterable<unknown> | Iterable<unknown> =
    typeof data === "string" || data instanceof Uint8Array ? [data] : (data as AsyncIterable<unknown>);
  for await (const chunk of chunks) await pieces.push(chunkToBuffer(chunk));
  await pieces.flush();
}
