// `npm run audit:finals -- --from <ISO hour> --to <ISO hour, exclusive>`: a read-only audit of the
// final counts. It recounts every hour of [from, to) from the raw archive in S3 and compares the
// recount with the finals in PostgreSQL, hour by hour, per ad and per advertiser. It starts no
// workflow and writes nothing (S3 is only listed and read; PostgreSQL is read in one read-only
// transaction; the downloads go to a temporary folder that is removed). Exit code 0: every auditable
// final hour matches; 1: a difference; 2: bad arguments or a failure.
//
// The recount is this file's own, written from the rule in docs/completeness.md, and imports nothing
// from batch-layer/ (so a defect there cannot hide itself): an impression is counted once, in the
// hour of its first click that is signed and unexpired (status `valid` or `duplicate`: Redis's answer
// does not matter), ties broken by Kafka partition and offset; an impression clicked in one of the
// impression lifetime's hours before an hour is not counted again in it. So the raw files are read
// from `from` minus the impression lifetime (ADCLICK_IMPRESSION_TTL_S, rounded up to hours). An
// hour's events are its distinct Kafka messages (partition, offset), all statuses: overlapping raw
// files (an archiver crash between upload and commit) change nothing.
//
// Not auditable: an hour whose raw files, or those of its lookback hours, are past the raw retention
// (BATCH_RAW_RETENTION_DAYS, deleted by applyRetention) cannot be recounted; it is listed as such.
// Hours never finalized are listed as `open`. DuckDB reads the Parquet files (its httpfs extension is
// not available here, so objects are downloaded first, as the batch layer does).
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import type pg from 'pg';
import { config } from '../common/config.js';
import { createPool } from '../common/db.js';
import { createS3 } from '../common/s3.js';
import { HOUR_MS, hourOf, hourPartition, hoursIn, isoSeconds, parseHour } from '../common/time.js';

/** One hour's counts: total first clicks, per ad, per advertiser, and distinct Kafka messages. */
export interface HourCounts {
  clicks: number;
  events: number;
  ads: Map<string, number>;
  advertisers: Map<string, number>;
}

export interface FinalHour extends HourCounts {
  revision: number;
}

export type HourStatus = 'ok' | 'different' | 'open' | 'not auditable';

export interface HourAudit {
  hour: number;
  status: HourStatus;
  final?: FinalHour;
  recount?: HourCounts;
  /** What differs, one line each (empty unless `different`). */
  differences: string[];
}

export const emptyCounts = (): HourCounts => ({
  clicks: 0,
  events: 0,
  ads: new Map(),
  advertisers: new Map(),
});

/**
 * The first hour that can be recounted at `now`: raw files of hours before `now`'s hour less the
 * retention are deleted, and an hour's recount needs its lookback hours' files too.
 */
export function firstAuditableHour(now: number, rawRetentionDays: number, lookbackHours: number): number {
  return hourOf(now) - rawRetentionDays * 24 * HOUR_MS + lookbackHours * HOUR_MS;
}

/** Differences between two keyed counts, as lines (`what key: final F, recount R`), largest gap first. */
function mapDifferences(what: string, final: Map<string, number>, recount: Map<string, number>): string[] {
  const out: Array<{ gap: number; line: string }> = [];
  for (const key of new Set([...final.keys(), ...recount.keys()])) {
    const f = final.get(key) ?? 0;
    const r = recount.get(key) ?? 0;
    if (f !== r) out.push({ gap: Math.abs(f - r), line: `${what} ${key}: final ${f}, recount ${r}` });
  }
  return out.sort((a, b) => b.gap - a.gap || a.line.localeCompare(b.line)).map((d) => d.line);
}

/** Compares one hour's final counts with its recount. */
export function compareHour(
  hour: number,
  final: FinalHour | undefined,
  recount: HourCounts | undefined,
  auditable: boolean,
): HourAudit {
  if (!auditable) return { hour, status: 'not auditable', final, differences: [] };
  const r = recount ?? emptyCounts();
  if (!final) return { hour, status: 'open', recount: r, differences: [] };
  const differences: string[] = [];
  if (final.clicks !== r.clicks) differences.push(`valid clicks: final ${final.clicks}, recount ${r.clicks}`);
  if (final.events !== r.events) differences.push(`events: final ${final.events}, recount ${r.events}`);
  const adSum = [...final.ads.values()].reduce((a, b) => a + b, 0);
  if (adSum !== final.clicks)
    differences.push(`the hour's ad rows sum to ${adSum}, its finalized total is ${final.clicks}`);
  differences.push(...mapDifferences('ad', final.ads, r.ads));
  differences.push(...mapDifferences('advertiser', final.advertisers, r.advertisers));
  return { hour, status: differences.length > 0 ? 'different' : 'ok', final, recount: r, differences };
}

/** The printed report: one line per hour, then what differs (up to `maxLines` per hour). */
export function formatReport(audits: HourAudit[], firstAuditable: number, maxLines = 20): string {
  const rows = [['hour', 'status', 'revision', 'final clicks', 'recount', 'final events', 'recount events']];
  for (const a of audits) {
    rows.push([
      isoSeconds(a.hour),
      a.status,
      a.final ? String(a.final.revision) : '',
      a.final ? String(a.final.clicks) : '',
      a.recount ? String(a.recount.clicks) : '',
      a.final ? String(a.final.events) : '',
      a.recount ? String(a.recount.events) : '',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  for (const a of audits.filter((x) => x.status === 'different')) {
    lines.push('', `${isoSeconds(a.hour)} differs:`);
    for (const d of a.differences.slice(0, maxLines)) lines.push(`  ${d}`);
    if (a.differences.length > maxLines) lines.push(`  … and ${a.differences.length - maxLines} more`);
  }
  const count = (s: HourStatus) => audits.filter((a) => a.status === s).length;
  lines.push(
    '',
    `${audits.length} hours: ${count('ok')} ok, ${count('different')} different, ${count('open')} open ` +
      `(never finalized), ${count('not auditable')} not auditable (before ${isoSeconds(firstAuditable)}: ` +
      `their raw files, or their lookback hours', are past the raw retention)`,
  );
  return lines.join('\n');
}

export interface AuditOptions {
  from: number;
  to: number;
  s3: S3Client;
  bucket: string;
  /** Key prefix inside the bucket ('' in production). */
  prefix: string;
  pool: pg.Pool;
  lookbackHours: number;
  rawRetentionDays: number;
  now?: number;
  /** Hours recounted per query, with their lookback hours' files on disk (default 24). */
  chunkHours?: number;
  log?: (message: string) => void;
}

export interface AuditResult {
  audits: HourAudit[];
  firstAuditable: number;
  filesRead: number;
}

/** Recounts [from, to) from S3 and compares with the finals; reads only. */
export async function auditFinals(o: AuditOptions): Promise<AuditResult> {
  const log = o.log ?? (() => undefined);
  const firstAuditable = firstAuditableHour(o.now ?? Date.now(), o.rawRetentionDays, o.lookbackHours);
  const hours = hoursIn(o.from, o.to);
  const auditable = hours.filter((h) => h >= firstAuditable);
  const recount = new Map<number, HourCounts>();
  let filesRead = 0;
  if (auditable.length > 0) {
    // A day at a time, keeping only the files of the lookback hours and of the day on disk.
    const dir = await mkdtemp(join(tmpdir(), 'adclick-audit-'));
    const local = new Map<number, string[]>();
    try {
      const chunk = (o.chunkHours ?? CHUNK_HOURS) * HOUR_MS;
      for (let start = auditable[0]!; start < o.to; start += chunk) {
        const end = Math.min(o.to, start + chunk);
        const readFrom = start - o.lookbackHours * HOUR_MS;
        for (const [h, paths] of local) {
          if (h >= readFrom) continue;
          await Promise.all(paths.map((p) => rm(p, { force: true })));
          local.delete(h);
        }
        const window = hoursIn(readFrom, end);
        for (const h of window) {
          if (local.has(h)) continue;
          const paths = await downloadHour(o, h, dir);
          local.set(h, paths);
          filesRead += paths.length;
        }
        const files = window.flatMap((h) => local.get(h)!);
        log(
          `${isoSeconds(start)}–${isoSeconds(end)}: recounting from ${files.length} raw files of ${window.length} hours`,
        );
        for (const [h, c] of await recountHours(files, readFrom, start, end)) recount.set(h, c);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const finals = await readFinals(o.pool, o.from, o.to);
  const audits = hours.map((h) => compareHour(h, finals.get(h), recount.get(h), h >= firstAuditable));
  return { audits, firstAuditable, filesRead };
}

const CHUNK_HOURS = 24;

/** Downloads every raw file of one hour into `dir`; returns the local paths. */
async function downloadHour(o: AuditOptions, hour: number, dir: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await o.s3.send(
      new ListObjectsV2Command({
        Bucket: o.bucket,
        Prefix: `${o.prefix}raw/clicks/${hourPartition(hour)}/`,
        ContinuationToken: token,
      }),
    );
    for (const obj of page.Contents ?? []) if (obj.Key?.endsWith('.parquet')) keys.push(obj.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const paths = keys.map((_, i) => join(dir, `${hour}-${i}.parquet`));
  let next = 0;
  const fetchNext = async (): Promise<void> => {
    while (next < keys.length) {
      const i = next++;
      const res = await o.s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: keys[i]! }));
      await pipeline(res.Body as Readable, createWriteStream(paths[i]!));
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, keys.length) }, fetchNext));
  return paths;
}

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/**
 * The recount (docs/completeness.md): per impression, its first signed and unexpired click from
 * `readFrom` on; counted in its hour if that hour is in [from, to). Events: distinct messages per hour.
 */
async function recountHours(
  files: string[],
  readFrom: number,
  from: number,
  to: number,
): Promise<Map<number, HourCounts>> {
  const out = new Map<number, HourCounts>();
  if (files.length === 0) return out;
  const db = await DuckDBInstance.create(':memory:', { threads: '2' });
  const conn = await db.connect();
  try {
    const raw = `read_parquet([${files.map(sqlString).join(', ')}])`;
    const firstClicks = await conn.runAndReadAll(`
      with signed as (
        select event_id, ad_id, advertiser_id, ts, kafka_partition, kafka_offset from ${raw}
         where status in ('valid', 'duplicate') and ts >= ${readFrom} and ts < ${to}
      ), first as (
        select arg_min(ad_id, (ts, kafka_partition, kafka_offset)) as ad_id,
               arg_min(advertiser_id, (ts, kafka_partition, kafka_offset)) as advertiser_id,
               min(ts) as ts
          from signed group by event_id
      )
      select (ts - ts % ${HOUR_MS})::double as hour, ad_id::varchar as ad_id,
             advertiser_id::varchar as advertiser_id, count(*)::double as clicks
        from first where ts >= ${from} and ts < ${to}
       group by all`);
    const at = (hour: number): HourCounts => {
      let c = out.get(hour);
      if (!c) out.set(hour, (c = emptyCounts()));
      return c;
    };
    for (const row of firstClicks.getRowObjectsJS()) {
      const c = at(Number(row.hour));
      const n = Number(row.clicks);
      const ad = String(row.ad_id);
      const adv = String(row.advertiser_id);
      c.clicks += n;
      c.ads.set(ad, (c.ads.get(ad) ?? 0) + n);
      c.advertisers.set(adv, (c.advertisers.get(adv) ?? 0) + n);
    }
    const events = await conn.runAndReadAll(`
      select ts::double as hour, count(*)::double as events from (
        select distinct ts - ts % ${HOUR_MS} as ts, kafka_partition, kafka_offset from ${raw}
         where ts >= ${from} and ts < ${to}
      ) group by all`);
    for (const row of events.getRowObjectsJS()) at(Number(row.hour)).events = Number(row.events);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  return out;
}

/** The finals of [from, to), read in one read-only transaction (one consistent snapshot). */
async function readFinals(pool: pg.Pool, from: number, to: number): Promise<Map<number, FinalHour>> {
  const client = await pool.connect();
  const finals = new Map<number, FinalHour>();
  try {
    await client.query('begin transaction isolation level repeatable read read only');
    const range = [new Date(from), new Date(to)];
    const hours = await client.query<{ ms: string; revision: number; valid_clicks: string; events: string }>(
      `select (extract(epoch from hour) * 1000)::bigint as ms, revision, valid_clicks, events
         from finalized_hours where hour >= $1 and hour < $2`,
      range,
    );
    for (const r of hours.rows)
      finals.set(Number(r.ms), {
        revision: r.revision,
        clicks: Number(r.valid_clicks),
        events: Number(r.events),
        ads: new Map(),
        advertisers: new Map(),
      });
    const perKey = async (table: string, key: string, into: 'ads' | 'advertisers'): Promise<void> => {
      const rows = await client.query<{ ms: string; k: string; clicks: string }>(
        `select (extract(epoch from hour) * 1000)::bigint as ms, ${key}::text as k, clicks::bigint as clicks
           from ${table} where hour >= $1 and hour < $2`,
        range,
      );
      for (const r of rows.rows) finals.get(Number(r.ms))?.[into].set(r.k, Number(r.clicks));
    };
    await perKey('click_counts_hour', 'ad_id', 'ads');
    await perKey('advertiser_counts_hour', 'advertiser_id', 'advertisers');
    await client.query('commit');
  } finally {
    await client.query('rollback').catch(() => undefined);
    client.release();
  }
  return finals;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { from: { type: 'string' }, to: { type: 'string' } } });
  if (!values.from || !values.to) {
    console.error('usage: npm run audit:finals -- --from <ISO hour> --to <ISO hour, exclusive>');
    return 2;
  }
  let from: number;
  let to: number;
  try {
    from = parseHour(values.from);
    to = parseHour(values.to);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (to <= from) {
    console.error(`--to (${values.to}) must be after --from (${values.from})`);
    return 2;
  }
  const pool = createPool(2);
  try {
    const result = await auditFinals({
      from,
      to,
      s3: createS3(),
      bucket: config.S3_BUCKET,
      prefix: config.BATCH_S3_PREFIX,
      pool,
      lookbackHours: Math.ceil(config.ADCLICK_IMPRESSION_TTL_S / 3600),
      rawRetentionDays: config.BATCH_RAW_RETENTION_DAYS,
      log: (m) => console.error(m),
    });
    console.log(formatReport(result.audits, result.firstAuditable));
    return result.audits.some((a) => a.status === 'different') ? 1 : 0;
  } finally {
    await pool.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(`audit failed: ${e.message}`);
      process.exit(2);
    },
  );
}
