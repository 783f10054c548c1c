// The batch workflows end to end on real Kafka, S3, PostgreSQL and Temporal, with the worker as a
// child process (as `npm run worker` runs it): exact hourly counts with duplicates across files and
// hours, idempotent re-runs, a worker killed mid-activity, a 3-hour backfill, the schedules, and a
// reconciliation report that flags an injected difference.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { createS3, ensureBucket } from '../../common/s3.js';
import { createTemporalClient } from '../../common/temporal.js';
import { DAY_MS, HOUR_MS, dayOf } from '../../common/time.js';
import type { Archiver } from '../../batch-layer/archiver.js';
import { generateHistory, truthIn } from '../../tools/history.js';
import {
  dailyScheduleId,
  hourlyScheduleId,
  lateScheduleId,
  retentionScheduleId,
  sweepScheduleId,
  startBackfill,
} from '../../workflows/operations.js';
import { BatchStore } from '../../serving-layer/batch-store.js';
import { deleteObjects, listObjects } from '../../batch-layer/storage.js';
import { dateOf, hourIso } from '../../common/time.js';
import { compactHourId } from '../../common/workflow-ids.js';
import {
  adIdsOf,
  archiveHistory,
  hourRollupTotals,
  isolation,
  minuteRows,
  waitFor,
} from './batch-helpers.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

describe('batch workflows', () => {
  const iso = isolation();
  const pool = createPool(3);
  const s3 = createS3();
  const kafka = createKafka('batch-workflows-test');
  // Three hours of first clicks (hour0..hour2), repeats up to 3 h later (into hour3..hour5).
  const history = generateHistory({
    from: iso.hour0,
    hours: 3,
    impressions: 6000,
    adBase: iso.adBase,
    ads: 40,
    repeatRate: 0.4,
    seed: 5,
  });
  const ads = adIdsOf(history);
  const hour = (i: number): number => iso.hour0 + i * HOUR_MS;
  let archiver: Archiver;
  let client: Client;
  let worker: ChildProcess | undefined;
  const workerLog: string[] = [];

  function startWorker(extraEnv: Record<string, string> = {}): Promise<ChildProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/worker.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        TEMPORAL_TASK_QUEUE: iso.taskQueue,
        KAFKA_CLICKS_TOPIC: iso.topic,
        ARCHIVER_GROUP_ID: iso.groupId,
        BATCH_S3_PREFIX: iso.prefix,
        SPEED_STORE: 'postgres',
        ...extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new Promise((ok, fail) => {
      const onData = (b: Buffer): void => {
        workerLog.push(b.toString());
        if (b.toString().includes('[worker] polling task queue')) ok(child);
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (b: Buffer) => workerLog.push(b.toString()));
      child.on('exit', (code) =>
        fail(new Error(`worker exited (${code}) before polling:\n${workerLog.join('')}`)),
      );
    });
  }

  const compact = (h: number) =>
    client.workflow.execute('compactHour', {
      taskQueue: iso.taskQueue,
      workflowId: compactHourId(h),
      args: [{ hour: hourIso(h), watermarkPollSeconds: 1, maxWatermarkWaitMinutes: 1 }],
    });

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
      lastHourEnd: hour(6),
    });
    client = await createTemporalClient();
    worker = await startWorker({ BATCH_FAULT_PAUSE_MS: '4000' });
  });

  afterAll(async () => {
    worker?.kill('SIGKILL');
    await archiver?.stop();
    for (const id of [
      hourlyScheduleId,
      dailyScheduleId,
      lateScheduleId,
      sweepScheduleId,
      retentionScheduleId,
    ].map((f) => f(`test-${iso.run}`))) {
      await client?.schedule
        .getHandle(id)
        .delete()
        .catch(() => undefined);
    }
    await client?.connection.close();
    const keys = (await listObjects(s3, config.S3_BUCKET, iso.prefix)).map((o) => o.key);
    await deleteObjects(s3, config.S3_BUCKET, keys);
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [iso.topic] }).catch(() => undefined);
    await admin.disconnect();
    await pool.query('delete from archive_watermarks where topic = $1', [iso.topic]);
    await pool.query('delete from speed_counts_minute where ad_id = any($1::bigint[])', [ads]);
    // This run's hours (and the day compactDay finalized) leave the shared tables as they were.
    const day = dayOf(hour(0));
    const [from, to] = [new Date(day), new Date(Math.max(day + DAY_MS, hour(6)))];
    for (const table of ['click_counts_minute', 'advertiser_counts_minute']) {
      await pool.query(`delete from ${table} where minute >= $1 and minute < $2`, [from, to]);
    }
    for (const table of ['click_counts_hour', 'advertiser_counts_hour', 'finalized_hours']) {
      await pool.query(`delete from ${table} where hour >= $1 and hour < $2`, [from, to]);
    }
    await pool.query('delete from reconciliation_reports where day = $1', [dateOf(day)]);
    await pool.end();
    s3.destroy();
  });

  it('compactHour counts each impression once, in the minute of its first valid click, across files and hours', async () => {
    // hour1 holds repeats of hour0's impressions: only correct if hour0's ids are excluded.
    const result = await compact(hour(1));
    const want = truthIn(history.truth, hour(1), hour(2));
    const got = await minuteRows(pool, ads, hour(1), hour(2));
    expect(got).toEqual(want);
    expect(result.validClicks).toBe([...want.values()].reduce((a, b) => a + b, 0));
    expect(result.seenEarlier).toBeGreaterThan(0);
    expect(result.files).toBeGreaterThan(4);
    const [state] = await new BatchStore(pool).finalizedHours(hour(1), hour(2));
    expect(state).toMatchObject({ hour: hour(1), workflowId: compactHourId(hour(1)) });
    const rollups = await hourRollupTotals(pool, hour(1));
    expect(rollups).toEqual({ adHour: result.validClicks, advertiserMinute: result.validClicks });
  });

  it('running compactHour again leaves identical rows and records the new run', async () => {
    const before = await minuteRows(pool, ads, hour(1), hour(2));
    const [first] = await new BatchStore(pool).finalizedHours(hour(1), hour(2));
    await compact(hour(1));
    expect(await minuteRows(pool, ads, hour(1), hour(2))).toEqual(before);
    const [second] = await new BatchStore(pool).finalizedHours(hour(1), hour(2));
    expect(second!.runId).not.toBe(first!.runId);
  });

  it('a worker killed in the middle of the compaction activity is replaced and the result is the same', async () => {
    const handle = await client.workflow.start('compactHour', {
      taskQueue: iso.taskQueue,
      workflowId: compactHourId(hour(2)),
      args: [{ hour: hourIso(hour(2)), watermarkPollSeconds: 1, maxWatermarkWaitMinutes: 1 }],
    });
    // Wait until the activity has heartbeated (downloads done, paused by BATCH_FAULT_PAUSE_MS), then kill.
    await waitFor('the compaction activity to heartbeat', async () => {
      const d = await handle.describe();
      return d.raw.pendingActivities?.some((a) => a.heartbeatDetails) ?? false;
    });
    worker!.kill('SIGKILL');
    await new Promise((r) => worker!.once('exit', r));
    worker = await startWorker({ BATCH_FAULT_PAUSE_MS: '0' });
    await handle.result();
    expect(await minuteRows(pool, ads, hour(2), hour(3))).toEqual(truthIn(history.truth, hour(2), hour(3)));
    // The activity really ran twice: the killed attempt and the one on the new worker.
    const events = (await handle.fetchHistory()).events ?? [];
    const attempts = events
      .filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    expect(Math.max(...attempts.map(Number))).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it('a backfill over three hours finalizes the three hours with exact counts', async () => {
    const { workflowId } = await startBackfill(client, {
      from: hourIso(hour(3)),
      to: hourIso(hour(6)),
      taskQueue: iso.taskQueue,
    });
    // A second request for the same window while it runs is the same workflow.
    expect(
      (
        await startBackfill(client, {
          from: hourIso(hour(3)),
          to: hourIso(hour(6)),
          taskQueue: iso.taskQueue,
        })
      ).workflowId,
    ).toBe(workflowId);
    const progress = await client.workflow.getHandle(workflowId).result();
    expect(progress).toMatchObject({ total: 3, done: 3, failed: 0 });
    const states = await new BatchStore(pool).finalizedHours(hour(3), hour(6));
    expect(states.map((s) => s.hour)).toEqual([3, 4, 5].map(hour));
    expect(states.map((s) => s.workflowId)).toEqual([3, 4, 5].map((i) => compactHourId(hour(i))));
    // Only repeats live in these hours: every one was seen earlier, so nothing is counted.
    expect(await minuteRows(pool, ads, hour(3), hour(6))).toEqual(truthIn(history.truth, hour(3), hour(6)));
  }, 180_000);

  it('apps/schedules.ts creates the hourly and daily schedules, buffering overlaps', async () => {
    const made = spawnSync(process.execPath, ['--import', 'tsx', 'apps/schedules.ts'], {
      cwd: ROOT,
      env: { ...process.env, TEMPORAL_TASK_QUEUE: iso.taskQueue, BATCH_SCHEDULE_PREFIX: `test-${iso.run}` },
      encoding: 'utf8',
    });
    expect(made.status, made.stderr).toBe(0);
    const hourly = await client.schedule.getHandle(hourlyScheduleId(`test-${iso.run}`)).describe();
    expect(hourly.action).toMatchObject({
      type: 'startWorkflow',
      workflowType: 'compactHour',
      taskQueue: iso.taskQueue,
    });
    expect(hourly.policies.overlap).toBe('BUFFER_ALL');
    expect(hourly.spec.intervals?.[0]).toMatchObject({ every: HOUR_MS, offset: 5 * 60_000 });
    const daily = await client.schedule.getHandle(dailyScheduleId(`test-${iso.run}`)).describe();
    expect(daily.action).toMatchObject({ workflowType: 'compactDay' });
    const late = await client.schedule.getHandle(lateScheduleId(`test-${iso.run}`)).describe();
    expect(late.action).toMatchObject({ workflowType: 'finalizeLateHours', taskQueue: iso.taskQueue });
    const sweep = await client.schedule.getHandle(sweepScheduleId(`test-${iso.run}`)).describe();
    expect(sweep.action).toMatchObject({ workflowType: 'sweepHours', taskQueue: iso.taskQueue });
    const retention = await client.schedule.getHandle(retentionScheduleId(`test-${iso.run}`)).describe();
    expect(retention.action).toMatchObject({ workflowType: 'applyRetention', taskQueue: iso.taskQueue });
  });

  it('compactDay reconciles against the speed layer and flags an injected difference', async () => {
    const day = dayOf(hour(0));
    // The speed layer's store gets the true counts of the day, except one ad off by +3.
    const truth = truthIn(history.truth, day, day + DAY_MS);
    const skewed = ads[0]!;
    const rows = [...truth].map(([k, clicks]) => {
      const [adId, minute] = k.split('|');
      return [adId!, new Date(Number(minute)).toISOString(), clicks] as const;
    });
    const firstOfSkewed = rows.findIndex((r) => r[0] === skewed);
    for (const [i, [adId, minute, clicks]] of rows.entries()) {
      await pool.query(
        `insert into speed_counts_minute (ad_id, minute, salt, clicks) values ($1, $2, 0, $3)
         on conflict (ad_id, minute, salt) do update set clicks = excluded.clicks`,
        [adId, minute, clicks + (i === firstOfSkewed ? 3 : 0)],
      );
    }
    const result = await client.workflow.execute('compactDay', {
      taskQueue: iso.taskQueue,
      workflowId: `compact-day-${dateOf(day)}-${iso.run}`,
      args: [{ date: dateOf(day), parallelism: 2 }],
    });
    const report = result.reconciliation;
    expect(report.differences).toEqual([expect.objectContaining({ adId: skewed, difference: 3 })]);
    expect(report.speedTotal - report.batchTotal).toBe(3);
    const stored = await pool.query<{ report: { differingAds: number } }>(
      'select report from reconciliation_reports where day = $1',
      [dateOf(day)],
    );
    expect(stored.rows[0]!.report.differingAds).toBe(1);
    // The day's recompaction keeps every truth minute exact.
    const all = await minuteRows(pool, ads, day, day + DAY_MS);
    for (const [k, v] of truth) expect(all.get(k), k).toBe(v);
  }, 300_000);
});
