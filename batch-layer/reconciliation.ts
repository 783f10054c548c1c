// Daily reconciliation: compares the speed layer's day with the batch layer's, per ad both ways and per
// hour (common/reconciliation.ts). Pure diffs plus the thin reads and the write around them.
import { servedDayTotals, type PinotOfflineDeps } from './pinot-offline.js';
import type pg from 'pg';
import type { SpeedStore } from '../common/speed-store.js';
import type { AdDifference, HourDifference, ReconciliationReport } from '../common/reconciliation.js';
import { DAY_MS, dateOf, hourIso } from '../common/time.js';

/** How the layers compare per ad: each disagreeing ad in exactly one list, largest gap first. */
export function diffTotals(
  batch: ReadonlyMap<string, number>,
  speed: ReadonlyMap<string, number>,
): {
  batchTotal: number;
  speedTotal: number;
  adsCompared: number;
  differences: AdDifference[];
  onlyInBatch: AdDifference[];
  onlyInSpeed: AdDifference[];
} {
  const ads = new Set([...batch.keys(), ...speed.keys()]);
  let batchTotal = 0;
  let speedTotal = 0;
  const differences: AdDifference[] = [];
  const onlyInBatch: AdDifference[] = [];
  const onlyInSpeed: AdDifference[] = [];
  for (const adId of ads) {
    const b = batch.get(adId) ?? 0;
    const s = speed.get(adId) ?? 0;
    batchTotal += b;
    speedTotal += s;
    if (b === s) continue;
    const d = { adId, batch: b, speed: s, difference: s - b };
    (s === 0 ? onlyInBatch : b === 0 ? onlyInSpeed : differences).push(d);
  }
  for (const list of [differences, onlyInBatch, onlyInSpeed]) list.sort(byGap);
  return { batchTotal, speedTotal, adsCompared: ads.size, differences, onlyInBatch, onlyInSpeed };
}

const byGap = (x: AdDifference, y: AdDifference): number =>
  Math.abs(y.difference) - Math.abs(x.difference) || (x.adId < y.adId ? -1 : x.adId > y.adId ? 1 : 0);

/** Hours whose totals differ between the layers, in time order (a missing side counts as zero). */
export function diffHours(
  batch: ReadonlyMap<number, number>,
  speed: ReadonlyMap<number, number>,
): HourDifference[] {
  return [...new Set([...batch.keys(), ...speed.keys()])]
    .sort((a, b) => a - b)
    .map((h) => ({ hour: hourIso(h), batch: batch.get(h) ?? 0, speed: speed.get(h) ?? 0 }))
    .filter((h) => h.batch !== h.speed)
    .map((h) => ({ ...h, difference: h.speed - h.batch }));
}

/**
 * The report of one UTC day, both ways: every ad with clicks in either layer (the speed layer lists
 * its own, complete however many there are) and every hour.
 */
export async function buildReconciliation(
  pool: pg.Pool,
  speed: SpeedStore,
  dayStart: number,
  opts: { limit?: number; pinot?: PinotOfflineDeps } = {},
): Promise<ReconciliationReport> {
  const from = new Date(dayStart);
  const to = new Date(dayStart + DAY_MS);
  // BATCH_STORE=pinot: the finals are in the OFFLINE table.
  const pinot = opts.pinot ? servedDayTotals(opts.pinot, dayStart) : undefined;
  const [batchAds, batchHours, speedAds, speedHours, finalized] = await Promise.all([
    pinot
      ? pinot.then((t) => ({
          rows: [...t.ads].map(([ad_id, clicks]) => ({ ad_id, clicks: String(clicks) })),
        }))
      : pool.query<{ ad_id: string; clicks: string }>(
          'select ad_id, sum(clicks) as clicks from click_counts_hour where hour >= $1 and hour < $2 group by ad_id',
          [from, to],
        ),
    pinot
      ? pinot.then((t) => ({
          rows: [...t.hours].map(([h, clicks]) => ({ hour: new Date(h), clicks: String(clicks) })),
        }))
      : pool.query<{ hour: Date; clicks: string }>(
          'select hour, sum(clicks) as clicks from click_counts_hour where hour >= $1 and hour < $2 group by hour',
          [from, to],
        ),
    speed.adTotals(dayStart, dayStart + DAY_MS),
    speed.hourTotals(dayStart, dayStart + DAY_MS),
    pool.query<{ n: string }>('select count(*) as n from finalized_hours where hour >= $1 and hour < $2', [
      from,
      to,
    ]),
  ]);
  const d = diffTotals(
    new Map(batchAds.rows.map((r) => [r.ad_id, Number(r.clicks)])),
    new Map(speedAds.map((a) => [a.adId, a.clicks])),
  );
  const limit = opts.limit ?? 1000;
  return {
    date: dateOf(dayStart),
    adsCompared: d.adsCompared,
    batchTotal: d.batchTotal,
    speedTotal: d.speedTotal,
    differingAds: d.differences.length + d.onlyInBatch.length + d.onlyInSpeed.length,
    differences: d.differences.slice(0, limit),
    onlyInBatch: d.onlyInBatch.slice(0, limit),
    onlyInSpeed: d.onlyInSpeed.slice(0, limit),
    hours: diffHours(
      new Map(batchHours.rows.map((r) => [r.hour.getTime(), Number(r.clicks)])),
      new Map(speedHours.map((h) => [h.start, h.clicks])),
    ),
    finalizedHours: Number(finalized.rows[0]?.n ?? 0),
  };
}

/** Builds the day's report and stores it (served by GET /v1/admin/reconciliation). */
export async function reconcileDay(
  pool: pg.Pool,
  speed: SpeedStore,
  dayStart: number,
  opts: { limit?: number; pinot?: PinotOfflineDeps } = {},
): Promise<ReconciliationReport> {
  const report = await buildReconciliation(pool, speed, dayStart, opts);
  await pool.query(
    `insert into reconciliation_reports (day, created_at, speed_total, batch_total, report)
     values ($1, now(), $2, $3, $4)
     on conflict (day) do update set created_at = now(), speed_total = excluded.speed_total,
       batch_total = excluded.batch_total, report = excluded.report`,
    [report.date, report.speedTotal, report.batchTotal, JSON.stringify(report)],
  );
  return report;
}
