import type { DataSource, EntityManager, QueryRunner } from "typeorm";
import type { Client, QueryResultRow } from "pg";
import { LargeObjectError, isConnectionFailure, isLargeObjectError, toLargeObjectError } from "./errors";
import { connectWithin } from "./pool-acquire";

/** Where large-object work runs: a data source, an entity manager, or a query runner. */
export type LargeObjectSource = DataSource | EntityManager | QueryRunner;

/** The pg client behind a TypeORM Postgres query runner. */
export type PgClient = Client;

interface ScopeOptions {
  /** Open a transaction when the source has none (descriptors need one). */
  transaction: boolean;
  /** Read-only work gets REPEATABLE READ, so every statement of a stream sees one snapshot. */
  readOnly?: boolean;
}

/**
 * Who ends the transaction: the caller ("joined"), this scope on the caller's runner through
 * TypeORM ("transaction"), or this scope on a runner of its own ("runner"), whose transaction it
 * opens and ends with plain statements: one round trip to begin at any isolation level, and no
 * TypeORM bookkeeping for a runner nobody else sees.
 */
type Ownership = "joined" | "transaction" | "runner";

function isQueryRunner(source: object): source is QueryRunner {
  const s = source as Partial<QueryRunner>;
  return typeof s.startTransaction === "function" && typeof s.release === "function";
}

function isEntityManager(source: object): source is EntityManager {
  const s = source as Partial<EntityManager>;
  return typeof s.transaction === "function" && typeof s.getRepository === "function" && "connection" in s;
}

/** Whether a value is a TypeORM DataSource (checked by shape: the package may be loaded twice). */
export function isDataSource(source: unknown): source is DataSource {
  const s = source as Partial<DataSource> | null;
  return typeof s === "object" && s !== null && typeof s.createQueryRunner === "function" && typeof s.initialize === "function";
}

/** The data source behind any accepted source, checked to be PostgreSQL. */
export function dataSourceOf(source: LargeObjectSource): DataSource {
  if (source === null || typeof source !== "object") {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", "expected a DataSource, EntityManager or QueryRunner");
  }
  let dataSource: DataSource | undefined;
  if (isQueryRunner(source)) dataSource = source.connection;
  else if (isEntityManager(source)) dataSource = source.connection;
  else if (isDataSource(source)) dataSource = source;
  if (dataSource === undefined) {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", "expected a DataSource, EntityManager or QueryRunner");
  }
  const type = dataSource.options.type;
  if (type !== "postgres") {
    throw new LargeObjectError(
      "ERR_LO_NOT_POSTGRES",
      `large objects need a PostgreSQL data source (type "postgres"), this one is "${String(type)}"`,
    );
  }
  return dataSource;
}

const queueTails = new WeakMap<object, Promise<unknown>>();

/**
 * Per client, how many times the server has reported "idle, no transaction" (ReadyForQuery 'I').
 * A change means the transaction a descriptor belongs to is over, whoever ended it; its descriptor
 * number may already belong to a handle of the next transaction.
 */
const transactionEnds = new WeakMap<object, { count: number }>();

function transactionEndCounter(client: PgClient): { count: number } | undefined {
  const known = transactionEnds.get(client);
  if (known !== undefined) return known;
  const connection = (client as unknown as { connection?: { on?: unknown } }).connection;
  // pg-native clients have no protocol connection to watch.
  if (connection === undefined || typeof connection.on !== "function") return undefined;
  const created = { count: 0 };
  (connection as { on(event: string, listener: (msg: { status?: string }) => void): void }).on("readyForQuery", (msg) => {
    if (msg.status === "I") created.count += 1;
  });
  transactionEnds.set(client, created);
  return created;
}

/**
 * Runs `task` after every task queued before it on the same client. TypeORM runs subscriber hooks
 * of one flush concurrently on one connection, and a pg client must not be given a second query
 * while one is active, so every statement of ours goes through here.
 */
export function enqueue<T>(client: object, task: () => Promise<T>): Promise<T> {
  const depth = (queueDepths.get(client) ?? 0) + 1;
  queueDepths.set(client, depth);
  if (depth > 1) for (const listener of [...(contentionListeners.get(client) ?? [])]) listener();
  const previous = queueTails.get(client) ?? Promise.resolve();
  const result = previous.then(task, task);
  const settled = (): void => void queueDepths.set(client, (queueDepths.get(client) ?? 1) - 1);
  queueTails.set(client, result.then(settled, settled));
  return result;
}

/** Tasks queued or running per client. */
const queueDepths = new WeakMap<object, number>();
/** Called when a task is queued behind another: a paused COPY must then drain to free the client. */
const contentionListeners = new WeakMap<object, Set<() => void>>();

/**
 * A query runner with a transaction that is either the caller's (joined) or ours (owned). Owned
 * transactions are committed or rolled back by `end()`, and a runner we created is always released.
 */
export class TransactionScope {
  private ended = false;
  /** The first statement that failed inside the transaction: PostgreSQL has aborted it since. */
  private failure: unknown;
  private readonly endCounter: { count: number } | undefined;
  private readonly endsAtStart: number;

  private constructor(
    readonly runner: QueryRunner,
    readonly client: PgClient,
    private readonly ownership: Ownership,
    private readonly hasTransaction: boolean,
    private readonly readOnly: boolean,
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

  /** Joins the source's transaction, or starts one (and a runner) of its own. */
  static async begin(source: LargeObjectSource, options: ScopeOptions): Promise<TransactionScope> {
    const dataSource = dataSourceOf(source);
    let runner: QueryRunner;
    let createdRunner = false;
    if (isQueryRunner(source)) runner = source;
    else if (isEntityManager(source) && source.queryRunner !== undefined) runner = source.queryRunner;
    else {
      runner = dataSource.createQueryRunner();
      createdRunner = true;
    }
    if (runner.isReleased) {
      throw new LargeObjectError("ERR_LO_TRANSACTION", "the query runner has already been released");
    }
    let client: PgClient;
    try {
      // A runner of our own waits for the pool at most the acquire timeout (ERR_LO_POOL_EXHAUSTED).
      client = createdRunner ? await connectWithin(runner, dataSource) : ((await runner.connect()) as PgClient);
      // Decided in the queue, so that concurrent calls on one runner without a transaction share
      // the one the first of them starts, instead of each nesting a savepoint of its own.
      const { joins, starts } = await enqueue(client, async () => {
        if (runner.isTransactionActive) return { joins: true, starts: false };
        if (!options.transaction) return { joins: false, starts: false };
        const level = options.readOnly ? "REPEATABLE READ" : undefined;
        if (!createdRunner) await runner.startTransaction(level);
        else await client.query(level === undefined ? "START TRANSACTION" : `START TRANSACTION ISOLATION LEVEL ${level}`);
        return { joins: false, starts: true };
      });
      const ownership: Ownership = createdRunner ? "runner" : starts ? "transaction" : "joined";
      return new TransactionScope(runner, client, ownership, joins || starts, options.readOnly === true);
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
      return this.client.query<R>(text, values);
    }).catch((err: unknown) => this.failed(err));
    return result.rows;
  }

  /** Whether other work is queued behind the running task (a COPY holding the client blocks it). */
  othersWaiting(): boolean {
    return (queueDepths.get(this.client) ?? 0) > 1;
  }

  /** Calls `listener` whenever work is queued behind a running task; returns the unsubscribe. */
  onContention(listener: () => void): () => void {
    let listeners = contentionListeners.get(this.client);
    if (listeners === undefined) contentionListeners.set(this.client, (listeners = new Set()));
    listeners.add(listener);
    return () => void listeners.delete(listener);
  }

  /** Runs a task that needs the client to itself (such as a COPY) after the queued work. */
  exclusive<T>(task: (client: PgClient) => Promise<T>): Promise<T> {
    try {
      this.assertLive();
    } catch (err) {
      return Promise.reject(err);
    }
    return enqueue(this.client, () => {
      this.assertLive();
      return task(this.client);
    }).catch((err: unknown) => this.failed(err));
  }

  private failed(err: unknown): never {
    const refused = err instanceof LargeObjectError && err.code === "ERR_LO_CLOSED";
    if (this.hasTransaction && this.failure === undefined && !refused) this.failure = err;
    throw err;
  }

  private async commit(): Promise<void> {
    if (this.ownership === "runner") await this.client.query("COMMIT");
    else await this.runner.commitTransaction();
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
    // TypeORM knows nothing of a transaction on a runner of our own: that one is open until now.
    if (this.ownsTransaction && (this.ownership === "runner" || runner.isTransactionActive) && !runner.isReleased) {
      try {
        await enqueue(this.client, () => (error === undefined ? this.commit() : this.rollback()));
      } catch (err) {
        failure = err;
        if (error === undefined) {
          // A failed COMMIT leaves the transaction aborted: roll back so the session is clean.
          await enqueue(this.client, () => this.rollback()).catch(() => undefined);
        }
      }
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
