// What an operator needs to see that money is late or lost, read from the system's own records: the
// hours that are not final (PostgreSQL), late raw files waiting for the late path, the latest
// reconciliation, recent backfills, the click processes' reported spools, each consumer group's
// committed offsets against the topic's end offsets (Kafka), free disk under the spool and the
// stack data, and the memory of the Redis that holds the click path's first-click keys. The API
// process serves it as GET /v1/admin/ops (ops-router.ts) and as Prometheus gauges (ops-metrics.ts).
// Every read has a deadline: an operator page must answer when a store hangs.
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Redis } from 'ioredis';
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import { HOUR_MS, hourOf } from '../common/time.js';
import { withDeadline } from '../common/wait.js';
import { OPS_HOUR_STATE, hourState, type HourFailureKind, type OpsHourState } from './hour-state.js';

export interface WatchedConsumer {
  group: string;
  topic: string;
}

export interface OpsStatusDeps {
  pool: pg.Pool;
  /** Connected lazily; undefined: consumer offsets are not reported. */
  kafkaAdmin?: () => Promise<Admin>;
  consumers: WatchedConsumer[];
  /** Connected lazily; undefined: recent backfills are not listed. */
  temporal?: () => Promise<Client>;
  /** Folders whose file system is watched (e.g. spool: ADCLICK_SPOOL_DIR, stack: the stack data). */
  disks: Record<string, string>;
  /** The Redis of REDIS_URL (the click path's first-click keys); undefined: its memory is not reported. */
  redis?: Redis;
  /** How far back hours are looked at (ms). */
  lookbackMs: number;
  rawRetentionMs: number;
  now?: () => number;
  timeoutMs?: number;
}

/** The operators' names of hour-state.ts's states. */
export type HourState = OpsHourState;

export interface HourSummary {
  /** Hour start, epoch ms. */
  hour: number;
  state: HourState;
  revision?: number;
  /** failed: why; waiting: what it waits for (the batch layer's record of its last compaction). */
  failure?: HourFailureRecord;
}

export interface HourFailureRecord {
  failedAt: number;
  reason: string;
  workflowId: string;
  /** `waiting`: it waits (or gave up waiting) for completeness, not an error. */
  kind: HourFailureKind;
}

export interface PartitionOffsets {
  group: string;
  topic: string;
  partition: number;
  /** -1: the group has committed nothing on this partition. */
  committed: number;
  end: number;
  lag: number;
}

/** Redis's INFO: the memory its data takes, what bounds it, and the keys it evicted to stay within. */
export interface RedisMemory {
  usedBytes: number;
  /** `maxmemory`; 0: none, Redis grows until its host has no memory left. */
  maxmemoryBytes: number;
  /** The memory of Redis's host (`total_system_memory`). */
  systemBytes: number;
  /** Keys evicted since Redis started (`maxmemory` reached; the policy chooses them). */
  evictedKeys: number;
}

/** The figures of RedisMemory from the text of `INFO memory stats`. */
export function redisMemoryOf(info: string): RedisMemory {
  const fields = new Map(
    info.split(/\r?\n/).flatMap((line) => {
      const i = line.indexOf(':');
      return i > 0 && !line.startsWith('#') ? [[line.slice(0, i), line.slice(i + 1).trim()] as const] : [];
    }),
  );
  const number = (name: string): number => {
    const v = Number(fields.get(name));
    if (!fields.has(name) || !Number.isFinite(v)) throw new Error(`Redis INFO has no number ${name}`);
    return v;
  };
  return {
    usedBytes: number('used_memory'),
    maxmemoryBytes: number('maxmemory'),
    systemBytes: number('total_system_memory'),
    evictedKeys: number('evicted_keys'),
  };
}

export interface OpsStatus {
  at: number;
  hours: HourSummary[];
  /** End (epoch ms) of the oldest hour in the lookback that is not final (not finalized, or failed). */
  oldestNotFinalHourEnd?: number;
  lateFiles: { hours: number; files: number; oldestUploadedAt?: number };
  reconciliation?: {
    day: string;
    createdAt: number;
    differingAds: number;
    speedTotal: number;
    batchTotal: number;
  };
  /** The latest backfill workflows (Temporal's visibility), newest first. */
  backfills: Array<{
    workflowId: string;
    runId: string;
    status: string;
    startedAt: number;
    closedAt?: number;
  }>;
  spools: Array<{ processId: string; spoolDepth: number; reportedAt: number }>;
  /** undefined: Kafka did not answer (reason in `errors.kafka`). */
  consumers?: PartitionOffsets[];
  disks: Array<{ name: string; path: string; freeBytes: number; sizeBytes: number }>;
  /** undefined: not watched, or Redis did not answer (reason in `errors.redis`). */
  redis?: RedisMemory;
  /** Parts that could not be read, by part: the rest of the status is still true. */
  errors: Record<string, string>;
}

/**
 * The state of each hour in [from, to) that ended, from its finalization and its last record of a
 * compaction that did not finalize (the rule of GET /v1/admin/hours: such a record after the last
 * finalization makes the hour failed, or waiting when it waits for completeness; the sweep retries
 * both).
 * `from` is the first hour the batch layer knows of: hours before the system ran are no one's hours.
 */
export function hourStates(
  from: number,
  to: number,
  finalized: ReadonlyMap<number, { finalizedAt: number; revision: number }>,
  failures: ReadonlyMap<number, HourFailureRecord>,
): HourSummary[] {
  const out: HourSummary[] = [];
  for (let h = hourOf(from); h + HOUR_MS <= to; h += HOUR_MS) {
    const f = finalized.get(h);
    const failure = failures.get(h);
    const state = hourState(f, failure);
    out.push({
      hour: h,
      state: OPS_HOUR_STATE[state],
      ...(f && { revision: f.revision }),
      ...((state === 'failed' || state === 'waiting') && { failure }),
    });
  }
  return out;
}

/** statfs of `path`, or of its nearest existing parent (a spool folder is made on the first spool). */
async function statfsNearest(path: string): Promise<Awaited<ReturnType<typeof statfs>>> {
  for (let p = path; ; p = dirname(p)) {
    try {
      return await statfs(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(p) === p) throw e;
    }
  }
}

export class OpsStatusReader {
  constructor(private readonly deps: OpsStatusDeps) {}

  async read(): Promise<OpsStatus> {
    const now = (this.deps.now ?? Date.now)();
    const ms = this.deps.timeoutMs ?? 3000;
    const errors: Record<string, string> = {};
    const part = async <T>(name: string, work: () => Promise<T>, fallback: T): Promise<T> => {
      try {
        return await withDeadline(work(), ms, `${name}: no answer within ${ms} ms`);
      } catch (e) {
        errors[name] = (e as Error).message;
        return fallback;
      }
    };
    const [hours, lateFiles, reconciliation, backfills, spools, consumers, disks, redis] = await Promise.all([
      part('hours', () => this.hours(now), []),
      part('lateFiles', () => this.lateFiles(now), { hours: 0, files: 0 }),
      part('reconciliation', () => this.reconciliation(), undefined),
      part('backfills', () => this.backfills(), []),
      part('spools', () => this.spools(), []),
      part('kafka', () => this.consumerOffsets(), undefined),
      part('disks', () => this.disks(), []),
      this.deps.redis ? part('redis', () => this.redisMemory(this.deps.redis!), undefined) : undefined,
    ]);
    const notFinal = hours.find((h) => h.state !== 'final');
    return {
      at: now,
      hours,
      ...(notFinal && { oldestNotFinalHourEnd: notFinal.hour + HOUR_MS }),
      lateFiles,
      ...(reconciliation && { reconciliation }),
      backfills,
      spools,
      ...(consumers && { consumers }),
      disks,
      ...(redis && { redis }),
      errors,
    };
  }

  private async hours(now: number): Promise<HourSummary[]> {
    const { pool } = this.deps;
    const since = new Date(hourOf(now - this.deps.lookbackMs));
    // The first hour the batch layer knows of (a finalization or a raw file) in the lookback.
    const first = await pool.query<{ first: Date | null }>(
      `select least((select min(hour) from finalized_hours where hour >= $1),
                    (select min(hour) from raw_files where hour >= $1)) as first`,
      [since],
    );
    const from = first.rows[0]?.first?.getTime();
    if (from === undefined) return [];
    const [fin, fail] = await Promise.all([
      pool.query<{ hour: Date; finalized_at: Date; revision: number }>(
        'select hour, finalized_at, revision from finalized_hours where hour >= $1',
        [new Date(from)],
      ),
      pool.query<{
        hour: Date;
        failed_at: Date;
        reason: string;
        workflow_id: string;
        kind: HourFailureKind;
      }>('select hour, failed_at, reason, workflow_id, kind from hour_failures where hour >= $1', [
        new Date(from),
      ]),
    ]);
    return hourStates(
      from,
      now,
      new Map(
        fin.rows.map((r) => [
          r.hour.getTime(),
          { finalizedAt: r.finalized_at.getTime(), revision: r.revision },
        ]),
      ),
      new Map(
        fail.rows.map((r) => [
          r.hour.getTime(),
          { failedAt: r.failed_at.getTime(), reason: r.reason, workflowId: r.workflow_id, kind: r.kind },
        ]),
      ),
    );
  }

  /** Raw files that arrived after their hour was finalized: the late path has not taken them yet. */
  private async lateFiles(now: number): Promise<OpsStatus['lateFiles']> {
    const r = await this.deps.pool.query<{ hours: string; files: string; oldest: Date | null }>(
      `select count(distinct f.hour) as hours, count(*) as files, min(r.uploaded_at) as oldest
         from finalized_hours f join raw_files r on r.hour = f.hour and r.uploaded_at > f.listed_at
        where f.hour >= $1`,
      [new Date(now - this.deps.rawRetentionMs)],
    );
    const row = r.rows[0];
    return {
      hours: Number(row?.hours ?? 0),
      files: Number(row?.files ?? 0),
      ...(row?.oldest && { oldestUploadedAt: row.oldest.getTime() }),
    };
  }

  private async reconciliation(): Promise<OpsStatus['reconciliation']> {
    const r = await this.deps.pool.query<{
      day: string;
      created_at: Date;
      differing: number | null;
      speed_total: string;
      batch_total: string;
    }>(
      `select to_char(day, 'YYYY-MM-DD') as day, created_at, (report->>'differingAds')::int as differing,
              speed_total, batch_total
         from reconciliation_reports order by day desc limit 1`,
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      day: row.day,
      createdAt: row.created_at.getTime(),
      differingAds: row.differing ?? 0,
      speedTotal: Number(row.speed_total),
      batchTotal: Number(row.batch_total),
    };
  }

  /** The latest runs of the `backfill` workflow, as Temporal lists them. */
  private async backfills(): Promise<OpsStatus['backfills']> {
    if (!this.deps.temporal) return [];
    const client = await this.deps.temporal();
    const out: OpsStatus['backfills'] = [];
    for await (const w of client.workflow.list({ query: "WorkflowType = 'backfill'", pageSize: 10 })) {
      out.push({
        workflowId: w.workflowId,
        runId: w.runId,
        status: w.status.name,
        startedAt: w.startTime.getTime(),
        ...(w.closeTime && { closedAt: w.closeTime.getTime() }),
      });
      if (out.length >= 10) break;
    }
    return out.sort((x, y) => y.startedAt - x.startedAt);
  }

  /** Click processes that reported within the hour, or whose last report left clicks in a spool. */
  private async spools(): Promise<OpsStatus['spools']> {
    const r = await this.deps.pool.query<{ process_id: string; spool_depth: string; reported_at: Date }>(
      `select process_id, spool_depth, reported_at from click_process_reports
        where reported_at > now() - interval '1 hour' or spool_depth > 0
        order by spool_depth desc, process_id limit 50`,
    );
    return r.rows.map((row) => ({
      processId: row.process_id,
      spoolDepth: Number(row.spool_depth),
      reportedAt: row.reported_at.getTime(),
    }));
  }

  /** Each watched group's committed offset on every partition of its topic, beside the end offset. */
  private async consumerOffsets(): Promise<PartitionOffsets[] | undefined> {
    if (!this.deps.kafkaAdmin) return undefined;
    const admin = await this.deps.kafkaAdmin();
    const out: PartitionOffsets[] = [];
    for (const { group, topic } of this.deps.consumers) {
      const [ends, committed] = await Promise.all([
        admin.fetchTopicOffsets(topic),
        admin.fetchOffsets({ groupId: group, topics: [topic] }),
      ]);
      const byPartition = new Map(
        (committed.find((t) => t.topic === topic)?.partitions ?? []).map((p) => [
          p.partition,
          Number(p.offset),
        ]),
      );
      for (const e of ends.sort((a, b) => a.partition - b.partition)) {
        const end = Number(e.high);
        const c = byPartition.get(e.partition) ?? -1;
        // Nothing committed yet: everything from the earliest offset still held is unread.
        const lag = c < 0 ? end - Number(e.low) : Math.max(0, end - c);
        out.push({ group, topic, partition: e.partition, committed: c, end, lag });
      }
    }
    return out;
  }

  private async disks(): Promise<OpsStatus['disks']> {
    return Promise.all(
      Object.entries(this.deps.disks).map(async ([name, path]) => {
        const s = await statfsNearest(path);
        return {
          name,
          path,
          freeBytes: Number(s.bavail) * Number(s.bsize),
          sizeBytes: Number(s.blocks) * Number(s.bsize),
        };
      }),
    );
  }

  private async redisMemory(redis: Redis): Promise<RedisMemory> {
    return redisMemoryOf(String(await redis.call('INFO', 'memory', 'stats')));
  }
}
