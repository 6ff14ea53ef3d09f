import { LargeObjectError, isConnectionFailure, isLargeObjectError, toLargeObjectError } from "../../src/errors";

function serverError(code: string, message = "server says no"): Error {
  return Object.assign(new Error(message), { code });
}

test.each([
  ["42704", "ERR_LO_NOT_FOUND"],
  ["42501", "ERR_LO_PERMISSION_DENIED"],
  ["22023", "ERR_LO_INVALID_ARGUMENT"],
  ["57014", "ERR_LO_TIMEOUT"],
  ["55P03", "ERR_LO_TIMEOUT"],
  ["40001", "ERR_LO_CONFLICT"],
  ["40P01", "ERR_LO_CONFLICT"],
  ["25P02", "ERR_LO_TRANSACTION"],
  ["08006", "ERR_LO_CONNECTION"],
  ["57P01", "ERR_LO_CONNECTION"],
  ["53200", "ERR_LO_DATABASE"],
  ["XX000", "ERR_LO_DATABASE"],
])("SQLSTATE %s becomes %s, with the original error as cause and the details kept", (state, code) => {
  const cause = serverError(state);
  const err = toLargeObjectError(cause, { oid: 42, offset: 7 });
  expect(err).toBeInstanceOf(LargeObjectError);
  expect(err).toMatchObject({ code, oid: 42, offset: 7 });
  expect(err.cause).toBe(cause);
});

test("socket-level failures without a SQLSTATE are connection failures", () => {
  for (const message of ["Connection terminated unexpectedly", "read ECONNRESET", "Client has encountered a connection error and is not queryable"]) {
    expect(isConnectionFailure(new Error(message))).toBe(true);
    expect(toLargeObjectError(new Error(message)).code).toBe("ERR_LO_CONNECTION");
  }
  expect(isConnectionFailure(new Error("syntax error"))).toBe(false);
});

test("a descriptor used outside its transaction is ERR_LO_TRANSACTION", () => {
  expect(toLargeObjectError(serverError("42704", "invalid large-object descriptor: 0")).code).toBe("ERR_LO_TRANSACTION");
});

test("a LargeObjectError passes through unchanged, and isLargeObjectError checks the code", () => {
  const original = new LargeObjectError("ERR_LO_MODE", "no");
  expect(toLargeObjectError(original, { oid: 1 })).toBe(original);
  expect(isLargeObjectError(original)).toBe(true);
  expect(isLargeObjectError(original, "ERR_LO_MODE")).toBe(true);
  expect(isLargeObjectError(original, "ERR_LO_CLOSED")).toBe(false);
  expect(isLargeObjectError(new Error("no"))).toBe(false);
  expect(toLargeObjectError("a string").code).toBe("ERR_LO_DATABASE");
});

test("a concurrent write of the same page (XX000 'tuple concurrently updated') is ERR_LO_CONFLICT", () => {
  expect(toLargeObjectError(serverError("XX000", "tuple concurrently updated")).code).toBe("ERR_LO_CONFLICT");
});
