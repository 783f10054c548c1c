// `npm run store:compare -- --ads 1000000 --peak 1000` (docs/store.md): the authoritative counts in
// PostgreSQL (as the batch layer writes them) against a Pinot OFFLINE table (one segment per hour,
// batch-layer/pinot-offline.ts), at the capacity note's reduced scale (tools/scale.ts: Zipf ads,
// diurnal day). For each hour it writes the raw Parquet, counts it once with compaction's countHour,
// then writes the counts to each store and times it: PostgreSQL's transaction (writeHourCounts) and
// Pinot's segment (CSV input, ingestion job JVM, until the broker serves it). It then re-finalizes the
// peak hour in Pinot (the segment is replaced), and reports bytes on disk and the serving reads of
// both stores (median of 5, warm). Point DATABASE_URL at a scratch database (it writes 2000-01-01).
// Run with the local cluster's environment (source .cluster/cluster.env) it measures Pinot with two
// servers and replication 2 (issue 27; docs/store.md "Side by side").
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { query, tableSizeBytes } from '../common/pinot.js';
import { HOUR_MS } from '../common/time.js';
import { countHour, writeHourCounts } from '../batch-layer/compaction.js';
import {
  dropBatchPinotTable,
  ensureBatchPinotTable,
  pinotJvmStartMs,
  pinotOfflineDeps,
  publishHourSegment,
  servedFingerprint,
} from '../batch-layer/pinot-offline.js';
import { BatchStore } from '../serving-layer/batch-store.js';
import { PinotBatchCounts } from '../serving-layer/pinot-batch-counts.js';
import { diurnalRate } from './history.js';
import { COUNT_TABLES, clearDay, medianMs, servingReads, timed, writeHour } from './scale.js';

const fmt = (ms: number): string => (ms / 1000).toFixed(2);
const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ads: { type: 'string', default: '1000000' },
      peak: { type: 'string', default: '100' },
      hours: { type: 'string', default: '24' },
      zipf: { type: 'string', default: '1' },
      day: { type: 'string', default: '2000-01-01' },
      table: { type: 'string', default: `store_compare_${process.pid}` },
      // Keep the Pinot table afterwards (to look at it); by default it is dropped.
      keep: { type: 'boolean', default: false },
    },
  });
  const ads = Number(values.ads);
  const peak = Number(values.peak);
  const exponent = Number(values.zipf);
  const hours = Number(values.hours);
  const day = Date.parse(`${values.day}T00:00:00Z`);
  const pool = createPool(3);
  await migrate(pool);
  const dir = join(tmpdir(), `adclick-store-compare-${process.pid}`);
  await mkdir(dir, { recursive: true });
  const pinot = pinotOfflineDeps(values.table, join(dir, 'pinot'));
  await dropBatchPinotTable(pinot); // a table left by an earlier run of the same name
  await ensureBatchPinotTable(pinot);
  await clearDay(pool, day);
  console.log(
    `store-compare: ${ads} ads, Zipf ${exponent}, diurnal peak ${peak}/s, ${hours} h from ${values.day}; ` +
      `Pinot table ${values.table}; DATABASE_URL database ${new URL(config.DATABASE_URL).pathname.slice(1)}`,
  );
  // Which Pinot this is (issue 27: one server, or the local cluster's two with replication 2).
  const servers = (
    (await (await fetch(`${config.PINOT_CONTROLLER_URL}/instances`)).json()) as {
      instances: string[];
    }
  ).instances.filter((i) => i.startsWith('Server_')).length;
  console.log(
    `Pinot: ${servers} server(s), OFFLINE replication ${pinot.replication ?? 1} ` +
      `(PINOT_REPLICATION; sizes below count every replica)`,
  );
  const jvm = [];
  for (let i = 0; i < 3; i++) jvm.push(await pinotJvmStartMs(pinot));
  const jvmMs = jvm.sort((a, b) => a - b)[1]!;
  console.log(`Pinot job JVM start and exit, doing nothing (median of 3): ${fmt(jvmMs)} s`);
  console.log(
    'hour | clicks | ad-minute rows | count (shared) s | PostgreSQL write s | Pinot input s | Pinot job s | Pinot served after s | segment tar MB',
  );
  const totals = { count: 0, pg: 0, input: 0, job: 0, served: 0, tar: 0 };
  const clicksOf = (h: number): number => Math.round(diurnalRate(h % 24, peak) * 3600);
  const hourList = Array.from({ length: hours }, (_, h) => h);
  const peakH = hourList.reduce((best, h) => (clicksOf(h) > clicksOf(best) ? h : best), 0);
  let peakAdMinuteCsv = '';
  try {
    for (const h of hourList) {
      const hourStart = day + h * HOUR_MS;
      const clicks = clicksOf(h);
      const hourDir = join(dir, `h${h}`);
      await mkdir(hourDir, { recursive: true });
      const file = join(hourDir, 'raw.parquet');
      await writeHour(file, hourStart, clicks, ads, exponent);
      const [counts, countMs] = await timed(() => countHour([file], [], hourStart, hourDir));
      if (counts.validClicks !== clicks)
        throw new Error(`hour ${h}: counted ${counts.validClicks} of ${clicks}`);
      const [, pgMs] = await timed(() =>
        writeHourCounts(
          pool,
          hourStart,
          counts,
          { workflowId: 'store-compare', runId: values.table! },
          new Date(),
        ),
      );
      const published = await publishHourSegment(pinot, hourStart, counts.csv.adMinute, [file]);
      if (published.fingerprint.clicks !== clicks)
        throw new Error(`hour ${h}: Pinot serves ${published.fingerprint.clicks} of ${clicks} clicks`);
      totals.count += countMs;
      totals.pg += pgMs;
      totals.input += published.inputMs;
      totals.job += published.jobMs;
      totals.served += published.servedMs;
      totals.tar += published.segmentTarBytes;
      console.log(
        [
          h,
          clicks,
          counts.adMinutes,
          fmt(countMs),
          fmt(pgMs),
          fmt(published.inputMs),
          fmt(published.jobMs),
          fmt(published.servedMs),
          mb(published.segmentTarBytes),
        ].join(' | '),
      );
      // The peak hour's files stay for the re-finalization below.
      if (h === peakH) peakAdMinuteCsv = counts.csv.adMinute;
      else await rm(hourDir, { recursive: true, force: true });
    }
    console.log(
      `day totals: count ${fmt(totals.count)} s, PostgreSQL write ${fmt(totals.pg)} s, Pinot input ${fmt(totals.input)} s + ` +
        `job ${fmt(totals.job)} s (about ${fmt(jvmMs * hours)} s of it JVM start) + served ${fmt(totals.served)} s`,
    );

    // Finalizing the peak hour again: its segment is replaced, the hour's numbers stay the same.
    const peakStart = day + peakH * HOUR_MS;
    const peakDir = join(dir, `h${peakH}`);
    const again = await publishHourSegment(pinot, peakStart, peakAdMinuteCsv, [join(peakDir, 'raw.parquet')]);
    const served = await servedFingerprint(pinot, peakStart);
    console.log(
      `peak hour (${peakH}) finalized again in Pinot: input ${fmt(again.inputMs)} s, job ${fmt(again.jobMs)} s, ` +
        `served after ${fmt(again.servedMs)} s; serves ${served.clicks} clicks in ${served.rows} rows (replaced, not added)`,
    );

    // Bytes on disk.
    let pgBytes = 0;
    console.log('\nstore | table | rows | MB on disk');
    for (const table of COUNT_TABLES) {
      const r = await pool.query<{ bytes: string; rows: string }>(
        `select coalesce(sum(pg_total_relation_size(relid)), 0) as bytes, (select count(*) from ${table}) as rows
           from pg_partition_tree($1::regclass) where isleaf`,
        [table],
      );
      pgBytes += Number(r.rows[0]!.bytes);
      console.log(`PostgreSQL | ${table} | ${r.rows[0]!.rows} | ${mb(Number(r.rows[0]!.bytes))}`);
    }
    console.log(`PostgreSQL | all six | | ${mb(pgBytes)}`);
    const dayRows = Number((await query(`select count(*) from ${values.table}`)).rows[0]?.[0] ?? 0);
    console.log(
      `Pinot | ${values.table} (servers' segment folders) | ${dayRows} | ${mb(await tableSizeBytes(values.table))}`,
    );
    console.log(`Pinot | ${values.table} (deep store, tar.gz) | ${dayRows} | ${mb(totals.tar)}`);

    // Serving reads, warm, median of 5.
    await pool.query(`analyze ${COUNT_TABLES.join(', ')}`);
    const postgres = servingReads(new BatchStore(pool, null), day);
    const pinotReads = servingReads(new PinotBatchCounts(values.table), day);
    console.log('\nread | PostgreSQL ms | Pinot ms');
    for (let i = 0; i < postgres.length; i++) {
      const [name, pgRead] = postgres[i]!;
      const [, pinotRead] = pinotReads[i]!;
      console.log(
        `${name} | ${(await medianMs(pgRead)).toFixed(2)} | ${(await medianMs(pinotRead)).toFixed(2)}`,
      );
    }
  } finally {
    if (!values.keep) await dropBatchPinotTable(pinot).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    await pool.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
