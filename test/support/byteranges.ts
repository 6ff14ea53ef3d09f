/** One part of a multipart/byteranges body. */
export interface BytePart {
  type: string;
  start: number;
  end: number;
  total: number;
  data: Buffer;
}

/**
 * Reads a multipart/byteranges body strictly by its grammar (each delimiter where it must be, each
 * part's data exactly its range's length, nothing after the close): throws where it does not hold.
 */
export function readByteranges(body: Buffer, contentType: string): BytePart[] {
  const boundary = /^multipart\/byteranges; boundary=(.+)$/.exec(contentType)?.[1];
  if (boundary === undefined) throw new Error(`not multipart/byteranges: ${contentType}`);
  const parts: BytePart[] = [];
  let at = 0;
  for (;;) {
    const delimiter = `${parts.length === 0 ? "" : "\r\n"}--${boundary}`;
    if (body.toString("latin1", at, at + delimiter.length) !== delimiter) throw new Error(`no delimiter at ${at}`);
    at += delimiter.length;
    if (body.toString("latin1", at, at + 4) === "--\r\n") {
      if (at + 4 !== body.length) throw new Error("bytes after the closing delimiter");
      return parts;
    }
    const headEnd = body.indexOf("\r\n\r\n", at);
    const head = body.toString("latin1", at, headEnd);
    const match = /^\r\nContent-Type: (.+)\r\nContent-Range: bytes (\d+)-(\d+)\/(\d+)$/.exec(head);
    if (match === null) throw new Error(`bad part head ${JSON.stringify(head)}`);
    const [start, end, total] = [Number(match[2]), Number(match[3]), Number(match[4])];
    if (!(start <= end && end < total)) throw new Error(`bad part range ${head}`);
    at = headEnd + 4;
    parts.push({ type: match[1]!, start, end, total, data: body.subarray(at, at + end - start + 1) });
    at += end - start + 1;
  }
}
