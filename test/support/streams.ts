import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Readable } from "node:stream";

/** Reads a stream to its end and returns every byte. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A Writable that keeps what it receives, for `pipeline()`. */
export function sink(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

/** Pipes `source` into a sink and returns what arrived. */
export async function drain(source: Readable): Promise<Buffer> {
  const out = sink();
  await pipeline(source, out.stream);
  return out.bytes();
}

/** The rejection of `promise` (fails the test when it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}
