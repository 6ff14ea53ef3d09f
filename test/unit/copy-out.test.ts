import { EventEmitter } from "node:events";
import { CopyOut } from "../../src/protocol/copy-out";

/** A backend message: type byte, length (itself included), body. */
function message(type: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const bytes = typeof body === "string" ? Buffer.from(`${body}\0`) : body;
  const header = Buffer.alloc(5);
  header.write(type, 0, "latin1");
  header.writeUInt32BE(bytes.length + 4, 1);
  return Buffer.concat([header, bytes]);
}

const payloads = [Buffer.from("first row"), Buffer.alloc(0), Buffer.from([0, 1, 2, 255]), Buffer.from("x".repeat(300))];
const copyOutResponse = message("H", Buffer.from([1, 0, 1, 0, 1]));
const notice = message("N", "Mwatch out");
const afterCopy = Buffer.concat([message("C", "COPY 4"), message("Z", Buffer.from("T"))]);
const copyDone = message("c");
const error = message("E", "SERROR\0C57014\0Mcanceling statement due to statement timeout\0");

/** A socket with pg's parser as its one reader; records what that reader is given and pause/resume calls. */
class FakeSocket extends EventEmitter {
  readonly pgSaw: Buffer[] = [];
  readonly calls: string[] = [];
  constructor() {
    super();
    this.on("data", (chunk: Buffer) => this.pgSaw.push(Buffer.from(chunk)));
  }
  pause(): this {
    this.calls.push("pause");
    return this;
  }
  resume(): this {
    this.calls.push("resume");
    return this;
  }
}

function run(chunks: Buffer[], before?: (copy: CopyOut) => void) {
  const socket = new FakeSocket();
  const delivered: Buffer[] = [];
  const copy = new CopyOut("COPY x TO STDOUT", (bytes) => delivered.push(Buffer.from(bytes)));
  before?.(copy);
  const sent: string[] = [];
  const failure = copy.submit({ stream: socket as unknown as NodeJS.ReadableStream, query: (text) => sent.push(text) });
  for (const chunk of chunks) socket.emit("data", chunk);
  return { socket, delivered: Buffer.concat(delivered), pg: Buffer.concat(socket.pgSaw), sent, failure, readers: socket.listenerCount("data") };
}

/** Every way of cutting `whole` in two, then in three. */
function* splits(whole: Buffer): Generator<Buffer[]> {
  for (let a = 0; a <= whole.length; a++) yield [whole.subarray(0, a), whole.subarray(a)];
  for (let a = 1; a < whole.length; a += 13) {
    for (let b = a; b <= whole.length; b += 11) yield [whole.subarray(0, a), whole.subarray(a, b), whole.subarray(b)];
  }
}

test("hands on every CopyData payload and gives pg exactly what follows CopyDone, wherever the chunks are cut", () => {
  const whole = Buffer.concat([copyOutResponse, message("d", payloads[0]), notice, ...payloads.slice(1).map((p) => message("d", p)), copyDone, afterCopy]);
  for (const chunks of splits(whole)) {
    const result = run(chunks);
    const cuts = chunks.map((c) => c.length);
    expect({ cuts, delivered: result.delivered, pg: result.pg, readers: result.readers }).toEqual({
      cuts,
      delivered: Buffer.concat(payloads),
      pg: afterCopy,
      readers: 1,
    });
    expect(result.sent).toEqual(["COPY x TO STDOUT"]);
  }
});

test("gives pg an ErrorResponse from its first byte, wherever the chunks are cut", () => {
  const whole = Buffer.concat([copyOutResponse, message("d", payloads[0]), error, message("Z", Buffer.from("E"))]);
  for (const chunks of splits(whole)) {
    const result = run(chunks);
    const cuts = chunks.map((c) => c.length);
    expect({ cuts, delivered: result.delivered, pg: result.pg }).toEqual({
      cuts,
      delivered: payloads[0],
      pg: Buffer.concat([error, message("Z", Buffer.from("E"))]),
    });
  }
});

test("a pause before the COPY starts takes effect when it does, and pg gets a flowing socket back", () => {
  const whole = Buffer.concat([copyOutResponse, message("d", payloads[0]), copyDone, afterCopy]);
  const result = run([whole], (copy) => copy.pause());
  expect(result.socket.calls).toEqual(["pause", "resume"]);
  expect(result.pg).toEqual(afterCopy);
});

test("refuses a connection whose socket has no single reader", () => {
  const socket = new EventEmitter();
  const copy = new CopyOut("COPY x TO STDOUT", () => undefined);
  const failure = copy.submit({ stream: socket as unknown as NodeJS.ReadableStream, query: () => undefined });
  expect(failure).toBeInstanceOf(Error);
});

test("settles at ReadyForQuery, or with the error pg reports, and tells pg's callback once", async () => {
  const told: unknown[] = [];
  const ok = new CopyOut("COPY x TO STDOUT", () => undefined);
  ok.callback = (err) => told.push(err);
  ok.handleReadyForQuery();
  ok.handleReadyForQuery();
  await expect(ok.done).resolves.toBeUndefined();
  const failed = new CopyOut("COPY x TO STDOUT", () => undefined);
  failed.callback = (err) => told.push(err);
  const err = new Error("connection lost");
  failed.handleError(err);
  await expect(failed.done).rejects.toBe(err);
  expect(told).toEqual([null, err]);
});
