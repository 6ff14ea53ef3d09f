import type { TransactionScope } from "../connection/transaction-scope";
import { afterSteps, compressionStep, stepsItem } from "./compression";

interface Request {
  data: Buffer;
  resolve(oid: number): void;
  reject(err: unknown): void;
}

/** Content bytes per statement of a batch. */
const BATCH_BYTES = 32 * 1024 * 1024;

/** Requests that go in one statement, their content bytes so far, and the step choosing their pages' compression. */
interface Batch {
  requests: Request[];
  bytes: number;
  step: string | undefined;
}

/** Per client, the batch that is waiting for its turn in the client's queue (not sent yet). */
const open = new WeakMap<object, Batch>();

/**
 * Creates an object holding `data` with `lo_from_bytea`, in one statement with every other such
 * request made on the same client before this one's turn in the client's queue comes: creates
 * issued together on one transaction (`Promise.all`) cost one round trip, while a create on an
 * idle client goes out at once. Only for scopes inside a transaction, which a failure aborts as a
 * whole anyway.
 * @internal
 */
export async function createFromBytes(scope: TransactionScope, data: Buffer): Promise<number> {
  // Known before the batch is joined: asking (once per connection) needs the client's queue, which
  // a batch holds while it is sent.
  const step = await compressionStep(scope);
  return new Promise<number>((resolve, reject) => {
    const waiting = open.get(scope.client);
    if (waiting !== undefined && waiting.bytes + data.length <= BATCH_BYTES) {
      waiting.requests.push({ data, resolve, reject });
      waiting.bytes += data.length;
      return;
    }
    const batch: Batch = { requests: [{ data, resolve, reject }], bytes: data.length, step };
    open.set(scope.client, batch);
    scope
      .exclusive(async () => {
        if (open.get(scope.client) === batch) open.delete(scope.client);
        return send(scope, batch);
      })
      .then(
        (oids) => batch.requests.forEach((request, n) => request.resolve(oids[n]!)),
        (err: unknown) => {
          if (open.get(scope.client) === batch) open.delete(scope.client);
          batch.requests.forEach((request) => request.reject(err));
        },
      );
  });
}

/** One statement for the batch; already holding the client's turn, so it goes straight to the client. */
async function send(scope: TransactionScope, { requests: batch, step }: Batch): Promise<number[]> {
  if (batch.length === 1) {
    const result = await scope.client.query<{ oid: number }>(afterSteps("SELECT lo_from_bytea(0, $1) AS oid", [step]), [batch[0]!.data]);
    return [result.rows[0]!.oid];
  }
  const before = stepsItem([step]);
  // Every content travels in one binary parameter (an array of bytea would go hex-encoded) and is
  // cut apart on the server; the oids come back in the order of the requests.
  const starts: number[] = [];
  const lengths: number[] = [];
  let next = 1;
  for (const { data } of batch) {
    starts.push(next);
    lengths.push(data.length);
    next += data.length;
  }
  const result = await scope.client.query<{ oid: number }>(
    `SELECT lo_from_bytea(0, substring($1::bytea FROM start FOR len)) AS oid
       FROM unnest($2::int4[], $3::int4[]) WITH ORDINALITY AS i(start, len, ord)${before === undefined ? "" : `, ${before}`}
      ORDER BY ord`,
    [Buffer.concat(batch.map((r) => r.data), next - 1), starts, lengths],
  );
  return result.rows.map((row) => row.oid);
}
