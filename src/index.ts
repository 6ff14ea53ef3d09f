export { LargeObject, DEFAULT_CHUNK_SIZE } from "./large-object";
export type { LargeObjectMode, Whence, OpenOptions, CreateOptions } from "./large-object";
export { LargeObjectReadStream } from "./read-stream";
export type { ReadStreamOptions } from "./read-stream";
export { LargeObjectWriteStream } from "./write-stream";
export type { WriteStreamOptions } from "./write-stream";
export { LargeObjectError, isLargeObjectError } from "./errors";
export type { LargeObjectErrorCode, LargeObjectErrorDetails } from "./errors";
export type { LargeObjectSource } from "./transaction-scope";
export type { LargeObjectContent } from "./content";
export type { Offset } from "./arguments";
export { MAX_LARGE_OBJECT_SIZE } from "./arguments";
export { TOAST_COMPRESSION_SETTING } from "./toast-compression";
export { LargeObjectColumn, oidOf } from "./column";
export type { LargeObjectColumnOptions, LargeObjectValue } from "./column";
export { LargeObjectSubscriber } from "./subscriber";
export { registerLargeObjects } from "./registration";
export { LargeObjectRepository } from "./large-object-repository";
export type {
  LargeObjectRepositoryOptions,
  OpenStreamOptions,
  EntityReadStreamOptions,
  EntityWriteStreamOptions,
} from "./large-object-repository";
export { LargeObjectRecord, RECORDS_TABLE } from "./records";
export {
  syncLargeObjectTriggers,
  installLargeObjectTriggers,
  removeLargeObjectTriggers,
  largeObjectTriggerStatements,
  findReferences,
  UNLINK_LIMIT_SETTING,
  DEFAULT_UNLINK_LIMIT,
} from "./triggers";
export type { TriggerMigrationStatements, LargeObjectReference } from "./triggers";
export { sweepOrphans, DEFAULT_GRACE_MS, DEFAULT_SWEEP_BATCH_SIZE } from "./sweep";
export type { SweepOptions, SweepReport, SweepProgress, SweepScope } from "./sweep";
export { largeObjectStatus } from "./status";
export type { LargeObjectStatus } from "./status";
