// The spool file on a real local disk (a temporary folder): recovery on open, resynchronisation past
// corrupt frames, ownership locks, and the fsyncs that make a new spool file's name durable.
import { randomUUID } from 'node:crypto';
import { mkdir, open as openFile, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Spool, SpoolLockedError, SpoolLockLostError } from './spool.js';
import { decodeRecords, encodeRecord, encodeRecords, HEADER_BYTES } from './spool-format.js';

/** Every open, sync and datasync that spool.ts makes, in order (the real calls still run). */
const fsCalls = vi.hoisted(() => [] as string[]);
/** While `until` is set, a marker's fsync waits for it (a busy disk); `held` counts those waits. */
const markerGate = vi.hoisted(() => ({ until: undefined as Promise<void> | undefined, held: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof real.open = async (path, flags, mode) => {
    const fh = await real.open(path, flags, mode);
    const name = String(path);
    fsCalls.push(`open ${name}`);
    const sync = fh.sync.bind(fh);
    const datasync = fh.datasync.bind(fh);
    fh.sync = async () => {
      await sync();
      fsCalls.push(`sync ${name}`);
    };
    fh.datasync = async () => {
      if (name.endsWith('.marker.tmp') && markerGate.until) {
        markerGate.held++;
        await markerGate.until;
      }
      await datasync();
      fsCalls.push(`datasync ${name}`);
    };
    return fh;
  };
  return { ...real, open, default: { ...real, open } };
});

const folders: string[] = [];
const tempSpool = (): string => {
  folders.push(join(tmpdir(), `adclick-spool-test-${randomUUID()}`));
  return join(folders.at(-1)!, 'spool-0.log');
};
afterEach(async () => {
  for (const f of folders.splice(0)) await rm(f, { recursive: true, force: true });
});
const payload = (i: number, size = 40): Buffer => Buffer.from(`{"n":${i}}`.padEnd(size, ' '));

/** Reads every record a spool would replay, as the replayer does: read, commit, until nothing is pending. */
async function replayAll(spool: Spool): Promise<string[]> {
  const out: string[] = [];
  for (let guard = 0; spool.pending && guard < 100_000; guard++) {
    const b = await spool.read(500);
    out.push(...b.records.map((r) => r.payload.toString().trim()));
    await spool.commit(b.next, b.frames);
  }
  return out;
}

const names = (from: number, to: number): string[] =>
  Array.from({ length: to - from }, (_, i) => `{"n":${from + i}}`);

describe('Spool.open recovery', () => {
  it('keeps every record when a 4 MiB scan chunk ends exactly on a record boundary', async () => {
    const path = tempSpool();
    // 1,024-byte frames: the 4,096th record ends exactly at 4 MiB, the scan's chunk size.
    const frame = 1024;
    const total = 4096 + 300;
    await mkdir(dirname(path), { recursive: true });
    await writeFile(
      path,
      encodeRecords(Array.from({ length: total }, (_, i) => payload(i, frame - HEADER_BYTES))),
    );
    expect((await stat(path)).size).toBe(total * frame);

    const spool = await Spool.open(path);
    try {
      expect(spool.size).toBe(total * frame);
      expect(spool.depth).toBe(total);
      expect(await replayAll(spool)).toEqual(names(0, total));
    } finally {
      await spool.close();
    }
  });

  it('skips a corrupt frame in the middle by resynchronising to the next valid frame', async () => {
    const path = tempSpool();
    const spool = await Spool.open(path);
    const offsets = await spool.append(Array.from({ length: 30 }, (_, i) => payload(i)));
    await spool.close();
    // Flip payload bytes of record 10 and 11 (their CRCs fail) and destroy record 20's length field.
    const fh = await openFile(path, 'r+');
    await fh.write(Buffer.from('XXXX'), 0, 4, offsets[10]! + HEADER_BYTES + 2);
    await fh.write(Buffer.from('YY'), 0, 2, offsets[11]! + HEADER_BYTES + 5);
    await fh.write(Buffer.alloc(4, 0xff), 0, 4, offsets[20]!);
    await fh.close();

    const corrupt: Array<[number, number]> = [];
    const reopened = await Spool.open(path, { onCorrupt: (at, bytes) => corrupt.push([at, bytes]) });
    try {
      expect(reopened.size).toBe((await stat(path)).size); // nothing cut off
      expect(await replayAll(reopened)).toEqual([...names(0, 10), ...names(12, 20), ...names(21, 30)]);
      expect(corrupt).toEqual([
        [offsets[10]!, offsets[12]! - offsets[10]!],
        [offsets[20]!, offsets[21]! - offsets[20]!],
      ]);
    } finally {
      await reopened.close();
    }
  });

  it('skips corruption that appears after open (read resynchronises instead of throwing)', async () => {
    const path = tempSpool();
    const spool = await Spool.open(path);
    try {
      const offsets = await spool.append(Array.from({ length: 5 }, (_, i) => payload(i)));
      const fh = await openFile(path, 'r+');
      await fh.write(Buffer.from('ZZ'), 0, 2, offsets[2]! + HEADER_BYTES + 1);
      await fh.close();
      expect(await replayAll(spool)).toEqual([...names(0, 2), ...names(3, 5)]);
    } finally {
      await spool.close();
    }
  });

  it('cuts a torn tail after the last valid frame, and new records follow the good ones', async () => {
    const path = tempSpool();
    const spool = await Spool.open(path);
    await spool.append([payload(0), payload(1)]);
    await spool.close();
    const torn = encodeRecord(payload(2));
    const fh = await openFile(path, 'a');
    await fh.write(torn.subarray(0, torn.length - 3));
    await fh.close();

    const cut: number[] = [];
    const reopened = await Spool.open(path, { onTornTail: (n) => cut.push(n) });
    try {
      expect(cut).toEqual([torn.length - 3]);
      await reopened.append([payload(3)]);
      expect(await replayAll(reopened)).toEqual([...names(0, 2), '{"n":3}']);
    } finally {
      await reopened.close();
    }
  });

  it('a damaged end of the fsynced part is skipped, not cut as a torn tail', async () => {
    const path = tempSpool();
    const spool = await Spool.open(path);
    const offsets = await spool.append(Array.from({ length: 4 }, (_, i) => payload(i)));
    await spool.close(); // records the durable size in the marker
    const fh = await openFile(path, 'r+');
    await fh.write(Buffer.from('Q'), 0, 1, offsets[3]! + HEADER_BYTES + 1);
    await fh.close();

    const cut: number[] = [];
    const corrupt: Array<[number, number]> = [];
    const reopened = await Spool.open(path, {
      onTornTail: (n) => cut.push(n),
      onCorrupt: (at, n) => corrupt.push([at, n]),
    });
    try {
      const size = (await stat(path)).size;
      expect(cut).toEqual([]);
      expect(corrupt).toEqual([[offsets[3]!, size - offsets[3]!]]);
      await reopened.append([payload(4)]);
      expect(await replayAll(reopened)).toEqual([...names(0, 3), '{"n":4}']);
    } finally {
      await reopened.close();
    }
  });

  it('a stale marker offset past the end of the file is reset on open, so later records are not skipped', async () => {
    const path = tempSpool();
    await mkdir(dirname(path), { recursive: true });
    // A crash between resetIfDrained's truncate and its marker write.
    await writeFile(`${path}.marker`, JSON.stringify({ offset: 5000, delivered: [] }));
    const a = await Spool.open(path);
    await a.append([payload(0), payload(1)]);
    await a.close();
    const b = await Spool.open(path);
    try {
      expect(await replayAll(b)).toEqual(names(0, 2));
    } finally {
      await b.close();
    }
  });
});

describe('spool ownership', () => {
  it('a second opener of a locked spool is refused with SpoolLockedError, and gets it once it is closed', async () => {
    const path = tempSpool();
    const first = await Spool.open(path);
    await first.append([payload(0)]);
    const second = Spool.open(path, { lockWaitMs: 0 });
    await expect(second).rejects.toThrow(/is locked by another/);
    await expect(second).rejects.toBeInstanceOf(SpoolLockedError);

    const waiting = Spool.open(path, { lockWaitMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    await first.close();
    const third = await waiting;
    try {
      expect(await replayAll(third)).toEqual(['{"n":0}']);
    } finally {
      await third.close();
    }
  });

  it("a dead owner's lock (not refreshed for the stale time) is taken over", async () => {
    const path = tempSpool();
    await mkdir(`${path}.lock`, { recursive: true });
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(`${path}.lock`, longAgo, longAgo);
    const spool = await Spool.open(path, { lockWaitMs: 0 });
    await spool.close();
    await expect(stat(`${path}.lock`)).rejects.toThrow(/ENOENT/); // released on close
  });

  it('fails closed once another process has taken its lock over', async () => {
    const path = tempSpool();
    let lost: Error | undefined;
    const spool = await Spool.open(path, { lockStaleMs: 2000, onLockLost: (e) => (lost = e) });
    await spool.append([payload(0)]);
    await rm(`${path}.lock`, { recursive: true }); // as a process that judged the lock stale would
    for (let i = 0; i < 40 && !lost; i++) await new Promise((r) => setTimeout(r, 100));
    expect(lost).toBeInstanceOf(SpoolLockLostError);
    await expect(spool.append([payload(1)])).rejects.toBeInstanceOf(SpoolLockLostError);
    await expect(spool.read(10)).rejects.toThrow(/lost the lock/);
    await spool.close();
  });
});

describe('spool durability', () => {
  it("fsyncs the new file's folder (and a new folder's parent) before the first append resolves", async () => {
    const path = tempSpool();
    const dir = dirname(path);
    fsCalls.length = 0;
    const spool = await Spool.open(path);
    try {
      await spool.append([payload(0)]);
      const created = fsCalls.indexOf(`open ${path}`);
      const appended = fsCalls.lastIndexOf(`datasync ${path}`);
      expect(created).toBeGreaterThanOrEqual(0);
      expect(fsCalls.slice(created, appended)).toContain(`sync ${dir}`);
      expect(fsCalls.slice(0, appended)).toContain(`sync ${dirname(dir)}`);
    } finally {
      await spool.close();
    }
  });
});

describe('spool markers and appends', () => {
  it('an append does not wait for the marker write of a replay commit (a busy disk)', async () => {
    const path = tempSpool();
    const spool = await Spool.open(path);
    let release = (): void => undefined;
    let firstEnd = 0;
    try {
      await spool.append([payload(0), payload(1)]);
      firstEnd = spool.size;
      await spool.append([payload(2)]);
      markerGate.held = 0;
      fsCalls.length = 0;
      markerGate.until = new Promise<void>((r) => (release = r));
      // The first two records are in Kafka: the commit's marker write is held at its fsync.
      const committed = spool.commit(firstEnd, 2);
      await vi.waitFor(() => expect(markerGate.held).toBe(1));
      const appended = await Promise.race([
        spool.append([payload(3)]).then(() => 'appended'),
        new Promise((r) => setTimeout(() => r('waited for the marker'), 2000)),
      ]);
      expect(appended).toBe('appended');
      // State changes while a write is held share one write after it.
      const delivered = [spool.markDelivered([firstEnd]), spool.markDelivered([firstEnd])];
      markerGate.until = undefined;
      release();
      await Promise.all([committed, ...delivered]);
      expect(fsCalls.filter((c) => c === `datasync ${path}.marker.tmp`)).toHaveLength(2);
    } finally {
      markerGate.until = undefined;
      release();
      await spool.close();
    }
    // What the markers recorded: the commit, and the late-delivered record is skipped on replay.
    const reopened = await Spool.open(path);
    try {
      expect(reopened.committed).toBe(firstEnd);
      const batch = await reopened.read(10);
      expect(batch.records.map((r) => r.payload)).toEqual([payload(3)]);
      expect(batch.frames).toBe(2);
    } finally {
      await reopened.close();
    }
  });
});

describe('poison records', () => {
  it('quarantine appends the records, framed, to <spool>.poison', async () => {
    const path = tempSpool();
    const spool = await Spool.open(path);
    try {
      const [at] = await spool.append([Buffer.from('not a click')]);
      await spool.quarantine([{ offset: at!, payload: Buffer.from('not a click') }]);
      const d = decodeRecords(await readFile(`${path}.poison`), 0);
      expect(d.stop).toBe('end');
      expect(d.records.map((r) => r.payload.toString())).toEqual(['not a click']);
    } finally {
      await spool.close();
    }
  });
});
