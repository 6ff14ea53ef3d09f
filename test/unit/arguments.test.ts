import { MAX_LARGE_OBJECT_SIZE, integerLiteral, toChunkSize, toOffset, toOid, toSignedOffset } from "../../src/validation";
import { LargeObjectError } from "../../src";

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof LargeObjectError ? err.code : `not a LargeObjectError: ${String(err)}`;
  }
  return undefined;
}

test("offsets: non-negative safe integers or bigints up to 4 TB", () => {
  expect(toOffset(0, "offset")).toBe(0);
  expect(toOffset(3 * 1024 ** 3, "offset")).toBe(3 * 1024 ** 3);
  expect(toOffset(5n * 1024n ** 3n, "offset")).toBe(5 * 1024 ** 3);
  expect(toOffset(MAX_LARGE_OBJECT_SIZE, "offset")).toBe(MAX_LARGE_OBJECT_SIZE);
  for (const bad of [-1, -1n, 1.5, NaN, Infinity, MAX_LARGE_OBJECT_SIZE + 1, BigInt(MAX_LARGE_OBJECT_SIZE) + 1n, "10", null, undefined]) {
    expect(code(() => toOffset(bad, "offset"))).toBe("ERR_LO_INVALID_ARGUMENT");
  }
});

test("an offset error names the argument and carries the oid", () => {
  try {
    toOffset(-5, "start", 1234);
    throw new Error("no error");
  } catch (err) {
    expect(err).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT", oid: 1234 });
    expect((err as Error).message).toContain("start");
  }
});

test("seek distances may be negative but must be integers within 4 TB", () => {
  expect(toSignedOffset(-10, "offset")).toBe(-10);
  expect(toSignedOffset(-10n, "offset")).toBe(-10);
  for (const bad of [0.5, NaN, -Infinity, -(MAX_LARGE_OBJECT_SIZE + 1), "1"]) {
    expect(code(() => toSignedOffset(bad, "offset"))).toBe("ERR_LO_INVALID_ARGUMENT");
  }
});

test("oids: unsigned 32-bit integers other than 0, also above 2^31 and as digit strings", () => {
  expect(toOid(1)).toBe(1);
  expect(toOid(2 ** 31 + 5)).toBe(2 ** 31 + 5);
  expect(toOid(0xffffffff)).toBe(0xffffffff);
  expect(toOid("3000000000")).toBe(3000000000);
  expect(toOid(3000000000n)).toBe(3000000000);
  for (const bad of [0, -1, 1.5, NaN, 2 ** 32, "abc", "-1", "", null, undefined, {}]) {
    expect(code(() => toOid(bad))).toBe("ERR_LO_INVALID_ARGUMENT");
  }
});

test("chunk sizes: integers between 1 byte and 1 GiB", () => {
  expect(toChunkSize(1, "chunkSize")).toBe(1);
  expect(toChunkSize(1024 ** 3, "chunkSize")).toBe(1024 ** 3);
  for (const bad of [0, -1, 1.5, NaN, 1024 ** 3 + 1, "1"]) {
    expect(code(() => toChunkSize(bad, "chunkSize"))).toBe("ERR_LO_INVALID_ARGUMENT");
  }
});

test("integer literals only ever contain digits and a sign", () => {
  expect(integerLiteral(-42)).toBe("-42");
  expect(integerLiteral(3 * 1024 ** 3)).toBe("3221225472");
  expect(code(() => integerLiteral(1.5))).toBe("ERR_LO_INVALID_ARGUMENT");
  expect(code(() => integerLiteral(NaN))).toBe("ERR_LO_INVALID_ARGUMENT");
});
