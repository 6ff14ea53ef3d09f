import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { HttpError } from "./http-error";

/**
 * Passes an upload through unchanged while counting its bytes and hashing them, and fails with 413
 * as soon as it goes over the limit: the size and digest are known when the stream ends, without
 * reading the content back.
 */
export class ContentMeter extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash("sha256");

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      callback(new HttpError(413, `the upload is larger than the limit of ${this.maxBytes} bytes`));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  /** The SHA-256 of everything that went through, as lowercase hex (call once, after the end). */
  digest(): string {
    return this.hash.digest("hex");
  }
}
