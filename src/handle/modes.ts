import { LargeObjectError } from "../errors";

/** How a large object is opened: read, write in place, both, or append (every write goes to the end). */
export type LargeObjectMode = "r" | "w" | "rw" | "a";

/** @internal lo_open mode bit for writing (libpq's INV_WRITE). */
export const INV_WRITE = 0x20000;
/** @internal lo_open mode bit for reading (libpq's INV_READ). */
export const INV_READ = 0x40000;

/** @internal The lo_open flags of each mode. */
export const MODE_FLAGS: Record<LargeObjectMode, number> = { r: INV_READ, w: INV_WRITE, rw: INV_READ | INV_WRITE, a: INV_WRITE };

/** @internal Validates an open mode (ERR_LO_INVALID_ARGUMENT for anything else). */
export function toMode(mode: unknown): LargeObjectMode {
  if (typeof mode === "string" && Object.hasOwn(MODE_FLAGS, mode)) return mode as LargeObjectMode;
  throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `unknown mode ${JSON.stringify(mode)}: use "r", "w", "rw" or "a"`);
}
