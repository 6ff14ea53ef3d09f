import { createHash } from "node:crypto";
import { Readable } from "node:stream";

/**
 * The benchmark's content: byte p of every object is PATTERN[p mod PATTERN.length]. The pattern's
 * length is not a power of two, so the bytes of two 1 MiB pieces never coincide and a piece put at
 * the wrong offset fails the hash check.
 */
const PATTERN = makePattern(1024 * 1024 + 4093, 0x9e3779b9);

function makePattern(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0;
  for (let i = 0; i < length; i++) {
    // xorshift32: fast, deterministic, and not compressible (TOAST and WAL compression stay out of it)
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Chunk size of the generated stream, like a file or socket would hand over. */
export const SOURCE_CHUNK = 64 * 1024;

/** The largest chunk a content stream hands out (pg-large-object at 1 MiB buffers is fed 1 MiB chunks). */
const MAX_SOURCE_CHUNK = 1024 * 1024;

/**
 * The pattern followed by its own first MiB, so that every chunk, even one across the pattern's
 * end, is a view: the source allocates nothing while a method runs, and its garbage (a 64 KiB copy
 * for every MiB written, freed only by the next GC) does not count in the method's peak RSS.
 */
const EXTENDED = Buffer.concat([PATTERN, PATTERN.subarray(0, MAX_SOURCE_CHUNK)]);

/** A Readable of `size` deterministic bytes in chunks of `chunkSize` (64 KiB, like a file stream). */
export function contentStream(size: number, chunkSize = SOURCE_CHUNK): Readable {
  if (chunkSize > MAX_SOURCE_CHUNK) throw new Error(`source chunks are at most ${MAX_SOURCE_CHUNK} bytes`);
  let position = 0;
  return new Readable({
    highWaterMark: chunkSize,
    read() {
      if (position >= size) {
        this.push(null);
        return;
      }
      const length = Math.min(chunkSize, size - position);
      const start = position % PATTERN.length;
      position += length;
      this.push(EXTENDED.subarray(start, start + length));
    },
  });
}

/** The whole content as one Buffer (for the whole-value bytea method, which needs it in memory). */
export function contentBuffer(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let offset = 0; offset < size; offset += PATTERN.length) {
    PATTERN.copy(out, offset, 0, Math.min(PATTERN.length, size - offset));
  }
  return out;
}

/** The sha256 of `size` bytes of content. */
export async function contentHash(size: number): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of contentStream(size)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Bytes per digest of {@link pieceDigests}. */
export const DIGEST_PIECE = 16 * 1024 * 1024;

/**
 * md5 of every 16 MiB piece of the content, concatenated: what the server computes over a written
 * object with `lo_get` piece by piece, so that checking a write costs the client no memory.
 */
export async function pieceDigests(size: number): Promise<string> {
  let out = "";
  let hash = createHash("md5");
  let filled = 0;
  for await (const chunk of contentStream(size, SOURCE_CHUNK)) {
    let rest = chunk as Buffer;
    while (rest.length > 0) {
      const take = Math.min(rest.length, DIGEST_PIECE - filled);
      hash.update(rest.subarray(0, take));
      filled += take;
      rest = rest.subarray(take);
      if (filled === DIGEST_PIECE) {
        out += hash.digest("hex");
        hash = createHash("md5");
        filled = 0;
      }
    }
  }
  if (filled > 0 || size === 0) out += hash.digest("hex");
  return out;
}

/** Parses "1M", "64M", "1G", "1536K" or a byte count. */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?$/i.exec(text.trim());
  if (match === null) throw new Error(`unreadable size ${JSON.stringify(text)}: use e.g. 1M, 64M, 1G`);
  const scale = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  return Math.round(Number(match[1]) * scale);
}

/** "64 MiB" for a byte count. */
export function formatSize(bytes: number): string {
  if (bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3} GiB`;
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}
