/**
 * Gathers incoming chunks into pieces of `pieceSize` in one buffer that is reused for every piece,
 * so a long write allocates nothing per piece (garbage that would otherwise pile up as RSS until
 * the next GC). Chunks arriving whole-piece aligned pass through as views, without a copy.
 * `write` must be done with a piece (the socket has taken it) before it resolves.
 */
export class PieceAssembler {
  private buffer: Buffer | undefined;
  private filled = 0;

  constructor(
    readonly pieceSize: number,
    private readonly write: (piece: Buffer) => Promise<void>,
  ) {}

  /** Bytes held, not yet written. */
  get pending(): number {
    return this.filled;
  }

  /** Adds a chunk, writing every piece it completes. */
  async push(chunk: Buffer): Promise<void> {
    let rest = chunk;
    while (rest.length > 0) {
      if (this.filled === 0 && rest.length >= this.pieceSize) {
        await this.write(rest.subarray(0, this.pieceSize));
        rest = rest.subarray(this.pieceSize);
        continue;
      }
      this.buffer ??= Buffer.allocUnsafe(this.pieceSize);
      const count = rest.copy(this.buffer, this.filled, 0, Math.min(rest.length, this.pieceSize - this.filled));
      this.filled += count;
      rest = rest.subarray(count);
      if (this.filled === this.pieceSize) await this.writeHeld();
    }
  }

  /** Writes what is held, as one shorter piece. */
  async flush(): Promise<void> {
    if (this.filled > 0) await this.writeHeld();
  }

  private async writeHeld(): Promise<void> {
    const piece = this.buffer!.subarray(0, this.filled);
    // Reset first: if the write fails, nothing is held twice.
    this.filled = 0;
    await this.write(piece);
  }
}
