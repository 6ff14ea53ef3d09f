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

/** Resolves when `stream` has emitted 'close', with the error it was destroyed with, if any. */
export function closed(stream: NodeJS.EventEmitter): Promise<unknown> {
  return new Promise((resolve) => {
    let error: unknown;
    stream.on("error", (err: unknown) => (error = err));
    stream.on("close", () => resolve(error));
  });
}

/** Rejects when `promise` takes longer than `ms`: a leaked connection shows up as a hang. */
export function within<T>(ms: number, promise: Promise<T>, what = "the operation"): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
