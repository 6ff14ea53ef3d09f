import { ByteaCopyDecoder } from "../../src/protocol/copy-decoder";

const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** A binary COPY stream of one bytea column, as the server writes it. */
function copyStream(rows: Buffer[], extension = Buffer.alloc(0)): Buffer {
  const parts = [SIGNATURE, int32(0), int32(extension.length), extension];
  for (const row of rows) parts.push(int16(1), int32(row.length), row);
  parts.push(int16(-1));
  return Buffer.concat(parts);
}

function decode(chunks: Buffer[]): { bytes: Buffer; rows: number; done: boolean } {
  const out: Buffer[] = [];
  const decoder = new ByteaCopyDecoder((bytes) => out.push(Buffer.from(bytes)));
  for (const chunk of chunks) decoder.write(chunk);
  return { bytes: Buffer.concat(out), rows: decoder.rows, done: decoder.done };
}

const rows = [Buffer.from("hello"), Buffer.alloc(0), Buffer.from([0, 1, 2, 255, 254]), Buffer.from("x")];
const expected = Buffer.concat(rows);

test("decodes a stream given in one chunk", () => {
  expect(decode([copyStream(rows)])).toEqual({ bytes: expected, rows: 4, done: true });
});

test("decodes the same bytes whatever byte the stream is split at", () => {
  const whole = copyStream(rows, Buffer.from("ext!"));
  for (let at = 0; at <= whole.length; at += 1) {
    const result = decode([whole.subarray(0, at), whole.subarray(at)]);
    expect({ at, ...result }).toEqual({ at, bytes: expected, rows: 4, done: true });
  }
});

test("decodes a stream fed one byte at a time, and in every pair of split points", () => {
  const whole = copyStream(rows);
  const single = [...whole].map((byte) => Buffer.from([byte]));
  expect(decode(single)).toEqual({ bytes: expected, rows: 4, done: true });
  for (let a = 0; a <= whole.length; a += 1) {
    for (let b = a; b <= whole.length; b += 1) {
      const result = decode([whole.subarray(0, a), whole.subarray(a, b), whole.subarray(b)]);
      if (!result.bytes.equals(expected) || !result.done) throw new Error(`split at ${a} and ${b} decoded wrongly`);
    }
  }
});

test("an empty result (no rows) decodes to no bytes", () => {
  expect(decode([copyStream([])])).toEqual({ bytes: Buffer.alloc(0), rows: 0, done: true });
});

test("hands out payload bytes as views of the incoming chunk, without a copy", () => {
  const payload = Buffer.alloc(4096, 7);
  const whole = copyStream([payload]);
  const seen: Buffer[] = [];
  new ByteaCopyDecoder((bytes) => seen.push(bytes)).write(whole);
  expect(seen).toHaveLength(1);
  expect(seen[0]!.buffer).toBe(whole.buffer);
});

test("ignores bytes after the trailer and reports it is done", () => {
  const result = decode([Buffer.concat([copyStream(rows), Buffer.from("junk")])]);
  expect(result).toEqual({ bytes: expected, rows: 4, done: true });
});

test("is not done before the trailer arrives", () => {
  const whole = copyStream(rows);
  expect(decode([whole.subarray(0, whole.length - 1)]).done).toBe(false);
});

test("rejects a stream without the binary COPY signature", () => {
  const whole = copyStream(rows);
  whole[0] = "Q".charCodeAt(0);
  expect(() => decode([whole])).toThrow("not a binary COPY stream");
});

test("rejects rows of more than one column, and NULL fields", () => {
  const twoColumns = Buffer.concat([SIGNATURE, int32(0), int32(0), int16(2), int32(1), Buffer.from("a"), int32(1), Buffer.from("b"), int16(-1)]);
  expect(() => decode([twoColumns])).toThrow("expected one column per COPY row, got 2");
  const withNull = Buffer.concat([SIGNATURE, int32(0), int32(0), int16(1), int32(-1), int16(-1)]);
  expect(() => decode([withNull])).toThrow("unexpected NULL in COPY output");
});
