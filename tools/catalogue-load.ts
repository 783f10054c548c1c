// Bulk loading of ads with COPY, shared by catalogue-generate and catalogue-import. One transaction:
// for a large load the secondary index (advertiser_id, ad_id) is dropped, the rows are streamed in
// with COPY and the index is rebuilt in one sort (much faster than maintaining it row by row; on
// a small load into a big table the rebuild would cost more than it saves), every advertiser id
// of the load is checked to exist with one anti-join (the table has no foreign key, see
// migrations/001_catalogue.sql), and the whole load commits or rolls back as one. The ads table
// is locked for writes meanwhile; the click path keeps serving from its replica. The load reaches
// the replicas through the outbox (migration 009) as ONE range row written in the load's own
// transaction: the per-statement capture trigger is switched off for the load (inside the
// transaction, under the lock, so no other write can pass uncaptured), because capturing 10M rows
// one by one doubled the time of a 10M-ad load.
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { inTransaction } from '../common/db.js';

/** Loads at least this large drop and rebuild the secondary index. */
export const REBUILD_INDEX_ROWS = 1_000_000;

export interface LoadResult {
  rows: number;
  firstAdId: string | null;
  lastAdId: string | null;
  seconds: number;
}

/** A progress bar on stderr, redrawn at most 10 times a second. */
export function progressBar(
  label: string,
  total: number | undefined,
): { tick(n: number): void; done(): void } {
  const started = performance.now();
  let count = 0;
  let drawn = 0;
  const draw = () => {
    const s = (performance.now() - started) / 1000;
    const rate = Math.round(count / Math.max(s, 0.001));
    if (total) {
      const f = Math.min(1, count / total);
      const bar = '#'.repeat(Math.round(f * 30)).padEnd(30, '.');
      process.stderr.write(
        `\r${label} [${bar}] ${(f * 100).toFixed(1)}% ${count}/${total} rows, ${rate}/s, ${s.toFixed(1)} s `,
      );
    } else process.stderr.write(`\r${label} ${count} rows, ${rate}/s, ${s.toFixed(1)} s `);
  };
  return {
    tick(n) {
      count += n;
      const now = performance.now();
      if (now - drawn > 100) {
        drawn = now;
        draw();
      }
    },
    done() {
      draw();
      process.stderr.write('\n');
    },
  };
}

/**
 * COPYs CSV rows `advertiser_id,redirect_url,name` (no header) from `csv` into ads. `onPhase`
 * hears about the steps after the COPY (index build, checks), which take a while on 10M rows.
 */
export async function copyAds(
  pool: pg.Pool,
  csv: Readable,
  opts: { rebuildIndex: boolean; onPhase?: (m: string) => void },
): Promise<LoadResult> {
  const onPhase = opts.onPhase ?? (() => undefined);
  const started = performance.now();
  return inTransaction(pool, async (client) => {
    await client.query("set local maintenance_work_mem = '1GB'");
    // Takes the write lock before max(ad_id) is read: the range of this load is then its own.
    await client.query('alter table ads disable trigger ads_changes_insert');
    const before = await client.query<{ max: string | null }>('select max(ad_id)::text as max from ads');
    if (opts.rebuildIndex) await client.query('drop index if exists ads_advertiser_ad_idx');
    const copy = client.query(
      copyFrom('copy ads (advertiser_id, redirect_url, name) from stdin with (format csv)'),
    );
    await pipeline(csv, copy);
    const rows = Number(copy.rowCount ?? 0);
    if (opts.rebuildIndex) {
      onPhase('rebuilding the (advertiser_id, ad_id) index');
      await client.query('create index ads_advertiser_ad_idx on ads (advertiser_id, ad_id)');
    }
    onPhase('checking advertiser ids');
    const range = await client.query<{ first: string | null; last: string | null }>(
      'select min(ad_id)::text as first, max(ad_id)::text as last from ads where ad_id > $1',
      [before.rows[0]!.max ?? '0'],
    );
    const { first, last } = range.rows[0]!;
    await client.query('alter table ads enable trigger ads_changes_insert');
    if (first && last)
      await client.query('insert into ad_changes_outbox (ad_id, last_ad_id) values ($1, $2)', [first, last]);
    if (first && last) {
      const orphans = await client.query<{ advertiser_id: string }>(
        `select distinct a.advertiser_id::text from ads a
         where a.ad_id between $1 and $2
           and not exists (select 1 from advertisers v where v.advertiser_id = a.advertiser_id)
         limit 5`,
        [first, last],
      );
      if (orphans.rows.length > 0)
        throw new Error(
          `unknown advertiser ids in the load (e.g. ${orphans.rows.map((r) => r.advertiser_id).join(', ')}); nothing was loaded`,
        );
    }
    return { rows, firstAdId: first, lastAdId: last, seconds: (performance.now() - started) / 1000 };
  });
}
