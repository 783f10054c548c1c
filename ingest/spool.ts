// The click spool: an append-only file of framed records (spool-format.ts) for click events Kafka
// did not take in time, plus a marker file with the replay progress. One owner per file, enforced by
// a lock; all operations of the owner are serialized in one queue.
//
// Durability: `append` writes a batch and fdatasyncs it before resolving, so a click is answered
// with its 302 only once its event is on disk (one fsync per batch, not per click: batches form
// while the previous fsync runs). The file's folder is fsynced when the file is opened (and every
// folder `open` created, in its parent), so the file's name is as durable as its records. The
// marker (committed offset, the offsets of records that a late Kafka ack delivered anyway, and the
// durable size) is replaced atomically (write, fsync, rename, fsync folder) after every replayed
// batch is acked. A crash between the ack and the marker write resends that batch once: the one
// at-least-once corner, harmless downstream because counts dedup by eventId.
//
// Recovery on open (what may be cut, what must be kept). Appends are serialized and each is one
// write followed by fdatasync, so at a crash only the last write can be incomplete, and it is the
// end of the file. Hence:
//   - bad bytes followed by a valid frame are not a torn tail (or are part of a last write that was
//     never acknowledged): they are skipped, never cut, and replay resynchronises to the next frame;
//   - bad bytes after the last valid frame are the torn last write, unless they lie before the
//     durable size recorded in the marker (written at open, after each replayed batch and at close;
//     not per append, which would double the fsyncs of the click path): those were fsynced, so they
//     are damage, skipped like any other, and only what lies past the durable size is cut.
// A record after the committed offset is thus either replayed or reported (onCorrupt), never lost
// silently. Bytes fsynced since the last marker write that end in damage with nothing valid after
// them cannot be told from a torn tail; that window is one outage at most.
//
// Ownership: one process at a time, through the spool's lock (spool-lock.ts).
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { decodeRecords, encodeRecords, HEADER_BYTES, type SpoolRecord } from './spool-format.js';
import {
  fsyncDir,
  ignoreMissing,
  mkdirDurable,
  nextFrame,
  readAt,
  readMarker,
  scanFrom,
  writeFully,
  writeMarker,
} from './spool-file.js';
import { lockSpool, SpoolLockLostError, type SpoolLockOptions } from './spool-lock.js';

export { LOCK_STALE_MS, SpoolLockedError, SpoolLockLostError, spoolLockDir } from './spool-lock.js';

export interface SpoolBatch {
  records: SpoolRecord[];
  /** Records read, the skipped (delivered) ones included. */
  frames: number;
  /** Where the next read starts once these are acked (also covers skipped records and damaged bytes). */
  next: number;
}

export interface SpoolOptions extends SpoolLockOptions {
  /** Told how many bytes of a torn last write were cut off the end. */
  onTornTail?: (droppedBytes: number) => void;
  /** Told about damaged bytes that replay skips (offset in the file, length). */
  onCorrupt?: (offset: number, bytes: number) => void;
  /** Told when the lock was taken over by another process while this spool was open (spool-lock.ts). */
  onLockLost?: (e: SpoolLockLostError) => void;
}

export class Spool {
  private queue: Promise<unknown> = Promise.resolve();
  /** Marker writes, one at a time, apart from `queue` (see persistMarker). */
  private markerQueue: Promise<unknown> = Promise.resolve();
  /** A marker write queued and not started yet: later state changes join it. */
  private markerQueued: Promise<void> | undefined;
  private delivered = new Set<number>();
  /** Records between `committed` and `size` (skipped ones included). */
  private records = 0;
  private closed = false;
  private lockLost: SpoolLockLostError | undefined;
  /** A failed append may have left bytes after the durable end: cut before the next append. */
  private dirtyTail = false;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly releaseLock: () => Promise<void>,
    private committedOffset: number,
    private durableSize: number,
    /** Damaged ranges after the committed offset: start → end (the next valid frame, or the size). */
    private readonly holes: Map<number, number>,
    private readonly onCorrupt: (offset: number, bytes: number) => void,
  ) {}

  /** Takes the lock, opens (or creates) the spool at `path` and recovers it (see the top comment). */
  static async open(path: string, opts: SpoolOptions = {}): Promise<Spool> {
    const onCorrupt = opts.onCorrupt ?? (() => undefined);
    await mkdirDurable(dirname(path));
    let spool: Spool | undefined;
    const lost = (e: Error): void => {
      const err = new SpoolLockLostError(path, e);
      if (spool) spool.lockLost = err;
      (opts.onLockLost ?? ((x: Error) => console.error(x.message)))(err);
    };
    const releaseLock = await lockSpool(path, opts, lost);
    let fh: FileHandle | undefined;
    try {
      // Not O_APPEND: writes go to the tracked durable end, even after a failed partial write.
      fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
      await fsyncDir(dirname(path));
      const marker = await readMarker(`${path}.marker`);
      const fileSize = (await fh.stat()).size;
      const start = Math.min(marker.offset, fileSize);
      const scan = await scanFrom(fh, start, fileSize, onCorrupt);
      let end = fileSize;
      if (scan.validEnd < fileSize) {
        // Nothing valid after validEnd: what the marker says was fsynced is damage, the rest torn.
        const keep = Math.min(Math.max(scan.validEnd, marker.durable), fileSize);
        if (keep > scan.validEnd) {
          scan.holes.set(scan.validEnd, keep);
          onCorrupt(scan.validEnd, keep - scan.validEnd);
        }
        if (keep < fileSize) {
          await fh.truncate(keep);
          await fh.datasync();
          opts.onTornTail?.(fileSize - keep);
        }
        end = keep;
      }
      spool = new Spool(path, fh, releaseLock, start, end, scan.holes, onCorrupt);
      spool.records = scan.records;
      for (const o of marker.delivered) if (o >= start && o < end) spool.delivered.add(o);
      // What was read is on disk (a killed process's last write may have been in the page cache
      // only), so the durable size the marker records is true; the marker write also resets an
      // offset past the end of the file (a crash inside resetIfDrained) before anything is appended.
      await fh.datasync();
      await spool.writeMarker();
      return spool;
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await releaseLock().catch(() => undefined);
      throw e;
    }
  }

  get committed(): number {
    return this.committedOffset;
  }
  /** Bytes appended and fsynced so far. */
  get size(): number {
    return this.durableSize;
  }
  /** Records waiting for replay (including ones a late ack already delivered). */
  get depth(): number {
    return this.records;
  }
  get pending(): boolean {
    return this.durableSize > this.committedOffset;
  }

  /**
   * Appends the payloads and fsyncs them; resolves with each record's offset. A short write is
   * completed by further writes; one that cannot complete (ENOSPC, EIO) or a failed fsync rejects,
   * and the bytes it left past the durable end are cut off, so that no record of a rejected append
   * is ever replayed (its clicks were answered with an error). Until they are cut (the truncate
   * failed too), every append rejects.
   */
  append(payloads: Buffer[]): Promise<number[]> {
    return this.serial(async () => {
      const at = this.durableSize;
      if (this.dirtyTail) await this.cutDirtyTail();
      const bytes = encodeRecords(payloads);
      try {
        await writeFully(this.fh, bytes, at);
        await this.fh.datasync();
      } catch (e) {
        this.dirtyTail = true;
        await this.cutDirtyTail().catch(() => undefined);
        throw e;
      }
      const offsets: number[] = [];
      let o = at;
      for (const p of payloads) {
        offsets.push(o);
        o += HEADER_BYTES + p.length;
      }
      this.durableSize = at + bytes.length;
      this.records += payloads.length;
      return offsets;
    });
  }

  /**
   * Reads up to `maxRecords` records (about `maxBytes`) from the committed offset, leaving out
   * delivered ones and skipping damaged bytes (reported once through onCorrupt).
   */
  read(maxRecords: number, maxBytes = 1 << 20): Promise<SpoolBatch> {
    return this.serial(async () => {
      const records: SpoolRecord[] = [];
      let frames = 0;
      let at = this.committedOffset;
      while (frames < maxRecords && at < this.durableSize) {
        const holeEnd = this.holes.get(at);
        if (holeEnd !== undefined) {
          at = holeEnd;
          continue;
        }
        const len = Math.min(Math.max(maxBytes, HEADER_BYTES), this.durableSize - at);
        const buf = await readAt(this.fh, at, len);
        let d = decodeRecords(buf, at, maxRecords - frames);
        if (d.records.length === 0 && d.stop === 'partial' && at + len < this.durableSize) {
          // One record larger than maxBytes (decodeRecords found its length plausible): read exactly it.
          const frame = Math.min(HEADER_BYTES + buf.readUInt32BE(0), this.durableSize - at);
          d = decodeRecords(await readAt(this.fh, at, frame), at, 1);
        }
        frames += d.records.length;
        for (const r of d.records) if (!this.delivered.has(r.offset)) records.push(r);
        at = d.end;
        // Damaged bytes, or a frame that runs past the durable end: skip to the next valid frame.
        if (d.stop === 'corrupt' || (d.stop === 'partial' && d.records.length === 0)) {
          at = await this.skipDamage(at);
          continue;
        }
        break;
      }
      return { records, frames, next: at };
    });
  }

  /** Records that everything before `next` is in Kafka (after the ack). */
  async commit(next: number, recordsDone: number): Promise<void> {
    await this.serial(async () => {
      this.committedOffset = next;
      this.records = Math.max(0, this.records - recordsDone);
      for (const o of this.delivered) if (o < next) this.delivered.delete(o);
      for (const h of this.holes.keys()) if (h < next) this.holes.delete(h);
    });
    await this.persistMarker();
  }

  /** Notes that these spooled records reached Kafka after all (a late ack): replay skips them. */
  async markDelivered(offsets: number[]): Promise<void> {
    await this.serial(async () => {
      for (const o of offsets) if (o >= this.committedOffset) this.delivered.add(o);
    });
    await this.persistMarker();
  }

  /**
   * Moves records aside to `<spool>.poison` (appended in the same framing, fsynced), for records that
   * pass their CRC but cannot be sent (a schema change, a bug). The caller commits past them after.
   * A crash before that commit quarantines them again on the next replay: the poison file is for
   * people, who may see a record twice there, never in Kafka.
   */
  quarantine(records: SpoolRecord[]): Promise<void> {
    return this.serial(async () => {
      if (records.length === 0) return;
      const fh = await open(
        `${this.path}.poison`,
        constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
        0o644,
      );
      try {
        await writeFully(fh, encodeRecords(records.map((r) => r.payload)), null);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await fsyncDir(dirname(this.path));
    });
  }

  /** Empties the file if everything in it was replayed; false if something was appended meanwhile. */
  resetIfDrained(): Promise<boolean> {
    return this.serial(async () => {
      if (this.durableSize !== this.committedOffset) return false;
      if (this.durableSize === 0) return true;
      // Truncate first, then the marker: a crash in between leaves a marker offset past the end of
      // an empty file, which open() clamps to 0 and rewrites. The other order could resend the file.
      await this.fh.truncate(0);
      await this.fh.datasync();
      this.durableSize = 0;
      this.committedOffset = 0;
      this.records = 0;
      this.delivered.clear();
      this.holes.clear();
      await this.persistMarker();
      return true;
    });
  }

  /**
   * Deletes the spool (file and marker) and releases it, if everything in it was replayed: for a
   * spool whose process is gone for good (the drain command). False, and still open, otherwise.
   */
  removeIfDrained(): Promise<boolean> {
    return this.serial(async () => {
      if (this.durableSize !== this.committedOffset) return false;
      // The file goes first: a crash before the marker is gone leaves a marker past the end of a
      // missing file, which the next open() clamps to 0.
      await unlink(this.path);
      await unlink(`${this.path}.marker`).catch(ignoreMissing);
      await fsyncDir(dirname(this.path));
      await this.shut();
      return true;
    });
  }

  /** Records the durable size in the marker, closes the file and releases the lock. */
  async close(): Promise<void> {
    await this.serial(async () => {
      await this.persistMarker();
      await this.shut();
    }).catch(async (e: Error) => {
      if (this.closed) return;
      await this.shut(); // closing must release the file and the lock even if the marker failed
      if (!(e instanceof SpoolLockLostError)) throw e;
    });
  }

  private async shut(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
    if (!this.lockLost) await this.releaseLock();
  }

  /** Cuts what a failed append left after the durable end (the file is not opened O_APPEND). */
  private async cutDirtyTail(): Promise<void> {
    await this.fh.truncate(this.durableSize);
    await this.fh.datasync();
    this.dirtyTail = false;
  }

  /** Finds the end of damaged bytes at `at` (the next valid frame, or the durable end) and remembers them. */
  private async skipDamage(at: number): Promise<number> {
    const known = this.holes.get(at);
    if (known !== undefined) return known; // found (and reported) by open()
    const next = await nextFrame(this.fh, at, this.durableSize);
    const end = next < 0 ? this.durableSize : next;
    this.holes.set(at, end);
    this.onCorrupt(at, end - at);
    return end;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = (): Promise<T> => {
      if (this.lockLost) return Promise.reject(this.lockLost);
      if (this.closed) return Promise.reject(new Error(`spool ${this.path} is closed`));
      return fn();
    };
    const run = this.queue.then(guarded, guarded);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Writes the marker with the state as it is when the write starts, after any write under way.
   * Apart from the queue of appends: a marker write is a write, an fsync, a rename and an fsync of
   * the folder, which on a busy disk takes tens of ms (each waits for the file system's journal), and
   * clicks appended in spooling mode must not wait behind the marker writes of the replay (seen in the
   * fault matrix: clicks held up to 400 ms while Kafka's backlog was replayed after a hang). Callers
   * that change the state in the meantime share the write queued next, so a burst of commits costs
   * one write after the one under way.
   */
  private persistMarker(): Promise<void> {
    if (this.markerQueued) return this.markerQueued;
    const write = this.markerQueue.then(() => {
      this.markerQueued = undefined;
      if (this.lockLost) throw this.lockLost; // another process owns the spool now
      return this.writeMarker();
    });
    this.markerQueued = write;
    this.markerQueue = write.catch(() => undefined);
    return write;
  }

  private writeMarker(): Promise<void> {
    return writeMarker(`${this.path}.marker`, {
      offset: this.committedOffset,
      delivered: [...this.delivered],
      durable: this.durableSize,
    });
  }
}
