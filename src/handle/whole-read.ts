import { byteaCopy } from "../protocol/copy-decoder";
import type { PgClient } from "../connection/source";
import { LargeObjectError } from "../errors";
import { MODE_FLAGS } from "./modes";

/**
 * Objects of at most this many bytes are read whole by the statement that measures them, when a
 * read-only handle opens on a connection of its own (see {@link readWholeIfSmall}).
 */
export const WHOLE_READ_LIMIT = 1024 * 1024;
/** Bytes per `lo_get` row, as in read streams. */
const PIECE_SIZE = 256 * 1024;

/** What {@link readWholeIfSmall} found: no row, a null oid, or an object with its bytes when it is small. */
export type WholeRead = { found: false } | { found: true; oid: null } | { found: true; oid: number; size: number; content: Buffer | undefined };

/**
 * One statement, which is its own snapshot and its own transaction: the object that `selection`
 * names (literal SQL of at most one row with an `oid` column, no parameters), its size, and its
 * bytes when there are at most {@link WHOLE_READ_LIMIT} of them (`content` is undefined for a
 * larger object). Rows come as binary COPY: first the oid and the size as two int8 (-1 for a null
 * oid), then the pieces.
 * @internal
 */
export async function readWholeIfSmall(client: PgClient, selection: string): Promise<WholeRead> {
  // COPY takes no parameters: the selection's values and every bound are validated literals.
  // Row -1 is the oid and size, row i the i-th piece: generate_series hands them out in order, as
  // a read stream's windows rely on too, and no sort keeps the server from sending each as it is made.
  const sql =
    `COPY (WITH s AS (${selection}),` +
    ` m AS (SELECT s.oid, lo_lseek64(lo_open(s.oid, ${MODE_FLAGS.r}), 0, 2) AS size FROM s)` +
    ` SELECT CASE WHEN p.i < 0 THEN int8send(coalesce(m.oid::int8, -1)) || int8send(coalesce(m.size, -1))` +
    ` ELSE lo_get(m.oid, p.i * ${PIECE_SIZE}, LEAST(${PIECE_SIZE}::int8, m.size - p.i * ${PIECE_SIZE})::int4) END` +
    ` FROM m, generate_series(-1::int8, CASE WHEN m.size <= ${WHOLE_READ_LIMIT} THEN (m.size - 1) / ${PIECE_SIZE} ELSE -1 END) AS p(i))` +
    " TO STDOUT (FORMAT binary)";
  const parts: Buffer[] = [];
  let total = 0;
  const { copy, decoder, unreadable } = byteaCopy(sql, (bytes) => {
    parts.push(bytes);
    total += bytes.length;
  });
  client.query(copy as unknown as Parameters<PgClient["query"]>[0]);
  await copy.done;
  const failure = unreadable();
  const all = Buffer.concat(parts, total);
  if (failure === undefined && decoder.done && all.length === 0) return { found: false };
  const oid = all.length >= 16 ? Number(all.readBigInt64BE(0)) : undefined;
  const size = all.length >= 16 ? Number(all.readBigInt64BE(8)) : -1;
  const content = all.subarray(16);
  const whole = size >= 0 && size <= WHOLE_READ_LIMIT;
  if (failure !== undefined || !decoder.done || oid === undefined || (oid >= 0 && size < 0) || content.length !== (whole ? size : 0)) {
    const why = failure instanceof Error ? failure.message : `${content.length} bytes for an object of ${size}`;
    throw new LargeObjectError("ERR_LO_CONNECTION", `unreadable COPY output: ${why}`, {
      ...(oid !== undefined && oid >= 0 ? { oid } : {}),
      ...(failure !== undefined ? { cause: failure } : {}),
    });
  }
  if (oid < 0) return { found: true, oid: null };
  return { found: true, oid, size, content: whole ? content : undefined };
}
