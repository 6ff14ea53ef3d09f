import type { DataSource, QueryRunner } from "typeorm";
import type { QueryResultRow } from "pg";
import { LargeObjectError, isConnectionFailure, isLargeObjectError, toLargeObjectError } from "../errors";
import { enqueue, onContention, othersWaiting } from "./client-queue";
import { connectWithin } from "./pool-acquire";
import { COMMIT_WITH_POSITION, isReplicated, noteCommit, noteWrite, replicaForRead, type ReadFrom } from "./replica-routing";
import { dataSourceOf, isEntityManager, isQueryRunner, type LargeObjectSource, type PgClient } from "./source";
import { PrefixedQuery, type PgQuery } from "../protocol/prefixed-query";

interface ScopeOptions {
  /** Open a transaction when the source has none (descriptors need one). */
  transaction: boolean;
  /** Read-only work gets REPEATABLE READ, so every statement of a stream sees one snapshot. */
  readOnly?: boolean;
  /**
   * A read that may run on a standby of a replicated data source, chosen as `readFrom` says (or
   * the data source's default). Only a runner of our own can go there.
   */
  replicaRead?: { readFrom?: ReadFrom | undefined };
}

/**
 * Who ends the transaction: the caller ("joined"), this scope on the caller's runner through
 * TypeORM ("transaction"), or this scope on a runner of its own ("runner"), whose transaction it
 * opens and ends with plain statements: one round trip to begin at any isolation level, and no
 * TypeORM bookkeeping for a runner nobody else sees.
 */
type Ownership = "joined" | "transaction" | "runner";

/** Runners the library created for work of its own, which no caller's code issues statements on. */
const privateRunners = new WeakSet<QueryRunner>();

/**
 * Marks a runner the library created and hands to TypeORM as the source of its own work (an
 * upload's transaction): its streams may hold the connection between pieces, as on a runner the
 * scope creates itself.
 * @internal
 */
export function markPrivateRunner(runner: QueryRunner): QueryRunner {
  privateRunners.add(runner);
  return runner;
}

/**
 * Per client, how many times the server has reported "idle, no transaction" (ReadyForQuery 'I')
 * after reporting a transaction ('T', or 'E' for a failed one). A change means the transaction a
 * descriptor belongs to is over, whoever ended it; its descriptor number may already belong to a
 * handle of the next transaction. An 'I' after an 'I' ends no transaction: it closes a statement
 * run on its own, and may arrive after that statement's error was reported and its runner handed
 * on, when the next scope has already counted from here.
 */
const transactionEnds = new WeakMap<object, { count: number }>();

function transactionEndCounter(client: PgClient): { count: number } | undefined {
  const known = transactionEnds.get(client);
  if (known !== undefined) return known;
  const connection = (client as unknown as { connection?: { on?: unknown } }).connection;
  // pg-native clients have no protocol connection to watch.
  if (connection === undefined || typeof connection.on !== "function") return undefined;
  const created = { count: 0 };
  // pg keeps the last status it was told; before any, a transaction may be open (the caller's).
  let last: unknown = (client as unknown as { _txStatus?: unknown })._txStatus ?? "T";
  (connection as { on(event: string, listener: (msg: { status?: string }) => void): void }).on("readyForQuery", (msg) => {
    if (msg.status === "I" && last !== "I") created.count += 1;
    last = msg.status;
  });
  transactionEnds.set(client, created);
  return created;
}

/**
 * A query runner with a transaction that is either the caller's (joined) or ours (owned). Owned
 * transactions are committed or rolled back by `end()`, and a runner we created is always released.
 * @internal
 */
export class TransactionScope {
  private ended = false;
  /** The first statement that failed inside the transaction: PostgreSQL has aborted it since. */
  private failure: unknown;
  private readonly endCounter: { count: number } | undefined;
  private endsAtStart: number;

  private constructor(
    readonly runner: QueryRunner,
    readonly client: PgClient,
    private readonly ownership: Ownership,
    private readonly hasTransaction: boolean,
    private readonly readOnly: boolean,
    /** Whether the runner is on a standby (a read routed there), not the primary. */
    readonly onReplica: boolean,
    /** Set when this scope may write on a replicated data source: where its commit goes on record. */
    private readonly replicated: DataSource | undefined,
    /** The statement that starts an owned transaction, not sent yet: it goes with the first statement. */
    private pendingBegin: string | undefined,
  ) {
    this.endCounter = hasTransaction ? transactionEndCounter(client) : undefined;
    this.endsAtStart = this.endCounter?.count ?? 0;
  }

  /**
   * Runs `task` in a scope and ends it: committed when the task succeeds (rolled back instead with
   * `rollback`, for dry runs), rolled back when it fails, and a runner of its own released either way.
   */
  static async using<T>(
    source: LargeObjectSource,
    options: ScopeOptions & { rollback?: boolean },
    task: (scope: TransactionScope) => Promise<T>,
  ): Promise<T> {
    const scope = await TransactionScope.begin(source, options);
    try {
      const result = await task(scope);
      await scope.end(options.rollback ? new Error("rolled back on purpose") : undefined);
      return result;
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Opens something for reading in a read-only scope that may be on a standby, with `open`, which
   * ends the scope when it fails. What a lagging standby does not have yet (a missing object or row,
   * ERR_LO_NOT_FOUND or ERR_LO_NULL) is looked for again on the primary, so a standby never answers
   * "not found" for what the primary has.
   */
  static async reading<T>(source: LargeObjectSource, readFrom: ReadFrom | undefined, open: (scope: TransactionScope) => Promise<T>): Promise<T> {
    const scope = await TransactionScope.begin(source, { transaction: true, readOnly: true, replicaRead: { readFrom } });
    try {
      return await open(scope);
    } catch (err) {
      if (!scope.onReplica || !(isLargeObjectError(err, "ERR_LO_NOT_FOUND") || isLargeObjectError(err, "ERR_LO_NULL"))) throw err;
    }
    return open(await TransactionScope.begin(source, { transaction: true, readOnly: true }));
  }

  /** Joins the source's transaction, or starts one (and a runner) of its own. */
  static async begin(source: LargeObjectSource, options: ScopeOptions): Promise<TransactionScope> {
    const dataSource = dataSourceOf(source);
    let runner: QueryRunner;
    let createdRunner = false;
    let replica: { runner: QueryRunner; client: PgClient } | undefined;
    if (isQueryRunner(source)) runner = source;
    else if (isEntityManager(source) && source.queryRunner !== undefined) runner = source.queryRunner;
    else {
      replica = options.replicaRead === undefined ? undefined : await replicaForRead(dataSource, options.replicaRead.readFrom);
      runner = replica?.runner ?? dataSource.createQueryRunner();
      createdRunner = true;
    }
    if (runner.isReleased) {
      throw new LargeObjectError("ERR_LO_TRANSACTION", "the query runner has already been released");
    }
    let client: PgClient;
    try {
      // A runner of our own waits for the pool at most the acquire timeout (ERR_LO_POOL_EXHAUSTED).
      client = replica?.client ?? (createdRunner ? await connectWithin(runner, dataSource) : ((await runner.connect()) as PgClient));
      // Decided in the queue, so that concurrent calls on one runner without a transaction share
      // the one the first of them starts, instead of each nesting a savepoint of its own.
      let pendingBegin: string | undefined;
      const { joins, starts } = await enqueue(client, async () => {
        if (runner.isTransactionActive) return { joins: true, starts: false };
        if (!options.transaction) return { joins: false, starts: false };
        const level = options.readOnly ? "REPEATABLE READ" : undefined;
        const begin = level === undefined ? "START TRANSACTION" : `START TRANSACTION ISOLATION LEVEL ${level}`;
        if (!createdRunner) await runner.startTransaction(level);
        // Nobody else sees a runner of our own: its transaction starts with its first statement.
        else if (queryClassOf(client) !== undefined) pendingBegin = begin;
        else await client.query(begin);
        return { joins: false, starts: true };
      });
      const ownership: Ownership = createdRunner ? "runner" : starts ? "transaction" : "joined";
      const writes = options.readOnly !== true && isReplicated(dataSource) ? dataSource : undefined;
      return new TransactionScope(runner, client, ownership, joins || starts, options.readOnly === true, replica !== undefined, writes, pendingBegin);
    } catch (err) {
      // After a timed-out wait, connectWithin hands the connection back when it finally comes.
      if (createdRunner && !isLargeObjectError(err, "ERR_LO_POOL_EXHAUSTED")) await releaseRunner(runner, err);
      throw toLargeObjectError(err);
    }
  }

  /** Whether this scope commits or rolls back itself (false when it joined the caller's transaction). */
  get ownsTransaction(): boolean {
    return this.ownership !== "joined" && this.hasTransaction;
  }

  /** Whether work runs inside a transaction, so descriptors stay valid between statements. */
  get inTransaction(): boolean {
    return this.hasTransaction;
  }

  /** Whether the scope has ended, or the transaction it lived in was ended by someone else. */
  get isEnded(): boolean {
    return this.ended || this.transactionIsOver();
  }

  private transactionIsOver(): boolean {
    return this.endCounter !== undefined && this.endCounter.count !== this.endsAtStart;
  }

  private assertLive(): void {
    if (this.ended) throw new LargeObjectError("ERR_LO_CLOSED", "the large-object transaction has already ended");
    if (this.transactionIsOver()) {
      throw new LargeObjectError("ERR_LO_CLOSED", "the transaction this large object was opened in has ended");
    }
  }

  /** Runs one statement on the raw client: queued, and never through TypeORM's logger (payloads are large). */
  async query<R extends QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    this.assertLive();
    // Checked again when the statement's turn comes: the transaction may end while it waits.
    const result = await enqueue(this.client, () => {
      this.assertLive();
      const begin = this.takePendingBegin();
      return begin === undefined ? this.client.query<R>(text, values) : prefixed<R>(this.client, begin, text, values);
    }).catch((err: unknown) => this.failed(err));
    return result.rows;
  }

  /** The pending start of the transaction, now on its way; undefined once it has been sent. */
  private takePendingBegin(): string | undefined {
    const begin = this.pendingBegin;
    this.pendingBegin = undefined;
    return begin;
  }

  /**
   * The statement that commits this scope's transaction when it is sent with the scope's last
   * statement, in the same round trip (after it in one text, or before the Sync of a pipelined
   * run); undefined when the scope must end itself. Only on a runner of our own, where nobody else
   * waits for the transaction, whose end the client reports, and with no commit position to learn.
   */
  get commitStatement(): string | undefined {
    const plain = this.ownership === "runner" && this.hasTransaction && this.replicated === undefined;
    if (!plain || this.endCounter === undefined || this.pendingBegin !== undefined || this.failure !== undefined) return undefined;
    return "COMMIT";
  }

  /**
   * {@link commitStatement} for a read-only transaction, which a reader may commit with its last
   * statement even before the consumer is done: committing it early loses nothing.
   */
  get endingStatement(): string | undefined {
    return this.readOnly ? this.commitStatement : undefined;
  }

  /**
   * Whether the caller's code may send statements on this runner straight to pg, past the queue
   * (TypeORM's own queries do): then nothing of ours may hold the connection while it waits for
   * its producer or consumer, or such a statement would wait for a caller that waits for it.
   */
  get sharedWithCaller(): boolean {
    return this.ownership !== "runner" && !privateRunners.has(this.runner);
  }

  /** Whether other work is queued behind the running task (a COPY holding the client blocks it). */
  othersWaiting(): boolean {
    return othersWaiting(this.client);
  }

  /** Calls `listener` whenever work is queued behind a running task; returns the unsubscribe. */
  onContention(listener: () => void): () => void {
    return onContention(this.client, listener);
  }

  /**
   * Whether nothing has been sent on this scope's runner of its own: a first statement may then run
   * alone, as its own transaction, ahead of the scope's (see {@link alone}).
   */
  get untouched(): boolean {
    return this.ownership === "runner" && this.pendingBegin !== undefined && !this.ended;
  }

  /**
   * Runs a task with the client to itself before the scope's transaction starts: its statement is
   * its own transaction, and the start stays pending for the statements after it.
   */
  alone<T>(task: (client: PgClient) => Promise<T>): Promise<T> {
    if (!this.untouched) return Promise.reject(new LargeObjectError("ERR_LO_TRANSACTION", "the scope's transaction has already started"));
    return enqueue(this.client, () => task(this.client)).finally(() => {
      // Its 'I' after an 'I' is no transaction's end, but where pg does not say the status a
      // client was in before the counter began, it may have been counted as one.
      if (this.endCounter !== undefined) this.endsAtStart = this.endCounter.count;
    });
  }

  /** Runs a task that needs the client to itself (such as a COPY) after the queued work. */
  exclusive<T>(task: (client: PgClient) => Promise<T>): Promise<T> {
    try {
      this.assertLive();
    } catch (err) {
      return Promise.reject(err);
    }
    return enqueue(this.client, async () => {
      this.assertLive();
      // A task of its own (a COPY, a run of pipelined writes) follows the transaction's start.
      const begin = this.takePendingBegin();
      if (begin !== undefined) await this.client.query(begin);
      return task(this.client);
    }).catch((err: unknown) => this.failed(err));
  }

  private failed(err: unknown): never {
    const refused = err instanceof LargeObjectError && err.code === "ERR_LO_CLOSED";
    if (this.hasTransaction && this.failure === undefined && !refused) this.failure = err;
    throw err;
  }

  private async commit(): Promise<void> {
    if (this.ownership !== "runner") await this.runner.commitTransaction();
    else if (this.replicated === undefined) await this.client.query("COMMIT");
    // Read-your-writes needs the WAL position of the commit: asked for in the same round trip.
    else noteCommit(this.replicated, await this.client.query(COMMIT_WITH_POSITION));
  }

  private async rollback(): Promise<void> {
    if (this.ownership === "runner") await this.client.query("ROLLBACK");
    else await this.runner.rollbackTransaction();
  }

  /**
   * Ends the scope: commits an owned transaction, or rolls it back when `error` is given, then
   * releases a runner we created. Joined transactions are left to the caller. Idempotent.
   */
  async end(error?: unknown): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    const runner = this.runner;
    let failure: unknown;
    // PostgreSQL answers COMMIT of an aborted transaction with a silent ROLLBACK: say so instead.
    const aborted = error === undefined && this.ownsTransaction ? this.failure : undefined;
    if (aborted !== undefined) error = aborted;
    // TypeORM knows nothing of a transaction on a runner of our own: that one is open until now,
    // unless its last statement ended it (see endingStatement).
    const endedByLast = this.ownership === "runner" && this.transactionIsOver();
    if (this.ownsTransaction && (this.ownership === "runner" || runner.isTransactionActive) && !runner.isReleased && !endedByLast) {
      try {
        await enqueue(this.client, async () => {
          // Never started, since nothing ran in it: there is nothing to end.
          if (this.takePendingBegin() !== undefined) return;
          await (error === undefined ? this.commit() : this.rollback());
        });
      } catch (err) {
        failure = err;
        if (error === undefined) {
          // A failed COMMIT leaves the transaction aborted: roll back so the session is clean.
          await enqueue(this.client, () => this.rollback()).catch(() => undefined);
        }
      }
    }
    if (this.replicated !== undefined && error === undefined && failure === undefined && !(this.ownership === "runner" && this.hasTransaction)) {
      // Committed by whoever ends the transaction (or already, in autocommit): its position is asked for when a read needs it.
      noteWrite(this.replicated, this.endCounter, this.endsAtStart);
    }
    if (this.ownership === "runner") {
      await releaseRunner(runner, failure ?? error);
    }
    if (failure !== undefined && error === undefined) throw toLargeObjectError(failure);
    if (aborted !== undefined && !this.readOnly) {
      if (isConnectionFailure(aborted)) throw toLargeObjectError(aborted);
      throw new LargeObjectError(
        "ERR_LO_TRANSACTION",
        `nothing was committed: an earlier statement failed and PostgreSQL aborted the transaction (${errorMessage(aborted)})`,
        { cause: aborted },
      );
    }
  }
}

type QueryClass = new (config: { text: string; values?: unknown[]; queryMode: "extended" }, callback: (err: Error | null, result: { rows: unknown[] }) => void) => PgQuery;

/** pg's own Query class, behind a client of pg (pg-native clients have none). */
function queryClassOf(client: PgClient): QueryClass | undefined {
  const Query = (client.constructor as { Query?: unknown }).Query;
  return typeof Query === "function" ? (Query as QueryClass) : undefined;
}

/** Runs `text` with `prefix` (a statement without parameters) sent before it in the same round trip. */
function prefixed<R extends QueryResultRow>(client: PgClient, prefix: string, text: string, values: unknown[] | undefined): Promise<{ rows: R[] }> {
  return new Promise((resolve, reject) => {
    const query = new (queryClassOf(client)!)({ text, values: values ?? [], queryMode: "extended" }, (err, result) =>
      err ? reject(err) : resolve(result as { rows: R[] }),
    );
    // A pg too old to send a statement without values in the extended protocol: one after the other.
    if (!query.requiresPreparation()) {
      client.query(prefix).then(() => client.query<R>(text, values)).then(resolve, reject);
      return;
    }
    client.query(new PrefixedQuery(prefix, query) as unknown as Parameters<PgClient["query"]>[0]);
  });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Releases a runner, handing connection failures to the pool so it drops that client. */
async function releaseRunner(runner: QueryRunner, error: unknown): Promise<void> {
  if (runner.isReleased) return;
  const broken = error !== undefined && isConnectionFailure(error);
  const withError = (runner as unknown as { releasePostgresConnection?: (err?: unknown) => Promise<void> })
    .releasePostgresConnection;
  if (broken && typeof withError === "function") {
    await withError.call(runner, error);
    return;
  }
  if (runner.isTransactionActive) {
    // Never hand a connection back inside a transaction.
    await runner.rollbackTransaction().catch(() => undefined);
  }
  await runner.release();
}
