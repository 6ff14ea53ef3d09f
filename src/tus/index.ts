export {
  LargeObjectTusStore,
  DEFAULT_TUS_EXPIRATION_MS,
  DEFAULT_COMMIT_EVERY_BYTES,
  LARGE_OBJECT_STORAGE_TYPE,
} from "./store";
export type { LargeObjectTusStoreOptions } from "./store";
export { TUS_UPLOADS_TABLE } from "./uploads-table";
export { UPLOAD_LOCKED } from "./errors";
export type { TusErrorFields, TusLargeObjectError } from "./errors";
