// The authoritative counts as a Pinot OFFLINE table (batch-layer/pinot-offline.ts) on the local stack:
// an hour compacted with the batch layer's own counting is published as one segment by Pinot's
// ingestion job, served by the broker with the same numbers PostgreSQL holds for the hour, and a
// second finalization of the hour (a late raw file) replaces the segment's counts instead of adding.
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLICK_EVENT_VERSION, type ClickEvent } from '../../common/click-event.js';
import { createPool, migrate } from '../../common/db.js';
import { query } from '../../common/pinot.js';
import { HOUR_MS, MINUTE_MS } from '../../common/time.js';
import { countHour, writeHourCounts } from '../../batch-layer/compaction.js';
import { writeRawParquet, type RawClickRow } from '../../batch-layer/parquet.js';
import {
  dropBatchPinotTable,
  ensureBatchPinotTable,
  hourSegmentName,
  pinotOfflineDeps,
  publishHourSegment,
} from '../../batch-layer/pinot-offline.js';
import { BatchStore } from '../../serving-layer/batch-store.js';
import type { Count } from '../../serving-layer/merge.js';
import { PinotBatchCounts } from '../../serving-layer/pinot-batch-counts.js';
import { isolation } from './batch-helpers.js';

const sorted = (counts: Count[]): Count[] => [...counts].sort((a, b) => a.start - b.start);

describe('Pinot OFFLINE table of the batch counts', () => {
  const iso = isolation();
  const table = `batch_counts_test_${iso.run}`;
  const dir = join(tmpdir(), `pinot-offline-test-${iso.run}`);
  const pinot = pinotOfflineDeps(table, join(dir, 'pinot'));
  const pool = createPool(2);
  const hour = iso.hour0;
  const [adA, adB, adC] = [1n, 2n, 3n].map((n) => String(iso.adBase + n));
  const [advertiserX, advertiserY] = [String(iso.adBase + 10n), String(iso.adBase + 11n)];
  const advertiserOf: Record<string, string> = {
    [adA!]: advertiserX,
    [adB!]: advertiserX,
    [adC!]: advertiserY,
  };

  /** One raw click at minute `minute` of the hour; `status` other than valid is not counted. */
  let offset = 0;
  const click = (
    eventId: string,
    adId: string,
    minute: number,
    status: ClickEvent['status'] = 'valid',
  ): RawClickRow => ({
    event: {
      v: CLICK_EVENT_VERSION,
      eventId: `${iso.run}-${eventId}`,
      adId,
      advertiserId: advertiserOf[adId]!,
      ts: hour + minute * MINUTE_MS + 1000,
      status,
      salt: 0,
    },
    partition: 0,
    offset: String(offset++),
  });

  afterAll(async () => {
    await dropBatchPinotTable(pinot).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    await pool.end();
  });

  /** Counts the hour's raw files as compaction does, writes PostgreSQL, publishes the segment. */
  async function finalize(files: string[], attempt: number) {
    const out = join(dir, `attempt-${attempt}`);
    await mkdir(out, { recursive: true });
    const counts = await countHour(files, [], hour, out);
    await writeHourCounts(
      pool,
      hour,
      counts,
      { workflowId: `pinot-offline-${iso.run}`, runId: String(attempt) },
      new Date(),
    );
    return publishHourSegment(pinot, hour, counts.csv.adMinute, files);
  }

  /** Every count read of the hour, from one store. */
  async function reads(store: BatchStore | PinotBatchCounts) {
    const to = hour + HOUR_MS;
    return {
      minutes: await Promise.all(
        [adA!, adB!, adC!].map(async (ad) => sorted(await store.adMinutes(ad, hour, to))),
      ),
      hours: await Promise.all(
        [adA!, adB!, adC!].map(async (ad) => sorted(await store.adHours(ad, hour, to))),
      ),
      advertiserMinutes: await Promise.all(
        [advertiserX, advertiserY].map(async (a) => sorted(await store.advertiserMinutes(a, hour, to))),
      ),
      advertiserHours: await Promise.all(
        [advertiserX, advertiserY].map(async (a) => sorted(await store.advertiserHours(a, hour, to))),
      ),
    };
  }

  it('serves a published hour as PostgreSQL does, and a re-finalized hour replaces its segment', async () => {
    await migrate(pool);
    await mkdir(dir, { recursive: true });
    await ensureBatchPinotTable(pinot);
    await ensureBatchPinotTable(pinot); // idempotent
    const pinotStore = new PinotBatchCounts(table);
    const pgStore = new BatchStore(pool);

    // First finalization: A twice in minute 0 (one impression clicked twice counts once) and once in
    // minute 59, B once in minute 5 plus a click with a bad signature, C once in minute 5.
    const first = join(dir, 'raw-1.parquet');
    await writeRawParquet(
      [
        click('i1', adA!, 0),
        click('i2', adA!, 0),
        click('i2', adA!, 0, 'duplicate'),
        click('i3', adA!, 59),
        click('i4', adB!, 5),
        click('i5', adB!, 5, 'bad_signature'),
        click('i6', adC!, 5),
      ],
      first,
    );
    const v1 = await finalize([first], 1);
    expect(v1.segment).toBe(hourSegmentName(table, hour));
    expect(v1.fingerprint).toMatchObject({ rows: 4, clicks: 5 });
    const pinot1 = await reads(pinotStore);
    expect(pinot1.minutes[0]).toEqual([
      { start: hour, clicks: 2 },
      { start: hour + 59 * MINUTE_MS, clicks: 1 },
    ]);
    expect(pinot1.advertiserHours).toEqual([[{ start: hour, clicks: 4 }], [{ start: hour, clicks: 1 }]]);
    expect(pinot1).toEqual(await reads(pgStore));

    // A late raw file: the hour is finalized again. Its segment is replaced, so each number is the
    // new count, not the old one plus the new one.
    const late = join(dir, 'raw-2.parquet');
    await writeRawParquet(
      [click('i7', adA!, 0), click('i8', adC!, 30), click('i3', adA!, 59, 'duplicate')],
      late,
    );
    const v2 = await finalize([first, late], 2);
    expect(v2.segment).toBe(v1.segment);
    expect(v2.fingerprint).toMatchObject({ rows: 5, clicks: 7 });
    const pinot2 = await reads(pinotStore);
    expect(pinot2.hours).toEqual([
      [{ start: hour, clicks: 4 }],
      [{ start: hour, clicks: 1 }],
      [{ start: hour, clicks: 2 }],
    ]);
    expect(pinot2).toEqual(await reads(pgStore));
    const whole = await query(`select count(*), sum(clicks) from ${table}`);
    expect(whole.rows[0]?.map(Number)).toEqual([5, 7]);
  });
});
