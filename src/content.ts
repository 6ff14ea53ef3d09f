import { Readable } from "node:stream";
import { LargeObjectError } from "./errors";

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
 * Cuts a stream of chunks of any size into pieces of exactly `pieceSize` bytes (the last one
 * shorter). Chunks already that large pass through as views, without a copy.
 */
export class Rechunker {
  private parts: Buffer[] = [];
  private buffered = 0;

  constructor(readonly pieceSize: number) {}

  get pending(): number {
    return this.buffered;
  }

  /** Adds a chunk and returns the full pieces it completes. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length === 0) return [];
    this.parts.push(chunk);
    this.buffered += chunk.length;
    const pieces: Buffer[] = [];
    while (this.buffered >= this.pieceSize) pieces.push(this.take(this.pieceSize));
    return pieces;
  }

  /** What is left, as one piece, or undefined when nothing is. */
  flush(): Buffer | undefined {
    return this.buffered === 0 ? undefined : this.take(this.buffered);
  }

  private take(n: number): Buffer {
    const first = this.parts[0]!;
    if (first.length >= n) {
      this.consume(n);
      return first.subarray(0, n);
    }
    const piece = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const part = this.parts[0]!;
      const count = Math.min(part.length, n - filled);
      part.copy(piece, filled, 0, count);
      filled += count;
      this.consume(count);
    }
    return piece;
  }

  private consume(n: number): void {
    const first = this.parts[0]!;
    if (n === first.length) this.parts.shift();
    else this.parts[0] = first.subarray(n);
    this.buffered -= n;
  }
}

/** Feeds every piece of `data`, in order, to `write`; awaits each write before reading on. */
export async function forEachPiece(
  data: LargeObjectContent,
  pieceSize: number,
  write: (piece: Buffer) => Promise<void>,
): Promise<void> {
  const iterable = data !== null && typeof data === "object" && (Symbol.asyncIterator in data || Symbol.iterator in data);
  if (typeof data !== "string" && !(data instanceof Uint8Array) && !iterable) {
    throw new LargeObjectError(
      "ERR_LO_INVALID_VALUE",
      `content must be a Buffer, Uint8Array, string, Readable or (async) iterable of chunks, got ${data === null ? "null" : typeof data}`,
    );
  }
  const rechunker = new Rechunker(pieceSize);
  const chunks: AsyncIterable<unknown> | Iterable<unknown> =
    typeof data === "string" || data instanceof Uint8Array ? [data] : (data as AsyncIterable<unknown>);
  for await (const chunk of chunks) {
    for (const piece of rechunker.push(chunkToBuffer(chunk))) await write(piece);
  }
  const rest = rechunker.flush();
  if (rest !== undefined) await write(rest);
}
