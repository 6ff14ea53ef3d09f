import { QueryObject } from "./query-object";

/** What pg's protocol connection offers a custom query object (see pg/lib/query.js). */
interface PrefixConnection {
  stream: { cork?(): void; uncork?(): void };
  parse(query: { text: string; types: number[] }): void;
  bind(config: Record<string, never>): void;
  execute(config: Record<string, never>): void;
}

/** The part of pg's own Query object that this one drives (pg/lib/query.js).
 * @internal
 */
export interface PgQuery {
  readonly text?: string;
  requiresPreparation(): boolean;
  submit(connection: unknown): Error | null;
  handleRowDescription(msg: unknown): void;
  handleDataRow(msg: unknown): void;
  handleCommandComplete(msg: unknown, connection: unknown): void;
  handleEmptyQuery(connection: unknown): void;
  handlePortalSuspended(connection: unknown): void;
  handleReadyForQuery(connection: unknown): void;
  handleError(err: unknown, connection: unknown): void;
  handleCopyInResponse(connection: unknown): void;
  handleCopyData(msg: unknown, connection: unknown): void;
}

/**
 * Sends a statement without parameters or results (such as `START TRANSACTION`) in the same
 * message batch as a query of pg's own, before its Sync: the server runs both in order and answers
 * once, so the prefix costs no round trip of its own. pg hands every message of the server to the
 * active query object: this one swallows the prefix's CommandComplete and passes everything else
 * on. When the prefix fails, the server skips the query, which then fails with the prefix's error.
 *
 * @example
 * client.query(new PrefixedQuery("START TRANSACTION", new Client.Query({ text, values, queryMode: "extended" }, cb)));
 * @internal
 */
export class PrefixedQuery extends QueryObject {
  private prefixAnswered = false;
  /** Both statements, as a multi-statement text would read (for loggers that look at `text`). */
  readonly text: string;

  constructor(
    private readonly prefix: string,
    private readonly inner: PgQuery,
  ) {
    super();
    this.text = `${prefix}; ${inner.text ?? ""}`;
  }

  submit(connection: PrefixConnection): Error | null {
    connection.stream.cork?.();
    try {
      connection.parse({ text: this.prefix, types: [] });
      connection.bind({});
      connection.execute({});
      return this.inner.submit(connection);
    } finally {
      connection.stream.uncork?.();
    }
  }

  override handleCommandComplete(msg?: unknown, connection?: unknown): void {
    if (!this.prefixAnswered) {
      this.prefixAnswered = true;
      return;
    }
    this.inner.handleCommandComplete(msg, connection);
  }

  override handleRowDescription(msg?: unknown): void {
    this.inner.handleRowDescription(msg);
  }

  override handleDataRow(msg?: unknown): void {
    this.inner.handleDataRow(msg);
  }

  override handleEmptyQuery(connection?: unknown): void {
    this.inner.handleEmptyQuery(connection);
  }

  override handlePortalSuspended(connection?: unknown): void {
    this.inner.handlePortalSuspended(connection);
  }

  override handleCopyData(msg?: unknown, connection?: unknown): void {
    this.inner.handleCopyData(msg, connection);
  }

  override handleCopyInResponse(connection: { sendCopyFail(message: string): void }): void {
    this.inner.handleCopyInResponse(connection);
  }

  handleReadyForQuery(connection: unknown): void {
    this.inner.handleReadyForQuery(connection);
    this.finished();
  }

  handleError(err: unknown, connection: unknown): void {
    this.inner.handleError(err, connection);
    this.finished(err);
  }
}
