// Daily reconciliation: compares each ad's speed-layer day total with its batch total. Pure diff plus
// the thin reads/writes around it.
import type pg from 'pg';
import type { SpeedStore } from '../common/speed-store.js';
import type { AdDifference, ReconciliationReport } from '../common/reconciliation.js';
import { DAY_MS } from '../common/time.js';

/** Ads whose totals differ between the layers; ads missing on one side count as zero there. */
export function diffTotals(
  batch: ReadonlyMap<string, number>,
  speed: ReadonlyMap<string, number>,
): { batchTotal: number; speedTotal: number; adsCompared: number; differences: AdDifference[] } {
  const ads = new Set([...batch.keys(), ...speed.keys()]);
  let batchTotal = 0;
  let speedTotal = 0;
  const differences: AdDifference[] = [];
  for (const adId of ads) {
    const b = batch.get(adId) ?? 0;
    const s = speed.get(adId) ?? 0;
    batchTotal += b;
    speedTotal += s;
    if (b !== s) differences.push({ adId, batch: b, speed: s, difference: s - b });
  }
  differences.sort(
    (x, y) =>
      Math.abs(y.difference) - Math.abs(x.difference) || (x.adId < y.adId ? -1 : x.adId > y.adId ? 1 : 0),
  );
  return { batchTotal, speedTotal, adsCompared: ads.size, differences };
}

/**
 * Builds and stores the report of one UTC day. The speed layer cannot list its ads, so the ads
 * compared are those with batch clicks that day plus `extraAdIds` (e.g. ads a caller suspects).
 */
export async function reconcileDay(
  pool: pg.Pool,
  speed: SpeedStore,
  dayStart: number,
  opts: { extraAdIds?: readonly string[]; limit?: number } = {},
): Promise<ReconciliationReport> {
  const from = new Date(dayStart);
  const to = new Date(dayStart + DAY_MS);
  const batchRows = await pool.query<{ ad_id: string; clicks: string }>(
    'select ad_id, sum(clicks) as clicks from click_counts_hour where hour >= $1 and hour < $2 group by ad_id',
    [from, to],
  );
  const batch = new Map(batchRows.rows.map((r) => [r.ad_id, Number(r.clicks)]));
  const adIds = [...new Set([...batch.keys(), ...(opts.extraAdIds ?? [])])];
  const speedTotals = new Map<string, number>();
  for (let i = 0; i < adIds.length; i += 1000) {
    const counts = await speed.minuteCounts(adIds.slice(i, i + 1000), dayStart, dayStart + DAY_MS);
    for (const c of counts) speedTotals.set(c.adId, (speedTotals.get(c.adId) ?? 0) + c.clicks);
  }
  const d = diffTotals(batch, speedTotals);
  const hours = await pool.query<{ n: string }>(
    'select count(*) as n from finalized_hours where hour >= $1 and hour < $2',
    [from, to],
  );
  const report: ReconciliationReport = {
    date: from.toISOString().slice(0, 10),
    adsCompared: d.adsCompared,
    batchTotal: d.batchTotal,
    speedTotal: d.speedTotal,
    differingAds: d.differences.length,
    differences: d.differences.slice(0, opts.limit ?? 1000),
    finalizedHours: Number(hours.rows[0]?.n ?? 0),
  };
  await pool.query(
    `insert into reconciliation_reports (day, created_at, speed_total, batch_total, report)
     values ($1, now(), $2, $3, $4)
     on conflict (day) do update set created_at = now(), speed_total = excluded.speed_total,
       batch_total = excluded.batch_total, report = excluded.report`,
    [report.date, report.speedTotal, report.batchTotal, JSON.stringify(report)],
  );
  return report;
}
