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

/** @internal What {@link readAhead} found: the whole content, or content that goes on from where it stopped. */
export type ReadAhead = { whole: Buffer } | { rest: LargeObjectContent };

/**
 * Reads a stream or iterable of chunks until it ends or would hold more than `limit` bytes, so
 * that short streamed content can take the way of bytes in memory. What is read is copied (a
 * source may reuse its buffer once the next chunk is asked for), never more than `limit` bytes; a
 * longer source is handed on as content that yields those bytes, the chunk that did not fit, and
 * the rest of the source unread. Anything else is handed on as it is.
 * @internal
 */
export async function readAhead(content: LargeObjectContent, limit: number): Promise<ReadAhead> {
  if (typeof content === "string" || content instanceof Uint8Array || !isContent(content)) return { rest: content };
  const iterator: AsyncIterator<unknown> | Iterator<unknown> =
    Symbol.asyncIterator in content ? content[Symbol.asyncIterator]() : content[Symbol.iterator]();
  let head: Buffer | undefined;
  let filled = 0;
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) return { whole: head === undefined ? Buffer.alloc(0) : head.subarray(0, filled) };
    let chunk: Buffer;
    try {
      chunk = chunkToBuffer(next.value);
    } catch (err) {
      // As `for await` does when its body throws: the source is told to stop.
      await Promise.resolve(iterator.return?.()).catch(() => undefined);
      throw err;
    }
    if (filled + chunk.length > limit) return { rest: replay(head?.subarray(0, filled), chunk, iterator) };
    head ??= Buffer.allocUnsafe(limit);
    filled += chunk.copy(head, filled);
  }
}

/** The chunks {@link readAhead} took, then the rest of the source; stopping early stops the source. */
async function* replay(
  head: Buffer | undefined,
  current: Buffer,
  iterator: AsyncIterator<unknown> | Iterator<unknown>,
): AsyncGenerator<Uint8Array | string, void, undefined> {
  let settled = false;
  try {
    if (head !== undefined && head.length > 0) yield head;
    yield current;
    for (;;) {
      let next: IteratorResult<unknown>;
      try {
        next = await iterator.next();
      } catch (err) {
        settled = true;
        throw err;
      }
      if (next.done === true) {
        settled = true;
        return;
      }
      // Whoever writes the chunks refuses those that are not bytes, with its typed error.
      yield next.value as Uint8Array | string;
    }
  } finally {
    if (!settled) await iterator.return?.();
  }
}
