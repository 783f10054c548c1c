// `npm run audit:finals` against the real S3 archive and PostgreSQL: a history with repeated clicks
// across hours is archived by a real Archiver and compacted (private topic, S3 prefix, far-past hours
// and ad ids); the audit recounts it clean, reports a final row the test alters, and calls hours past
// the raw retention not auditable. The command runs as a child process, exactly as an operator runs it.
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Archiver } from '../../batch-layer/archiver.js';
import { compactHourFromS3 } from '../../batch-layer/compaction.js';
import { deleteObjects, listObjects } from '../../batch-layer/storage.js';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { createS3, ensureBucket } from '../../common/s3.js';
import { HOUR_MS, hourIso, hourOf } from '../../common/time.js';
import { auditFinals } from '../../tools/audit-finals.js';
import { generateHistory } from '../../tools/history.js';
import { archiveHistory, isolation } from './batch-helpers.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);
const HOURS = 4;

describe('audit:finals (read-only recount of the finals from the raw archive)', () => {
  const iso = isolation();
  const pool = createPool(3);
  const s3 = createS3();
  const kafka = createKafka('audit-finals-test');
  // Repeats of an impression land up to 3 hours after its first click, so the cross-hour rule matters.
  const history = generateHistory({
    from: iso.hour0,
    hours: 2,
    impressions: 800,
    adBase: iso.adBase,
    ads: 12,
    repeatRate: 0.5,
    seed: 24,
  });
  const workDir = join(tmpdir(), `audit-finals-test-${iso.run}`);
  let archiver: Archiver | undefined;
  const from = hourIso(iso.hour0);
  const to = hourIso(iso.hour0 + HOURS * HOUR_MS);

  /** Runs the command; its exit code and output (stdout then stderr). */
  async function audit(
    env: Record<string, string> = {},
    range = { from, to },
  ): Promise<{ code: number; out: string }> {
    const args = ['--import', 'tsx', 'tools/audit-finals.ts', '--from', range.from, '--to', range.to];
    try {
      const { stdout } = await run(process.execPath, args, {
        cwd: ROOT,
        env: { ...process.env, BATCH_S3_PREFIX: iso.prefix, ...env },
      });
      return { code: 0, out: stdout };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: err.code ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
    }
  }
  // The test's hours are in 1990–2019: inside a raw retention of 20,000 days (as if never expired).
  const retained = { BATCH_RAW_RETENTION_DAYS: '20000' };

  beforeAll(async () => {
    await migrate(pool);
    await ensureBucket(s3, config.S3_BUCKET);
    archiver = await archiveHistory({
      kafka,
      s3,
      pool,
      topic: iso.topic,
      prefix: iso.prefix,
      groupId: iso.groupId,
      history,
      lastHourEnd: iso.hour0 + HOURS * HOUR_MS,
    });
    const deps = { pool, s3, bucket: config.S3_BUCKET, prefix: iso.prefix, workDir, lookbackHours: 24 };
    for (let h = 0; h < HOURS; h++) {
      await compactHourFromS3(deps, iso.hour0 + h * HOUR_MS, {
        workflowId: `audit-test-${iso.run}`,
        runId: 'r',
      });
    }
  });

  afterAll(async () => {
    await archiver?.stop();
    const keys = (await listObjects(s3, config.S3_BUCKET, iso.prefix)).map((o) => o.key);
    await deleteObjects(s3, config.S3_BUCKET, keys);
    const range = [new Date(iso.hour0), new Date(iso.hour0 + HOURS * HOUR_MS)];
    for (const t of ['click_counts_minute', 'advertiser_counts_minute']) {
      await pool.query(`delete from ${t} where minute >= $1 and minute < $2`, range);
    }
    for (const t of ['click_counts_hour', 'advertiser_counts_hour', 'finalized_hours', 'hour_revisions']) {
      await pool.query(`delete from ${t} where hour >= $1 and hour < $2`, range);
    }
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [iso.topic] }).catch(() => undefined);
    await admin.disconnect();
    await pool.query('delete from archive_watermarks where topic = $1', [iso.topic]);
    await pool.end();
    s3.destroy();
    await rm(workDir, { recursive: true, force: true });
  });

  it('a finalized range audits clean, and its final clicks are the ground truth', async () => {
    const { code, out } = await audit(retained);
    expect(code, out).toBe(0);
    // Ground truth per hour, from the generator (neither the batch layer nor the audit computed it).
    const perHour = new Map<number, number>();
    for (const [key, n] of history.truth) {
      const hour = hourOf(Number(key.slice(key.indexOf('|') + 1)));
      perHour.set(hour, (perHour.get(hour) ?? 0) + n);
    }
    for (let h = 0; h < HOURS; h++) {
      const hour = iso.hour0 + h * HOUR_MS;
      const truth = perHour.get(hour) ?? 0;
      // hour  status  revision  final clicks  recount  …
      expect(out, out).toMatch(new RegExp(`^${hourIso(hour)}\\s+ok\\s+1\\s+${truth}\\s+${truth}\\s`, 'm'));
    }
    expect(out).toMatch(new RegExp(`${HOURS} hours: ${HOURS} ok, 0 different`));

    // From the second hour on: impressions first clicked in the first hour and clicked again in the
    // second must not count there, so the audit has to read the hour before `from` (the lookback).
    const first = iso.hour0;
    const again = history.events.filter(
      (e) =>
        hourOf(e.ts) === first + HOUR_MS &&
        e.status !== 'bad_signature' &&
        e.status !== 'expired' &&
        history.events.some((x) => x.eventId === e.eventId && hourOf(x.ts) === first && x.status === 'valid'),
    );
    expect(again.length).toBeGreaterThan(10);
    const later = await audit(retained, { from: hourIso(first + HOUR_MS), to });
    expect(later.code, later.out).toBe(0);
    expect(later.out).toMatch(new RegExp(`${HOURS - 1} hours: ${HOURS - 1} ok, 0 different`));

    // One hour per query: the chunks see the hours before them and count only their own.
    const hourly = await auditFinals({
      from: iso.hour0,
      to: iso.hour0 + HOURS * HOUR_MS,
      s3,
      bucket: config.S3_BUCKET,
      prefix: iso.prefix,
      pool,
      lookbackHours: 24,
      rawRetentionDays: 20_000,
      chunkHours: 1,
    });
    expect(hourly.audits.map((a) => a.status)).toEqual(Array.from({ length: HOURS }, () => 'ok'));
    expect(hourly.audits.map((a) => a.recount?.clicks)).toEqual(
      Array.from({ length: HOURS }, (_, h) => perHour.get(iso.hour0 + h * HOUR_MS) ?? 0),
    );
  });

  it('reports a final row the test alters (per ad and per hour), exit code 1', async () => {
    const hour = new Date(iso.hour0 + HOUR_MS);
    const { rows } = await pool.query<{ ad_id: string; clicks: number }>(
      'select ad_id, clicks from click_counts_hour where hour = $1 order by ad_id limit 1',
      [hour],
    );
    const row = rows[0]!;
    await pool.query('update click_counts_hour set clicks = clicks + 2 where hour = $1 and ad_id = $2', [
      hour,
      row.ad_id,
    ]);
    try {
      const { code, out } = await audit(retained);
      expect(code, out).toBe(1);
      expect(out).toMatch(new RegExp(`^${hourIso(hour.getTime())}\\s+different\\s`, 'm'));
      expect(out).toContain(`ad ${row.ad_id}: final ${row.clicks + 2}, recount ${row.clicks}`);
      expect(out).toMatch(/the hour's ad rows sum to \d+, its finalized total is \d+/);
      expect(out).toMatch(new RegExp(`${HOURS} hours: ${HOURS - 1} ok, 1 different`));
    } finally {
      await pool.query('update click_counts_hour set clicks = $3 where hour = $1 and ad_id = $2', [
        hour,
        row.ad_id,
        row.clicks,
      ]);
    }
  });

  it('hours past the raw retention are not auditable (and nothing is read for them)', async () => {
    const { code, out } = await audit(); // the default retention: 30 days before now
    expect(code, out).toBe(0);
    expect(out).toMatch(
      new RegExp(`${HOURS} hours: 0 ok, 0 different, 0 open \\(never finalized\\), ${HOURS} not auditable`),
    );
    expect(out).not.toMatch(/recounting from \d+ raw files/);
  });
});
