// Where a speed-layer consumer commits a partition's counts together with its checkpoint. Each
// implementation makes the two atomic and fences a previous owner of the partition, which is what
// makes the counts exactly-once across crashes and rebalances.
import type { Checkpoint, Flush } from './minute-window.js';

export interface PartitionSink {
  /**
   * Takes ownership of a partition: fences any previous owner's later commits and returns the last
   * committed checkpoint (null if nothing was ever committed for it).
   */
  claim(partition: number): Promise<Checkpoint | null>;
  /**
   * Commits the flush's changes and checkpoint in one atomic step. `previous` is the checkpoint this
   * state started from or last committed. Throws `FencedError` if another owner committed meanwhile.
   */
  commit(partition: number, flush: Flush, previous: Checkpoint): Promise<void>;
  close(): Promise<void>;
}

/** Another consumer owns the partition now: drop its state, commit nothing more for it. */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
}
