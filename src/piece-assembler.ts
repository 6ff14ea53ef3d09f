/** A different piece size for the start of a write: `size` until `bytes` have been written. */
export interface FirstPieces {
  size: number;
  bytes: number;
}

/**
 * Gathers incoming chunks into pieces of `pieceSize` in one buffer that is reused for every piece,
 * so a long write allocates nothing per piece (garbage that would otherwise pile up as RSS until
 * the next GC). Chunks arriving whole-piece aligned pass through as views, without a copy. With
 * `first`, the pieces up to `first.bytes` are `first.size` long instead.
 * `write` must be done with a piece (the socket has taken it) before it resolves.
 */
export class PieceAssembler {
  private buffer: Buffer | undefined;
  private filled = 0;
  /** Bytes handed to `write` so far. */
  private emitted = 0;

  constructor(
    readonly pieceSize: number,
    private readonly write: (piece: Buffer) => Promise<void>,
    private readonly first?: FirstPieces,
  ) {}

  /** Bytes held, not yet written. */
  get pending(): number {
    return this.filled;
  }

  /** Adds a chunk, writing every piece it completes. */
  async push(chunk: Buffer): Promise<void> {
    let rest = chunk;
    while (rest.length > 0) {
      const size = this.currentSize();
      if (this.filled === 0 && rest.length >= size) {
        await this.emit(rest.subarray(0, size));
        rest = rest.subarray(size);
        continue;
      }
      this.buffer ??= Buffer.allocUnsafe(Math.max(this.pieceSize, this.first?.size ?? 0));
      const count = rest.copy(this.buffer, this.filled, 0, Math.min(rest.length, size - this.filled));
      this.filled += count;
      rest = rest.subarray(count);
      if (this.filled === size) await this.writeHeld();
    }
  }

  /** Writes what is held, as one shorter piece. */
  async flush(): Promise<void> {
    if (this.filled > 0) await this.writeHeld();
  }

  private currentSize(): number {
    return this.first !== undefined && this.emitted < this.first.bytes ? this.first.size : this.pieceSize;
  }

  private async writeHeld(): Promise<void> {
    const piece = this.buffer!.subarray(0, this.filled);
    // Reset first: if the write fails, nothing is held twice.
    this.filled = 0;
    await this.emit(piece);
  }

  private async emit(piece: Buffer): Promise<void> {
    this.emitted += piece.length;
    await this.write(piece);
  }
}
