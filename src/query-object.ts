/**
 * The part of pg's query-object interface (see pg/lib/query.js) that this library's own query
 * objects do not use: pg calls these for messages such a statement never produces. A COPY FROM
 * STDIN that somehow started is failed, so the connection does not wait for data.
 */
export abstract class QueryObject {
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
