// The per-client queue: one statement at a time on a pg client, whoever issues it.

/** The last task queued per client. */
const queueTails = new WeakMap<object, Promise<unknown>>();

/** Tasks queued or running per client. */
const queueDepths = new WeakMap<object, number>();
/** Called when a task is queued behind another: a paused COPY must then drain to free the client. */
const contentionListeners = new WeakMap<object, Set<() => void>>();

/**
 * Runs `task` after every task queued before it on the same client. TypeORM runs subscriber hooks
 * of one flush concurrently on one connection, and a pg client must not be given a second query
 * while one is active, so every statement of ours goes through here.
 * @internal
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

/** @internal Whether other work is queued behind the task running on `client`. */
export function othersWaiting(client: object): boolean {
  return (queueDepths.get(client) ?? 0) > 1;
}

/** @internal Calls `listener` whenever work is queued behind a task running on `client`; returns the unsubscribe. */
export function onContention(client: object, listener: () => void): () => void {
  let listeners = contentionListeners.get(client);
  if (listeners === undefined) contentionListeners.set(client, (listeners = new Set()));
  listeners.add(listener);
  return () => void listeners.delete(listener);
}
