import type { EventEmitter } from "node:events";

/** What the app reports about uploads, for logs and tests. */
export type UploadEvent =
  | { phase: "started"; name: string; resumable: boolean }
  | { phase: "stored"; id: number; bytes: number | null; resumable: boolean }
  | { phase: "failed"; status: number; error: unknown };

/** The app's event emitter: "upload" events carry an {@link UploadEvent}. */
export interface AppEvents extends EventEmitter {
  emit(event: "upload", payload: UploadEvent): boolean;
  on(event: "upload", listener: (payload: UploadEvent) => void): this;
  once(event: "upload", listener: (payload: UploadEvent) => void): this;
  off(event: "upload", listener: (payload: UploadEvent) => void): this;
}
