export { LargeObject, DEFAULT_CHUNK_SIZE } from "./handle/large-object";
export type { Whence, OpenOptions, CreateOptions } from "./handle/large-object";
export type { LargeObjectMode } from "./handle/modes";
export { LargeObjectReadStream } from "./handle/read-stream";
export type { ReadStreamOptions } from "./handle/read-stream";
export { LargeObjectWriteStream } from "./handle/write-stream";
export type { WriteStreamOptions } from "./handle/write-stream";
export { LargeObjectError, isLargeObjectError } from "./errors";
export type { LargeObjectErrorCode, LargeObjectErrorDetails } from "./errors";
export type { LargeObjectSource } from "./connection/source";
export { configureReplicaReads } from "./connection/replica-routing";
export type { ReadFrom, ReplicaReadOptions } from "./connection/replica-routing";
export type { LargeObjectContent } from "./handle/content";
export type { Offset } from "./validation";
export { MAX_LARGE_OBJECT_SIZE } from "./validation";
export { TOAST_COMPRESSION_SETTING } from "./handle/compression";
export { WHOLE_READ_LIMIT } from "./handle/whole-read";
export { LargeObjectColumn, oidOf } from "./orm/column";
export type { LargeObjectColumnOptions, LargeObjectTrackOptions, LargeObjectValue } from "./orm/column";
export { trackedContentOf } from "./orm/tracking";
export type { TrackedContent } from "./orm/tracking";
export { LargeObjectSubscriber } from "./orm/subscriber";
export { registerLargeObjects } from "./registration";
export { LargeObjectRepository } from "./orm/repository";
export type {
  LargeObjectRepositoryOptions,
  OpenStreamOptions,
  EntityReadOptions,
  EntityReadStreamOptions,
  EntityWriteStreamOptions,
} from "./orm/repository";
export { LargeObjectRecord, RECORDS_TABLE } from "./orm/records";
export { findReferences } from "./orm/references";
export type { LargeObjectReference } from "./orm/references";
export {
  syncLargeObjectTriggers,
  installLargeObjectTriggers,
  removeLargeObjectTriggers,
  largeObjectTriggerStatements,
} from "./cleanup/trigger-sync";
export type { TriggerMigrationStatements } from "./cleanup/trigger-sync";
export { UNLINK_LIMIT_SETTING, DEFAULT_UNLINK_LIMIT } from "./cleanup/trigger-functions";
export { sweepOrphans, DEFAULT_GRACE_MS, DEFAULT_SWEEP_BATCH_SIZE } from "./cleanup/sweep";
export type { SweepOptions, SweepReport, SweepProgress, SweepScope } from "./cleanup/sweep";
export { largeObjectStatus } from "./cleanup/status";
export type { DanglingReference, LargeObjectStatus } from "./cleanup/status";
export { stageLargeObject, touchStagedObject, discardStagedObject } from "./cleanup/staged";
export type { StagedLargeObject, StageOptions } from "./cleanup/staged";
