import type { DataSource, QueryRunner } from "typeorm";
import { LargeObjectError, isConnectionFailure } from "../errors";
import { enqueue } from "./client-queue";
import { connectWithin } from "./pool-acquire";
import { dataSourceOf, type LargeObjectSource, type PgClient } from "./source";

/**
 * Where a read runs on a data source with TypeORM's `replication: { master, slaves }`: always on the
 * primary, on a standby as it is, or on a standby once it has replayed the writes this process
 * committed, else on the primary ("read-your-writes", the default).
 */
export type ReadFrom = "primary" | "replica" | "read-your-writes";

/** Options of {@link configureReplicaReads}: the data source's defaults for reads. */
export interface ReplicaReadOptions {
  /** Where reads run when a call does not say (default "read-your-writes", or "primary" with TypeORM's `replication.defaultMode: "master"`). */
  readFrom?: ReadFrom;
  /** How long a read-your-writes read waits for a standby to replay this process's last commit before it reads on the primary (default 500 ms). */
  maxReplayWaitMs?: number;
}

/** @internal Default of {@link ReplicaReadOptions.maxReplayWaitMs}. */
export const DEFAULT_MAX_REPLAY_WAIT_MS = 500;

const READ_FROM: readonly ReadFrom[] = ["primary", "replica", "read-your-writes"];

/**
 * What the library knows of a replicated data source: the WAL position after its latest commit,
 * writes whose position is still to be asked for, and how far each standby has been seen to replay.
 */
interface ReplicaState {
  readFrom: ReadFrom | undefined;
  maxReplayWaitMs: number;
  /** The primary's WAL insert position after the latest commit of ours that is known. */
  lastCommit: bigint | undefined;
  /** An autocommit write, or a write in a transaction that has ended, whose position is unknown. */
  unknownCommit: boolean;
  /** Writes in transactions someone else ends: per client, the transaction (by count of ends) of the latest. */
  pending: Map<{ count: number }, { last: number; older: boolean }>;
  /** Per standby (host:port), the highest replay position seen. */
  replayed: Map<string, bigint>;
}

const states = new WeakMap<DataSource, ReplicaState>();

/** @internal Whether the data source has standbys to read from. */
export function isReplicated(dataSource: DataSource): boolean {
  const driver = dataSource.driver as unknown as { isReplicated?: boolean; options?: { replication?: { slaves?: unknown[] } } };
  return driver.isReplicated === true && (driver.options?.replication?.slaves?.length ?? 0) > 0;
}

function stateOf(dataSource: DataSource): ReplicaState {
  let state = states.get(dataSource);
  if (state === undefined) {
    state = {
      readFrom: undefined,
      maxReplayWaitMs: DEFAULT_MAX_REPLAY_WAIT_MS,
      lastCommit: undefined,
      unknownCommit: false,
      pending: new Map(),
      replayed: new Map(),
    };
    states.set(dataSource, state);
  }
  return state;
}

/** @internal A read-from value checked, or ERR_LO_INVALID_ARGUMENT. */
export function toReadFrom(value: unknown, name = "readFrom"): ReadFrom {
  if (typeof value === "string" && (READ_FROM as readonly string[]).includes(value)) return value as ReadFrom;
  throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `${name} must be "primary", "replica" or "read-your-writes", got ${JSON.stringify(value)}`);
}

/**
 * Sets where the library's reads on `dataSource` run by default, and how long read-your-writes
 * waits for a standby. Without `replication` in the data source's options every read runs on its
 * one server and this changes nothing.
 *
 * @example
 * configureReplicaReads(dataSource, { readFrom: "read-your-writes", maxReplayWaitMs: 250 });
 */
export function configureReplicaReads(source: LargeObjectSource, options: ReplicaReadOptions): void {
  const state = stateOf(dataSourceOf(source));
  if (options.readFrom !== undefined) state.readFrom = toReadFrom(options.readFrom);
  if (options.maxReplayWaitMs !== undefined) {
    const ms = options.maxReplayWaitMs;
    if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) {
      throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `maxReplayWaitMs must be a number of milliseconds >= 0, got ${String(ms)}`);
    }
    state.maxReplayWaitMs = ms;
  }
}

function defaultReadFrom(dataSource: DataSource, state: ReplicaState): ReadFrom {
  if (state.readFrom !== undefined) return state.readFrom;
  const mode = (dataSource.driver.options as { replication?: { defaultMode?: string } }).replication?.defaultMode;
  return mode === "master" ? "primary" : "read-your-writes";
}

/** A WAL position ("16/B374D848") as a number that compares. */
function parseLsn(text: string): bigint {
  const [high, low] = text.split("/");
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

function remember(state: ReplicaState, lsn: bigint): void {
  if (state.lastCommit === undefined || lsn > state.lastCommit) state.lastCommit = lsn;
}

/**
 * @internal The statement that commits a transaction of ours on a replicated data source: COMMIT
 * and the WAL position after it in one round trip (`pg_current_wal_insert_lsn()` is past the commit
 * record, which replay must reach before a standby shows the commit).
 */
export const COMMIT_WITH_POSITION = "COMMIT; SELECT pg_catalog.pg_current_wal_insert_lsn()::text AS lsn";

/** @internal Records the result of {@link COMMIT_WITH_POSITION}. */
export function noteCommit(dataSource: DataSource, result: unknown): void {
  const results = Array.isArray(result) ? (result as { rows?: { lsn?: unknown }[] }[]) : [];
  const lsn = results[results.length - 1]?.rows?.[0]?.lsn;
  if (typeof lsn === "string") remember(stateOf(dataSource), parseLsn(lsn));
  else stateOf(dataSource).unknownCommit = true;
}

/**
 * @internal Records a write whose commit is not ours to make: in the caller's transaction (with the
 * client's counter of transaction ends and its value now), or in autocommit (no counter).
 */
export function noteWrite(dataSource: DataSource, ends: { count: number } | undefined, atStart: number): void {
  const state = stateOf(dataSource);
  if (ends === undefined) {
    state.unknownCommit = true;
    return;
  }
  const known = state.pending.get(ends);
  if (known === undefined) state.pending.set(ends, { last: atStart, older: false });
  else if (known.last !== atStart) state.pending.set(ends, { last: atStart, older: true });
}

/** Whether writes have committed since whose position is not known yet (and forgets them: the caller asks). */
function takeUnknown(state: ReplicaState): boolean {
  let unknown = state.unknownCommit;
  state.unknownCommit = false;
  for (const [ends, write] of state.pending) {
    if (ends.count !== write.last) {
      unknown = true;
      state.pending.delete(ends);
    } else if (write.older) {
      unknown = true;
      write.older = false;
    }
  }
  return unknown;
}

/** Asks the primary for its WAL position: past every commit made so far. */
async function primaryPosition(dataSource: DataSource): Promise<bigint> {
  const runner = dataSource.createQueryRunner("master");
  try {
    const client = await connectWithin(runner, dataSource);
    const result = await client.query<{ lsn: string }>("SELECT pg_catalog.pg_current_wal_insert_lsn()::text AS lsn");
    return parseLsn(result.rows[0]!.lsn);
  } finally {
    await runner.release();
  }
}

function serverKey(client: PgClient): string {
  const c = client as unknown as { host?: string; port?: number };
  return `${c.host ?? ""}:${c.port ?? ""}`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls the standby until it has replayed `target`, for at most `waitMs`; true when it has. */
async function waitForReplay(state: ReplicaState, client: PgClient, target: bigint, waitMs: number): Promise<boolean> {
  const key = serverKey(client);
  const deadline = Date.now() + waitMs;
  for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
    const seen = state.replayed.get(key);
    if (seen !== undefined && seen >= target) return true;
    const result = await enqueue(client, () =>
      client.query<{ recovering: boolean; replayed: string | null }>(
        "SELECT pg_catalog.pg_is_in_recovery() AS recovering, pg_catalog.pg_last_wal_replay_lsn()::text AS replayed",
      ),
    );
    const row = result.rows[0]!;
    // A promoted standby is a primary: it has every commit it will ever show.
    if (!row.recovering) return true;
    if (row.replayed !== null) {
      const replayed = parseLsn(row.replayed);
      if (seen === undefined || replayed > seen) state.replayed.set(key, replayed);
      if (replayed >= target) return true;
    }
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await sleep(Math.min(pause, left));
  }
}

/**
 * @internal For a read on a runner of our own: a connected runner on a standby that may serve it,
 * or undefined when the read runs on the primary (by choice, because the standby did not replay
 * this process's last commit in time, or because no standby could be reached).
 */
export async function replicaForRead(dataSource: DataSource, readFrom: ReadFrom | undefined): Promise<{ runner: QueryRunner; client: PgClient } | undefined> {
  if (!isReplicated(dataSource)) return undefined;
  const state = stateOf(dataSource);
  const mode = readFrom === undefined ? defaultReadFrom(dataSource, state) : toReadFrom(readFrom);
  if (mode === "primary") return undefined;
  if (mode === "read-your-writes" && takeUnknown(state)) {
    // With the primary gone, the standby is the best there is: read there without a position to wait for.
    const position = await primaryPosition(dataSource).catch((err: unknown) => {
      if (isConnectionFailure(err)) return undefined;
      throw err;
    });
    if (position !== undefined) remember(state, position);
  }
  const runner = dataSource.createQueryRunner("slave");
  try {
    const client = await connectWithin(runner, dataSource);
    const target = mode === "read-your-writes" ? state.lastCommit : undefined;
    if (target !== undefined && !(await waitForReplay(state, client, target, state.maxReplayWaitMs))) {
      await runner.release();
      return undefined;
    }
    return { runner, client };
  } catch (err) {
    // A standby that is down or restarting must not fail reads the primary can serve.
    if (!isConnectionFailure(err)) {
      await runner.release();
      throw err;
    }
    const withError = (runner as unknown as { releasePostgresConnection?: (err?: unknown) => Promise<void> }).releasePostgresConnection;
    await (typeof withError === "function" ? withError.call(runner, err) : runner.release());
    return undefined;
  }
}
