// The spool's file operations, apart from its records' meaning (spool.ts): the scan that recovers a
// spool on open, writes that go on after a short write, positioned reads, the progress marker
// (replaced atomically: write, fsync, rename, fsync folder) and folders made durable.
import { mkdir, open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { decodeRecords, findFrame, HEADER_BYTES, MAX_FRAME_BYTES } from './spool-format.js';

const SCAN_CHUNK = 4 << 20;

export interface Marker {
  /** Every record before this offset is in Kafka. */
  offset: number;
  /** Offsets of records after `offset` that reached Kafka through a late ack: skipped on replay. */
  delivered: number[];
  /** Bytes of the file known to be fsynced when the marker was written (older markers lack it: 0). */
  durable: number;
}

export interface Scan {
  /** Valid records from `start`. */
  records: number;
  /** End of the last valid frame (`start` if none). */
  validEnd: number;
  /** Damaged ranges that a valid frame follows. */
  holes: Map<number, number>;
}

/** Checks every frame in [start, end), resynchronising past damaged bytes. */
export async function scanFrom(
  fh: FileHandle,
  start: number,
  end: number,
  onCorrupt: (offset: number, bytes: number) => void,
): Promise<Scan> {
  const scan: Scan = { records: 0, validEnd: start, holes: new Map() };
  let pos = start;
  while (pos < end) {
    const len = Math.min(SCAN_CHUNK, end - pos);
    const d = decodeRecords(await readAt(fh, pos, len), pos);
    scan.records += d.records.length;
    if (d.records.length > 0) scan.validEnd = d.end;
    // A chunk may end exactly on a record boundary ('end') or inside a record ('partial', read again
    // from its start with the next chunk); either way the scan goes on to the end of the file.
    if (d.stop === 'end' || (d.stop === 'partial' && d.end > pos && pos + len < end)) {
      pos = d.end;
      continue;
    }
    const next = await nextFrame(fh, d.end, end);
    if (next < 0) break; // nothing valid follows: the caller decides what of the rest is durable
    scan.holes.set(d.end, next);
    onCorrupt(d.end, next - d.end);
    pos = next;
  }
  return scan;
}

/** The offset of the first valid frame after `from` and before `end`, or -1. */
export async function nextFrame(fh: FileHandle, from: number, end: number): Promise<number> {
  for (let c = from + 1; c + HEADER_BYTES < end; c += SCAN_CHUNK) {
    // MAX_FRAME_BYTES beyond the candidates, so that each candidate frame can be checked whole.
    const buf = await readAt(fh, c, Math.min(SCAN_CHUNK + MAX_FRAME_BYTES, end - c));
    const i = findFrame(buf, 0, SCAN_CHUNK);
    if (i >= 0) return c + i;
  }
  return -1;
}

/**
 * Writes all of `bytes` at `position` (null: at the end of a file opened O_APPEND), going on after
 * short writes; a write that fails rejects.
 */
export async function writeFully(fh: FileHandle, bytes: Buffer, position: number | null): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const at = position === null ? null : position + done;
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, at);
    // write(2) reports 0 only when it cannot go on (no error, no progress): do not spin on it.
    if (bytesWritten === 0)
      throw new Error(`spool write made no progress (${done} of ${bytes.length} bytes)`);
    done += bytesWritten;
  }
}

export async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  return buf.subarray(0, bytesRead);
}

export async function readMarker(path: string): Promise<Marker> {
  try {
    const m = JSON.parse(await readFile(path, 'utf8')) as Partial<Marker>;
    const count = (v: unknown): number => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : 0);
    const delivered = Array.isArray(m.delivered) ? m.delivered.filter((o) => Number.isSafeInteger(o)) : [];
    return { offset: count(m.offset), delivered, durable: count(m.durable) };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { offset: 0, delivered: [], durable: 0 };
    throw new Error(`cannot read spool marker ${path}: ${(e as Error).message}`);
  }
}

/** mkdir -p, then makes each new folder's name durable (fsync of its parent). */
export async function mkdirDurable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  const created: string[] = [];
  for (let d = dir; d !== dirname(first); d = dirname(d)) created.unshift(d);
  await fsyncDir(dirname(first));
  // The spool's own folder is fsynced by open() once the file is in it.
  for (const d of created.slice(0, -1)) await fsyncDir(d);
}

/** Makes a rename, creation or deletion in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replaces the marker at `path` atomically (write, fsync, rename, fsync folder). */
export async function writeMarker(path: string, marker: Marker): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(JSON.stringify(marker));
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

export function ignoreMissing(e: NodeJS.ErrnoException): void {
  if (e.code !== 'ENOENT') throw e;
}
