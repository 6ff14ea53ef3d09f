import { Rechunker, chunkToBuffer, forEachPiece, isContent, singlePiece } from "../../src/content";
import { Readable } from "node:stream";
import { LargeObjectError } from "../../src/errors";

function bytes(length: number, start = 0): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (start + i) & 0xff));
}

function rechunk(pieceSize: number, chunks: Buffer[]): Buffer[] {
  const rechunker = new Rechunker(pieceSize);
  const pieces = chunks.flatMap((chunk) => rechunker.push(chunk));
  const rest = rechunker.flush();
  return rest === undefined ? pieces : [...pieces, rest];
}

test("cuts chunks of any size into pieces of exactly pieceSize, the last one shorter", () => {
  const data = bytes(1000);
  for (const pieceSize of [1, 7, 64, 999, 1000, 1001]) {
    for (const chunkSize of [1, 3, 64, 333, 1000]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < data.length; at += chunkSize) chunks.push(data.subarray(at, at + chunkSize));
      const pieces = rechunk(pieceSize, chunks);
      expect(Buffer.concat(pieces).equals(data)).toBe(true);
      pieces.slice(0, -1).forEach((piece) => expect(piece.length).toBe(pieceSize));
      expect(pieces.at(-1)!.length).toBe(data.length % pieceSize || Math.min(pieceSize, data.length));
    }
  }
});

test("keeps the byte order across every split of the input", () => {
  const data = bytes(50);
  for (let a = 0; a <= data.length; a += 1) {
    for (let b = a; b <= data.length; b += 1) {
      const pieces = rechunk(16, [data.subarray(0, a), data.subarray(a, b), data.subarray(b)]);
      if (!Buffer.concat(pieces).equals(data)) throw new Error(`splits ${a}/${b} reordered bytes`);
      if (pieces.slice(0, -1).some((p) => p.length !== 16)) throw new Error(`splits ${a}/${b} gave a short piece`);
    }
  }
});

test("passes a chunk already as large as a piece through as a view, without a copy", () => {
  const big = bytes(64);
  const pieces = rechunk(32, [big]);
  expect(pieces).toHaveLength(2);
  expect(pieces[0]!.buffer).toBe(big.buffer);
  expect(pieces[1]!.buffer).toBe(big.buffer);
});

test("tracks what is pending, ignores empty chunks, and flushes nothing when nothing is left", () => {
  const rechunker = new Rechunker(10);
  expect(rechunker.push(Buffer.alloc(0))).toEqual([]);
  expect(rechunker.push(bytes(4))).toEqual([]);
  expect(rechunker.pending).toBe(4);
  expect(rechunker.push(bytes(6, 4))).toEqual([bytes(10)]);
  expect(rechunker.pending).toBe(0);
  expect(rechunker.flush()).toBeUndefined();
});

test("forEachPiece feeds strings, Buffers, iterables, async iterables and Readables in order", async () => {
  const data = bytes(100);
  const sources = [
    data,
    new Uint8Array(data),
    [data.subarray(0, 30), data.subarray(30)],
    Readable.from([data.subarray(0, 5), data.subarray(5, 77), data.subarray(77)]),
    (async function* () {
      yield data.subarray(0, 50);
      yield new Uint8Array(data.subarray(50));
    })(),
  ];
  for (const source of sources) {
    const pieces: Buffer[] = [];
    await forEachPiece(source, 40, async (piece) => void pieces.push(Buffer.from(piece)));
    expect(pieces.map((p) => p.length)).toEqual([40, 40, 20]);
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
  }
  const text: Buffer[] = [];
  await forEachPiece("héllo", 2, async (piece) => void text.push(piece));
  expect(Buffer.concat(text).toString("utf8")).toBe("héllo");
});

test("content made of anything but bytes or text is refused with ERR_LO_INVALID_VALUE", async () => {
  expect(() => chunkToBuffer(42)).toThrow(LargeObjectError);
  const err = await forEachPiece(
    (async function* () {
      yield { not: "bytes" } as unknown as Uint8Array;
    })(),
    10,
    async () => undefined,
  ).catch((e: unknown) => e);
  expect(err).toMatchObject({ code: "ERR_LO_INVALID_VALUE" });
});

test("isContent and singlePiece tell content from other values", () => {
  expect(isContent("x")).toBe(true);
  expect(isContent(Buffer.alloc(1))).toBe(true);
  expect(isContent(Readable.from([]))).toBe(true);
  expect(isContent([Buffer.alloc(1)])).toBe(false);
  expect(isContent(12345)).toBe(false);
  expect(isContent(null)).toBe(false);
  expect(singlePiece("abc", 3)).toEqual(Buffer.from("abc"));
  expect(singlePiece("abcd", 3)).toBeUndefined();
  expect(singlePiece(Readable.from([]), 3)).toBeUndefined();
});
