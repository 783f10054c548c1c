// The click spool: an append-only file of framed records (spool-format.ts) for click events Kafka
// did not take in time, plus a marker file with the replay progress. One writer per file (each
// click worker has its own), all operations serialized in one queue.
//
// Durability: `append` writes a batch and fdatasyncs it before resolving, so a click is answered
// with its 302 only once its event is on disk (one fsync per batch, not per click: batches form
// while the previous fsync runs). The marker (committed offset + the offsets of records that a
// late Kafka ack delivered anyway) is replaced atomically (write, fsync, rename, fsync folder)
// after every replayed batch is acked. A crash between the ack and the marker write resends that
// batch once: the one at-least-once corner, harmless downstream because counts dedup by eventId.
//
// On open, the records after the committed offset are checked; a torn or corrupt tail (a crash in
// the middle of a write) is cut off, so it is neither replayed nor followed by new records.
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { decodeRecords, encodeRecords, type SpoolRecord } from './spool-format.js';

const SCAN_CHUNK = 4 << 20;

interface Marker {
  /** Every record before this offset is in Kafka. */
  offset: number;
  /** Offsets of records after `offset` that reached Kafka through a late ack: skipped on replay. */
  delivered: number[];
}

export interface SpoolBatch {
  records: SpoolRecord[];
  /** Records read, the skipped (delivered) ones included. */
  frames: number;
  /** Where the next read starts once these are acked (also covers skipped, delivered records). */
  next: number;
}

export class Spool {
  private queue: Promise<unknown> = Promise.resolve();
  private delivered = new Set<number>();
  /** Records between `committed` and `size` (skipped ones included). */
  private records = 0;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private committedOffset: number,
    private durableSize: number,
  ) {}

  /** Opens (or creates) the spool at `path`, cutting off a torn tail. `onTornTail` hears about it. */
  static async open(path: string, onTornTail?: (droppedBytes: number) => void): Promise<Spool> {
    await mkdir(dirname(path), { recursive: true });
    // Not O_APPEND: writes go to the tracked durable end, even after a failed partial write.
    const fh = await open(path, constants.O_RDWR | constants.O_CREAT, 0o644);
    const marker = await readMarker(`${path}.marker`);
    const fileSize = (await fh.stat()).size;
    const start = Math.min(marker.offset, fileSize);
    let pos = start;
    let count = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, fileSize - pos));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      const d = decodeRecords(buf.subarray(0, bytesRead), pos);
      count += d.records.length;
      // A partial record at the end of a chunk is read again with the next chunk.
      if (d.stop === 'partial' && d.end > pos && pos + bytesRead < fileSize) {
        pos = d.end;
        continue;
      }
      pos = d.end;
      break;
    }
    if (pos < fileSize) {
      await fh.truncate(pos);
      await fh.datasync();
      onTornTail?.(fileSize - pos);
    }
    const spool = new Spool(path, fh, start, pos);
    spool.records = count;
    for (const o of marker.delivered) if (o >= start && o < pos) spool.delivered.add(o);
    return spool;
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

  /** Appends the payloads as one write and fsyncs it; resolves with each record's offset. */
  append(payloads: Buffer[]): Promise<number[]> {
    return this.serial(async () => {
      const at = this.durableSize;
      const bytes = encodeRecords(payloads);
      await this.fh.write(bytes, 0, bytes.length, at);
      await this.fh.datasync();
      const offsets: number[] = [];
      let o = at;
      for (const p of payloads) {
        offsets.push(o);
        o += 8 + p.length;
      }
      this.durableSize = at + bytes.length;
      this.records += payloads.length;
      return offsets;
    });
  }

  /** Reads up to `maxRecords` records from the committed offset, leaving out delivered ones. */
  read(maxRecords: number, maxBytes = 1 << 20): Promise<SpoolBatch> {
    return this.serial(async () => {
      const from = this.committedOffset;
      const len = Math.min(maxBytes, this.durableSize - from);
      const buf = Buffer.allocUnsafe(len);
      const { bytesRead } = await this.fh.read(buf, 0, len, from);
      let d = decodeRecords(buf.subarray(0, bytesRead), from, maxRecords);
      if (d.records.length === 0 && d.stop === 'partial' && len < this.durableSize - from) {
        // One record larger than maxBytes: read exactly it.
        const big = Buffer.allocUnsafe(8 + buf.readUInt32BE(0));
        await this.fh.read(big, 0, big.length, from);
        d = decodeRecords(big, from, 1);
      }
      if (d.stop === 'corrupt') throw new Error(`spool ${this.path} is corrupt at offset ${d.end}`);
      const records = d.records.filter((r) => !this.delivered.has(r.offset));
      return { records, frames: d.records.length, next: d.end };
    });
  }

  /** Records that everything before `next` is in Kafka (after the ack). */
  commit(next: number, recordsDone: number): Promise<void> {
    return this.serial(async () => {
      this.committedOffset = next;
      this.records = Math.max(0, this.records - recordsDone);
      for (const o of this.delivered) if (o < next) this.delivered.delete(o);
      await this.writeMarker();
    });
  }

  /** Notes that these spooled records reached Kafka after all (a late ack): replay skips them. */
  markDelivered(offsets: number[]): Promise<void> {
    return this.serial(async () => {
      for (const o of offsets) if (o >= this.committedOffset) this.delivered.add(o);
      await this.writeMarker();
    });
  }

  /** Empties the file if everything in it was replayed; false if something was appended meanwhile. */
  resetIfDrained(): Promise<boolean> {
    return this.serial(async () => {
      if (this.durableSize !== this.committedOffset) return false;
      if (this.durableSize === 0) return true;
      // Truncate first, then the marker: a crash in between leaves a marker offset past the end of
      // an empty file, which open() clamps to 0. The other order could resend the whole file.
      await this.fh.truncate(0);
      await this.fh.datasync();
      this.durableSize = 0;
      this.committedOffset = 0;
      this.records = 0;
      this.delivered.clear();
      await this.writeMarker();
      return true;
    });
  }

  async close(): Promise<void> {
    await this.serial(async () => this.fh.close());
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async writeMarker(): Promise<void> {
    const marker: Marker = { offset: this.committedOffset, delivered: [...this.delivered] };
    const tmp = `${this.path}.marker.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(marker));
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, `${this.path}.marker`);
    await fsyncDir(dirname(this.path));
  }
}

async function readMarker(path: string): Promise<Marker> {
  try {
    const m = JSON.parse(await readFile(path, 'utf8')) as Partial<Marker>;
    const offset = Number.isSafeInteger(m.offset) && (m.offset as number) >= 0 ? (m.offset as number) : 0;
    const delivered = Array.isArray(m.delivered) ? m.delivered.filter((o) => Number.isSafeInteger(o)) : [];
    return { offset, delivered };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { offset: 0, delivered: [] };
    throw new Error(`cannot read spool marker ${path}: ${(e as Error).message}`);
  }
}

/** Makes a rename in `dir` durable. */
async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
