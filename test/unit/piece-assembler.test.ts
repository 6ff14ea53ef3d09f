import { chunkToBuffer, isContent, singlePiece } from "../../src/handle/content";
import { PieceAssembler, forEachPiece } from "../../src/handle/writes";
import { Readable } from "node:stream";
import { LargeObjectError } from "../../src";

function bytes(length: number, start = 0): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (start + i) & 0xff));
}

/** Pieces as the writer saw them, copied: the assembler reuses its buffer once a write resolves. */
async function assemble(pieceSize: number, chunks: Buffer[]): Promise<Buffer[]> {
  const pieces: Buffer[] = [];
  const assembler = new PieceAssembler(pieceSize, async (piece) => void pieces.push(Buffer.from(piece)));
  for (const chunk of chunks) await assembler.push(chunk);
  await assembler.flush();
  return pieces;
}

test("cuts chunks of any size into pieces of exactly pieceSize, the last one shorter", async () => {
  const data = bytes(1000);
  for (const pieceSize of [1, 7, 64, 999, 1000, 1001]) {
    for (const chunkSize of [1, 3, 64, 333, 1000]) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < data.length; at += chunkSize) chunks.push(data.subarray(at, at + chunkSize));
      const pieces = await assemble(pieceSize, chunks);
      expect(Buffer.concat(pieces).equals(data)).toBe(true);
      pieces.slice(0, -1).forEach((piece) => expect(piece.length).toBe(pieceSize));
      expect(pieces.at(-1)!.length).toBe(data.length % pieceSize || Math.min(pieceSize, data.length));
    }
  }
});

test("keeps the byte order across every split of the input", async () => {
  const data = bytes(50);
  for (let a = 0; a <= data.length; a += 1) {
    for (let b = a; b <= data.length; b += 1) {
      const pieces = await assemble(16, [data.subarray(0, a), data.subarray(a, b), data.subarray(b)]);
      if (!Buffer.concat(pieces).equals(data)) throw new Error(`splits ${a}/${b} reordered bytes`);
      if (pieces.slice(0, -1).some((p) => p.length !== 16)) throw new Error(`splits ${a}/${b} gave a short piece`);
    }
  }
});

test("passes aligned chunks through as views, and gathers the rest in one buffer reused for every piece", async () => {
  const big = bytes(64);
  const seen: Buffer[] = [];
  const assembler = new PieceAssembler(32, async (piece) => void seen.push(piece));
  await assembler.push(big);
  expect(seen.map((p) => [p.buffer, p.byteOffset])).toEqual([
    [big.buffer, big.byteOffset],
    [big.buffer, big.byteOffset + 32],
  ]);
  for (let i = 0; i < 8; i++) await assembler.push(bytes(8, i));
  expect(seen).toHaveLength(4);
  // The same memory each time: nothing is allocated per piece.
  expect(seen[2]!.buffer).toBe(seen[3]!.buffer);
  expect(seen[2]!.byteOffset).toBe(seen[3]!.byteOffset);
});

test("tracks what is pending, ignores empty chunks, and flushes nothing when nothing is left", async () => {
  const written: Buffer[] = [];
  const assembler = new PieceAssembler(10, async (piece) => void written.push(Buffer.from(piece)));
  await assembler.push(Buffer.alloc(0));
  await assembler.push(bytes(4));
  expect(assembler.pending).toBe(4);
  expect(written).toEqual([]);
  await assembler.push(bytes(6, 4));
  expect(written).toEqual([bytes(10)]);
  expect(assembler.pending).toBe(0);
  await assembler.flush();
  expect(written).toHaveLength(1);
});

test("with first pieces, cuts first.size pieces until first.bytes are out, then pieceSize, over any chunking", async () => {
  const data = bytes(1000);
  const first = { size: 16, bytes: 100 };
  for (const chunkSize of [1, 7, 16, 64, 333, 1000]) {
    const pieces: Buffer[] = [];
    const assembler = new PieceAssembler(64, async (piece) => void pieces.push(Buffer.from(piece)), first);
    for (let at = 0; at < data.length; at += chunkSize) await assembler.push(data.subarray(at, at + chunkSize));
    await assembler.flush();
    expect(Buffer.concat(pieces).equals(data)).toBe(true);
    // 7 x 16 = 112 >= 100: the eighth piece is the first of 64 bytes; 1000 - 112 = 888 = 13 x 64 + 56.
    expect(pieces.map((p) => p.length)).toEqual([...Array(7).fill(16), ...Array(13).fill(64), 56]);
  }
});

test("forEachPiece passes first pieces on, and a source shorter than first.bytes goes out in first.size pieces only", async () => {
  const data = bytes(50);
  const pieces: Buffer[] = [];
  await forEachPiece(data, 40, async (piece) => void pieces.push(Buffer.from(piece)), { size: 8, bytes: 64 });
  expect(pieces.map((p) => p.length)).toEqual([8, 8, 8, 8, 8, 8, 2]);
  expect(Buffer.concat(pieces).equals(data)).toBe(true);
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
  await forEachPiece("héllo", 2, async (piece) => void text.push(Buffer.from(piece)));
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
