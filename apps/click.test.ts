// The spool files of worker numbers a run does not have are replayed by worker 0 with click logs of
// its own (adoptOrphanSpools): those must send as the worker's own click log does, with every
// ADCLICK_PRODUCE_* setting of the configuration (they once lacked the lanes and the compression).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'adclick-orphans-'));
Object.assign(process.env, {
  ADCLICK_SPOOL_DIR: dir,
  KAFKA_CLICKS_TOPIC: 'clicks-orphan-settings',
  ADCLICK_PRODUCE_DEADLINE_MS: '1234',
  ADCLICK_PRODUCE_LINGER_MS: '7',
  ADCLICK_PRODUCE_BATCH_MAX: '77',
  ADCLICK_PRODUCE_LANES: '3',
  ADCLICK_PRODUCE_COMPRESSION: 'gzip',
  ADCLICK_CLICK_EVENT_ENCODING: 'json',
});

const opened: Array<Record<string, unknown>> = [];
vi.mock('../ingest/click-log.js', async (original) => ({
  ...(await original<typeof import('../ingest/click-log.js')>()),
  ClickLog: {
    open: (opts: Record<string, unknown>) => {
      opened.push(opts);
      return Promise.resolve({ close: () => Promise.resolve() });
    },
  },
}));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('adoptOrphanSpools', () => {
  it("opens each orphan spool with the configured send settings, as the worker's own click log", async () => {
    writeFileSync(join(dir, 'spool-4.log'), '');
    const { adoptOrphanSpools } = await import('./click.js');
    const orphans = adoptOrphanSpools(1);
    try {
      // Bounded: a busy machine can take seconds for the first scan of the folder.
      await vi.waitFor(() => expect(opened).toHaveLength(1), { timeout: 30_000, interval: 50 });
    } finally {
      await orphans.close();
    }
    expect(opened[0]).toMatchObject({
      topic: 'clicks-orphan-settings',
      spoolPath: join(dir, 'spool-4.log'),
      deadlineMs: 1234,
      lingerMs: 7,
      batchMax: 77,
      lanes: 3,
      compression: 'gzip',
      encoding: 'json',
      spoolLockWaitMs: 0, // an orphan is only worth taking if nobody owns it
    });
  });
});
