// Orphan spools on a real local folder with real spool locks: one a live owner holds is adopted once
// it is released; one whose owner died with its lock fresh is adopted once the lock goes stale.
import { randomUUID } from 'node:crypto';
import { mkdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { registry } from '../common/metrics.js';
import { Spool, spoolLockDir } from './spool.js';
import { orphanWorker, OrphanSpools } from './spool-orphans.js';

const folders: string[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  for (const f of folders.splice(0)) await rm(f, { recursive: true, force: true });
});

/** The orphan gauges as /metrics would show them now. */
async function gauges(): Promise<{ adopted: number; waiting: number; waitingBytes: number }> {
  const byState = (await registry.getSingleMetric('adclick_spool_orphans')!.get()).values;
  const bytes = (await registry.getSingleMetric('adclick_spool_orphan_waiting_bytes')!.get()).values;
  const of = (state: string) => byState.find((v) => v.labels.state === state)?.value ?? 0;
  return { adopted: of('adopted'), waiting: of('waiting'), waitingBytes: bytes[0]?.value ?? 0 };
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
}

describe('orphanWorker', () => {
  it('names the spool files of workers this run does not have, and nothing else', () => {
    expect(orphanWorker('spool-3.log', 2)).toBe(3);
    expect(orphanWorker('spool-2.log', 2)).toBe(2);
    expect(orphanWorker('spool-1.log', 2)).toBeUndefined();
    expect(orphanWorker('spool-3.log.marker', 2)).toBeUndefined();
    expect(orphanWorker('spool-3.log.lock', 2)).toBeUndefined();
    expect(orphanWorker('spool-3.log.poison', 2)).toBeUndefined();
    expect(orphanWorker('other-3.log', 2)).toBeUndefined();
  });
});

describe('OrphanSpools', () => {
  it('keeps trying: adopts a spool once its live owner releases it, and one whose dead owner left a fresh lock once it goes stale', async () => {
    const dir = join(tmpdir(), `adclick-orphans-${randomUUID()}`);
    folders.push(dir);
    await mkdir(dir, { recursive: true });
    const opts = { lockWaitMs: 0, lockStaleMs: 2000 };
    // spool-2: owned by a live process (here, an open Spool that refreshes its lock).
    const live = await Spool.open(join(dir, 'spool-2.log'), opts);
    await live.append([Buffer.from('{"n":1}')]);
    // spool-3: its owner died just now: the lock folder is there and fresh, nobody refreshes it.
    const dead = await Spool.open(join(dir, 'spool-3.log'), opts);
    await dead.append([Buffer.from('{"n":2}')]);
    // Simulate the crash: the file handle goes, the lock stays (re-created as the dead owner left it).
    await dead.close();
    await mkdir(spoolLockDir(join(dir, 'spool-3.log')));
    const now = new Date();
    await utimes(spoolLockDir(join(dir, 'spool-3.log')), now, now);

    const logs: string[] = [];
    const opened: Spool[] = [];
    const orphans = new OrphanSpools({
      dir,
      count: 2, // spool-0 and spool-1 are this run's own
      retryMs: 100,
      open: async (path) => {
        const s = await Spool.open(path, opts);
        opened.push(s);
        return s;
      },
      log: (m) => logs.push(m),
    }).start();
    cleanups.push(() => orphans.close());

    await new Promise((r) => setTimeout(r, 500));
    expect(orphans.adoptedPaths).toEqual([]);
    expect(orphans.waitingPaths.sort()).toEqual([join(dir, 'spool-2.log'), join(dir, 'spool-3.log')]);
    // Not adopted yet, still visible: two spools of one record each (8-byte header + 7 bytes).
    expect(await gauges()).toEqual({ adopted: 0, waiting: 2, waitingBytes: 2 * 15 });

    // The dead owner's lock goes stale (2 s without a refresh) and is taken over.
    await waitFor(() => orphans.adoptedPaths.length > 0, 5000);
    expect(orphans.adoptedPaths).toEqual([join(dir, 'spool-3.log')]);

    // The live owner lets go: adopted at the next try.
    await live.close();
    await waitFor(() => orphans.adoptedPaths.length > 1, 2000);
    expect(orphans.adoptedPaths.sort()).toEqual([join(dir, 'spool-2.log'), join(dir, 'spool-3.log')]);
    expect(opened.map((s) => s.depth)).toEqual([1, 1]); // each adopted with its record to replay
    expect(await gauges()).toEqual({ adopted: 2, waiting: 0, waitingBytes: 0 });
    expect(logs.filter((m) => /is locked by another process/.test(m))).toHaveLength(2); // once each
  });
});
