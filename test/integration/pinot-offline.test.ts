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
import { countHour, writeHourCounts, writeHourToPinot } from '../../batch-layer/compaction.js';
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
    const pgStore = new BatchStore(pool, null);

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

  it('BATCH_STORE=pinot: an hour is recorded final only once Pinot serves it; a re-finalization replaces it and records its adjustments', async () => {
    const finalRowAt = async (at: number) =>
      (
        await pool.query<{ revision: number; valid_clicks: string }>(
          'select revision, valid_clicks from finalized_hours where hour = $1',
          [new Date(at)],
        )
      ).rows[0];
    // An hour of its own that nothing has finalized: the test above finalizes `hour`, and a
    // development database keeps the hours of every earlier run (isolation() draws `hour` at random
    // from 30 years, so the next one was sometimes taken: the first check below then failed).
    let h = hour + HOUR_MS;
    while (await finalRowAt(h)) h += HOUR_MS;
    const rawOf = (e: RawClickRow): RawClickRow => ({
      ...e,
      event: { ...e.event, ts: e.event.ts + (h - hour) },
    });
    const run = (n: number) => ({ workflowId: `pinot-store-${iso.run}`, runId: String(n) });
    const finalRow = () => finalRowAt(h);
    await mkdir(dir, { recursive: true });
    const first = join(dir, 'store-raw-1.parquet');
    await writeRawParquet(
      [click('s1', adA!, 0), click('s2', adA!, 1), click('s3', adB!, 2), click('s4', adC!, 3)].map(rawOf),
      first,
    );
    const out1 = join(dir, 'store-1');
    await mkdir(out1, { recursive: true });
    const counts1 = await countHour([first], [], h, out1);

    // The segment cannot be built (no Pinot jars for the job): the hour is not recorded final.
    const broken = { ...pinot, libDir: join(dir, 'no-jars') };
    await expect(writeHourToPinot(pool, broken, h, counts1, [first], run(0), new Date())).rejects.toThrow(
      /LaunchDataIngestionJob failed/,
    );
    expect(await finalRow()).toBeUndefined();

    await writeHourToPinot(pool, pinot, h, counts1, [first], run(1), new Date());
    expect(await finalRow()).toEqual({ revision: 1, valid_clicks: '4' });
    // The serving layer's store reads the counts from Pinot, not from PostgreSQL's count tables.
    const store = new BatchStore(pool, new PinotBatchCounts(table));
    expect(await store.adHours(adA!, h, h + HOUR_MS)).toEqual([{ start: h, clicks: 2 }]);
    expect(await store.advertiserHours(advertiserX, h, h + HOUR_MS)).toEqual([{ start: h, clicks: 3 }]);
    const finalized = new Set([h]);
    expect(
      sortedTotals(
        await store.adTotalsOverFinalized({ advertiserId: advertiserX }, h, h + HOUR_MS, finalized),
      ),
    ).toEqual([
      { adId: adA!, clicks: 2 },
      { adId: adB!, clicks: 1 },
    ]);
    const byDay = await store.adDayTotals([adA!, adC!], [h]);
    expect([...byDay.values()].map((m) => Object.fromEntries(m))).toEqual([{ [adA!]: 2, [adC!]: 1 }]);

    // A late file: B and C get one more click each. Revision 2, the segment replaced, adjustments kept.
    const late = join(dir, 'store-raw-2.parquet');
    await writeRawParquet([click('s5', adB!, 10), click('s6', adC!, 11)].map(rawOf), late);
    const out2 = join(dir, 'store-2');
    await mkdir(out2, { recursive: true });
    const counts2 = await countHour([first, late], [], h, out2);
    await writeHourToPinot(pool, pinot, h, counts2, [first, late], run(2), new Date());
    expect(await finalRow()).toEqual({ revision: 2, valid_clicks: '6' });
    expect(await store.adHours(adB!, h, h + HOUR_MS)).toEqual([{ start: h, clicks: 2 }]);
    const adjustments = await store.adjustments(h, h + HOUR_MS);
    expect(adjustments.map((a) => [a.scope, a.id, a.clicksBefore, a.clicksAfter, a.revision])).toEqual([
      ['advertiser', advertiserX, 3, 4, 2],
      ['advertiser', advertiserY, 1, 2, 2],
      ['ad', adB!, 1, 2, 2],
      ['ad', adC!, 1, 2, 2],
    ]);
  });
});

const sortedTotals = (t: Array<{ adId: string; clicks: number }>) =>
  [...t].sort((a, b) => (a.adId < b.adId ? -1 : 1));
