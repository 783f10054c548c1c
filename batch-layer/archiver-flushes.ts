// The archiver's flush path: each partition's buffer to raw Parquet in S3 (one file per event hour),
// recorded in raw_files, then its offsets committed (the consumer's side, `commit`, in archiver.ts).
// A failed flush keeps its rows and is retried; at `maxBuffered` the consumer makes room first.
import { config } from '../common/config.js';
import { eventsArchived, flushFailures, flushSeconds } from './archiver-metrics.js';
import type { RawClickRow } from './parquet.js';
import {
  putBack,
  takeRows,
  uploadRawFiles,
  type ArchiverOptions,
  type PartitionBuffer,
} from './partition-buffer.js';

/** A commit KafkaJS resolved without sending it (see `Archiver.rejoin`). */
export class CommitNotSent extends Error {}

/**
 * A commit refused because the group's coordinator moved (its broker died, in a cluster). KafkaJS
 * keeps the coordinator it found at join and never looks it up again for a commit made outside its
 * runner, so every later flush is refused the same way: seen in the cluster drill, every flush failing
 * for 6 minutes after the coordinator's broker was killed, the hour never complete. Like a commit
 * KafkaJS did not send, this is the consumer's fault, not an outage of S3 or PostgreSQL: the watchdog
 * rejoins with a new consumer, which finds the coordinator again.
 */
export function staleCoordinator(e: unknown): boolean {
  const type = (e as { type?: unknown } | null)?.type;
  return type === 'NOT_COORDINATOR' || type === 'COORDINATOR_NOT_AVAILABLE';
}

export abstract class PartitionFlushes {
  protected readonly buffers = new Map<number, PartitionBuffer>();
  readonly stats = { events: 0, files: 0, commits: 0, flushFailures: 0, pauses: 0, stalls: 0 };
  /** After a failed flush, batches do not try again before this time (the timer does). */
  protected flushRetryAt = 0;
  protected lastFlushFailureAt = 0;
  protected readonly maxBuffered: number;

  constructor(protected readonly opts: ArchiverOptions) {
    this.maxBuffered = opts.maxBufferedEvents ?? config.ARCHIVER_MAX_BUFFERED_EVENTS;
  }

  /** Commits the partition's offsets past `lastOffset` (throws CommitNotSent when KafkaJS did not). */
  protected abstract commit(partition: number, lastOffset: string): Promise<void>;

  /** Events held in memory over all partitions, not yet in S3 (including those being uploaded). */
  get bufferedEvents(): number {
    let n = 0;
    for (const b of this.buffers.values()) n += b.rows.length + b.uploading;
    return n;
  }

  protected buffer(partition: number): PartitionBuffer {
    let b = this.buffers.get(partition);
    if (!b) {
      b = { rows: [], openedAt: Date.now(), uploading: 0, lock: Promise.resolve() };
      this.buffers.set(partition, b);
    }
    return b;
  }

  /** Flushes the fullest buffers until below the bound; false if a flush failed. */
  protected async makeRoom(): Promise<boolean> {
    if (Date.now() < this.flushRetryAt) return false;
    const fullest = [...this.buffers].sort(([, x], [, y]) => y.rows.length - x.rows.length);
    for (const [p, b] of fullest) {
      if (this.bufferedEvents < this.maxBuffered) break;
      if (b.rows.length === 0) continue;
      try {
        await this.flush(p);
      } catch (e) {
        this.noteFlushFailure(p, e as Error);
        return false;
      }
    }
    return this.bufferedEvents < this.maxBuffered;
  }

  protected noteFlushFailure(partition: number, e: Error): void {
    // S3 or PostgreSQL refusing is an outage the watchdog waits out; KafkaJS not sending commits, or
    // sending them to a coordinator that moved, is what the watchdog is for (if it lasts, a new consumer).
    if (!(e instanceof CommitNotSent) && !staleCoordinator(e)) this.lastFlushFailureAt = Date.now();
    this.flushRetryAt = Date.now() + Math.min(this.opts.flushMs, 5000);
    this.stats.flushFailures++;
    flushFailures.inc();
    this.opts.log?.(`flush of partition ${partition} failed (rows kept, retried): ${e.message}`);
  }

  /** Writes the partition's buffer (one file per event hour), uploads, then commits the offsets. */
  async flush(partition: number): Promise<void> {
    const b = this.buffers.get(partition);
    if (!b) return;
    const run = b.lock.then(async () => {
      // Taken synchronously: messages consumed while this flush uploads belong to the next one.
      const { rows, last, minTs } = takeRows(b);
      if (last === undefined || last === b.committedOffset) return;
      if (rows.length === 0) {
        await this.commit(partition, last); // nothing new since (rows re-read after a rejoin)
        b.committedOffset = last;
        return;
      }
      const end = flushSeconds.startTimer();
      const first = rows[0]!.offset;
      b.uploading = rows.length;
      b.uploadingMinTs = minTs;
      try {
        await this.upload(partition, rows, first, last);
      } catch (e) {
        // The consumer has moved past these offsets: keep them buffered so the next flush retries.
        putBack(b, rows);
        throw e;
      } finally {
        b.uploading = 0;
        b.uploadingMinTs = undefined;
      }
      b.committedOffset = last;
      this.stats.events += rows.length;
      eventsArchived.inc(rows.length);
      end();
    });
    b.lock = run.catch(() => undefined);
    await run;
  }

  private async upload(partition: number, rows: RawClickRow[], first: string, last: string): Promise<void> {
    this.stats.files += await uploadRawFiles(this.opts, partition, rows, first, last);
    await this.commit(partition, last);
  }
}
