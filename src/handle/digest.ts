import { createHash, type Hash } from "node:crypto";
import { chunkToBuffer, isContent, type LargeObjectContent } from "./content";

/** Bytes hashed per step of content already in memory, so one large Buffer does not hold the event loop. */
const HASH_STEP = 1024 * 1024;

/**
 * The size and SHA-256 of content as it passes on its way to the server: each chunk is hashed once,
 * when it is read, and never kept.
 * @internal
 */
export class ContentDigest {
  size = 0;
  private readonly hash: Hash = createHash("sha256");
  private result: string | undefined;

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }

  /** The digest as 64 lowercase hex digits; the content must be complete. */
  hex(): string {
    this.result ??= this.hash.digest("hex");
    return this.result;
  }
}

/**
 * `content` as it will be written, with every byte going through `digest` on the way. Bytes in
 * memory up to a step are hashed at once and passed on as they are (so small writes stay single
 * statements); larger ones and streams are hashed chunk by chunk as the writer pulls them.
 * @internal
 */
export function digesting(content: LargeObjectContent, digest: ContentDigest): LargeObjectContent {
  // Anything else is refused with a typed error by the writer itself.
  if (!isContent(content)) return content;
  if (typeof content === "string" || content instanceof Uint8Array) {
    const bytes = chunkToBuffer(content);
    if (bytes.length <= HASH_STEP) {
      digest.update(bytes);
      return bytes;
    }
    return (function* steps() {
      for (let start = 0; start < bytes.length; start += HASH_STEP) {
        const step = bytes.subarray(start, start + HASH_STEP);
        digest.update(step);
        yield step;
      }
    })();
  }
  const source = content;
  return (async function* chunks() {
    for await (const chunk of source as AsyncIterable<unknown>) {
      const bytes = chunkToBuffer(chunk);
      digest.update(bytes);
      yield bytes;
    }
  })();
}
