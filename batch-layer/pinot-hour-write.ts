// The hour's counts into Pinot's OFFLINE table (BATCH_STORE=pinot, docs/store.md), its finalization
// into PostgreSQL (revisions.ts).
import type pg from 'pg';
import { inTransaction } from '../common/db.js';
import type { PendingHourCounts } from './hour-count.js';
import { PhaseClock } from './phase-clock.js';
import {
  adjustmentRows,
  ensureBatchPinotTable,
  publishHourSegment,
  servedHourTotals,
  type PinotOfflineDeps,
} from './pinot-offline.js';
import {
  currentFinalization,
  lockHour,
  recordFinalization,
  refuseIfPastCutoff,
  type CompactionRun,
} from './revisions.js';

const pinotTables = new Map<string, Promise<void>>();

/** Creates the OFFLINE table once per process (again after a failure). */
async function ensureTable(pinot: PinotOfflineDeps): Promise<void> {
  let table = pinotTables.get(pinot.table);
  if (!table) pinotTables.set(pinot.table, (table = ensureBatchPinotTable(pinot)));
  await table.catch((e: unknown) => {
    pinotTables.delete(pinot.table);
    throw e;
  });
}

/**
 * Publishes the hour's segment, replacing the hour's previous one, and only once the broker serves it
 * records the hour finalized in PostgreSQL, so the merge never calls an hour final before Pinot
 * serves it. Under the hour's lock, as `writeHourCounts`: the raw cutoff is checked again, and a
 * re-finalization that changes the hour records what it changed per ad and per advertiser
 * (hour_adjustments: the totals Pinot served before and after the push).
 * A crash between the push and the commit leaves the new segment served under the old revision (or
 * an unfinalized hour's segment, unused); the hour's listing was not recorded, so the retry or the
 * late path finalizes it again.
 */
export async function writeHourToPinot(
  pool: pg.Pool,
  pinot: PinotOfflineDeps,
  hourStart: number,
  counts: PendingHourCounts,
  rawFiles: readonly string[],
  run: CompactionRun,
  listedAt: Date,
  clock = new PhaseClock(),
  rawPrefix?: string,
): Promise<{ revision: number; changed: boolean }> {
  await ensureTable(pinot);
  return inTransaction(pool, async (client) => {
    await lockHour(client, hourStart);
    await refuseIfPastCutoff(client, hourStart, rawPrefix);
    const was = await currentFinalization(client, hourStart);
    const before = was ? await servedHourTotals(pinot, hourStart) : undefined;
    clock.lap('write: locks');
    // No valid click: no CSV rows, and the hour has no segment (an earlier one is deleted).
    await publishHourSegment(pinot, hourStart, counts.csv.adMinute, counts.validClicks > 0 ? rawFiles : []);
    clock.lap('write: Pinot segment pushed and served');
    const events = await counts.events;
    const done = await recordFinalization(client, hourStart, { ...counts, events }, run, listedAt, was);
    if (before && done.changed)
      await recordServedAdjustments(client, pinot, hourStart, done.revision, before);
    clock.lap('write: finalization recorded');
    return done;
  });
}

/** Per ad and per advertiser, the totals Pinot served before and after the push, where they differ. */
async function recordServedAdjustments(
  client: pg.PoolClient,
  pinot: PinotOfflineDeps,
  hourStart: number,
  revision: number,
  before: Awaited<ReturnType<typeof servedHourTotals>>,
): Promise<void> {
  const after = await servedHourTotals(pinot, hourStart);
  const scopes = [
    ['ad', before.ads, after.ads],
    ['advertiser', before.advertisers, after.advertisers],
  ] as const;
  for (const [scope, b, a] of scopes) {
    const rows = adjustmentRows(b, a);
    if (rows.length === 0) continue;
    await client.query(
      `insert into hour_adjustments (hour, revision, scope, id, clicks_before, clicks_after)
       select $1, $2, $3, unnest($4::bigint[]), unnest($5::bigint[]), unnest($6::bigint[])
       on conflict do nothing`,
      [
        new Date(hourStart),
        revision,
        scope,
        rows.map((r) => r.id),
        rows.map((r) => r.clicksBefore),
        rows.map((r) => r.clicksAfter),
      ],
    );
  }
}
