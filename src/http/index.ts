export { sendLargeObject } from "./send";
export type { SendLargeObjectOptions } from "./send";
export { receiveLargeObject } from "./receive";
export type { ReceiveLargeObjectOptions, UploadedFileInfo } from "./receive";
export { httpStatusOf, isLargeObjectHttpError, HTTP_STATUS_OF_CODE } from "./errors";
export type { LargeObjectHttpError, LargeObjectHttpErrorCode } from "./errors";
export { MAX_RANGES } from "./headers";
export { largeObjectStorage, isLargeObjectFile } from "./storage";
export type { LargeObjectStorageOptions, LargeObjectStorageEngine, LargeObjectFile, IncomingFormFile, StagedFileInfo } from "./storage";
