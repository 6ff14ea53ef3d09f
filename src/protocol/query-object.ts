/**
 * The part of pg's query-object interface (see pg/lib/query.js) that this library's own query
 * objects do not use: pg calls these for messages such a statement never produces. A COPY FROM
 * STDIN that somehow started is failed, so the connection does not wait for data.
 * @internal
 */
export abstract class QueryObject {
  /**
   * Set by pg when the pool or client has a `query_timeout`: its timer runs until this is called,
   * so a query object calls it once it is done (and it is called at most once).
   */
  callback?: (err: unknown) => void;

  /** Tells pg the query is over: clears its `query_timeout` timer. */
  protected finished(err: unknown = null): void {
    const callback = this.callback;
    this.callback = undefined;
    callback?.(err);
  }

  handleCommandComplete(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}
  handleCopyInResponse(connection: { sendCopyFail(message: string): void }): void {
    connection.sendCopyFail(`unexpected COPY FROM STDIN during ${this.constructor.name}`);
  }
}
