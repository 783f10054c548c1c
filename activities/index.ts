// Every side effect of the batch workflows: S3 reads and writes, DuckDB counting, PostgreSQL writes,
// reconciliation against the speed layer. Activities heartbeat their progress; a retried compaction
// reuses the files its previous attempt downloaded (same scratch folder) and reports where it resumed.
import { ApplicationFailure, Context, log } from '@temporalio/activity';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import type { SpeedStore } from '../common/speed-store.js';
import {
  compactHourFromS3,
  RawInputsGone,
  type CompactHourResult,
  type CompactionProgress,
} from '../batch-layer/compaction.js';
import {
  archivedOffsets,
  archivedThrough,
  endOffsets,
  judgeHour,
  readHourEvidence,
  type Offsets,
} from '../batch-layer/completeness.js';
import { hoursToSweep, lateHours, rawCutoffOf, recordHourFailure } from '../batch-layer/late-files.js';
import { sweepFrom } from '../batch-layer/decisions.js';
import type { PinotOfflineDeps } from '../batch-layer/pinot-offline.js';
import { reconcileDay } from '../batch-layer/reconciliation.js';
import {
  applyPartitionRetention,
  expireRawFiles,
  type PartitionRetentionResult,
  type RawRetentionResult,
} from '../batch-layer/retention.js';
import { tiersOf, type RetentionPolicy } from '../common/retention.js';
import type { ReconciliationReport } from '../common/reconciliation.js';
import { HOUR_MS, hourIso, hourOf, parseDate, parseHour } from '../common/time.js';

export interface BatchActivityDeps {
  pool: pg.Pool;
  s3: S3Client;
  bucket: string;
  prefix: string;
  workDir: string;
  /** The clicks topic whose archive says when an hour is complete. */
  topic: string;
  /** Kafka admin client: the topic's partitions and end offsets, the archiver's committed offsets. */
  kafkaAdmin: Admin;
  /** The archiver's consumer group (its committed offsets are what is in S3). */
  archiverGroupId: string;
  /** Click processes silent for longer are not waited for (docs/completeness.md). */
  silenceBoundMs: number;
  /** How long raw Parquet is kept: the sweep looks no further back. */
  rawRetentionHours: number;
  lookbackHours: number;
  /** The count tiers' retention (common/retention.ts). */
  retention: RetentionPolicy;
  /** Tests run retention on tables of their own: `<table><suffix>` ('' in production). */
  retentionTableSuffix?: string;
  /** The speed layer, for reconciliation; without it the daily report cannot be made. */
  speedStore?: SpeedStore;
  faultPauseMs?: number;
  /** BATCH_STORE=pinot: compaction publishes each hour to this OFFLINE table (docs/store.md). */
  pinot?: PinotOfflineDeps;
}

export type {
  CompactHourResult,
  Offsets,
  PartitionRetentionResult,
  RawRetentionResult,
  ReconciliationReport,
};

/** The answer of `hourComplete`: complete, or what it waits for and the offsets the archiver must reach. */
export type HourCompleteness =
  { complete: true; notWaitedFor: string[] } | { complete: false; waitingFor: string; target?: Offsets };

// eslint-disable-next-line max-lines-per-function -- the table of activities the worker registers, each a few lines over a batch-layer call (docs/architecture.md, sizes kept on purpose)
export function createActivities(deps: BatchActivityDeps) {
  return {
    /**
     * Is every click of the hour in the raw archive (batch-layer/completeness.ts)? Once the archive
     * watermarks and the click processes' reports allow it, the answer names the topic's end offsets
     * (`target`) the archiver must have committed; the workflow passes them back on the next check.
     */
    async hourComplete(hour: string, target?: Offsets): Promise<HourCompleteness> {
      const evidence = await readHourEvidence(
        deps.pool,
        deps.kafkaAdmin,
        deps.topic,
        parseHour(hour) + HOUR_MS,
        deps.silenceBoundMs,
      );
      const judged = judgeHour(evidence);
      if (!judged.ready) return { complete: false, waitingFor: judged.waitingFor, target };
      const goal = target ?? (await endOffsets(deps.kafkaAdmin, deps.topic));
      const archived = await archivedOffsets(deps.kafkaAdmin, deps.archiverGroupId, deps.topic);
      if (!archivedThrough(archived, goal))
        return { complete: false, waitingFor: 'the archiver to upload what Kafka holds', target: goal };
      if (judged.notWaitedFor.length > 0)
        log.warn('finalizing without silent click processes; the late path covers them', {
          hour,
          processes: judged.notWaitedFor,
        });
      return { complete: true, notWaitedFor: judged.notWaitedFor };
    },

    /**
     * The late path's queue (batch-layer/decisions.ts, `staleHours`): finalized hours in [from, to)
     * (ISO hours; default: the raw retention) any of whose inputs, their own raw files or those of
     * the hours in their lookback, were uploaded after their last compaction listed them. Never
     * before the raw cutoff (such hours cannot be recounted). Oldest first, failing ones last;
     * `exclude`: hours this run already took up.
     */
    async lateHours(
      range: { from?: string; to?: string },
      limit: number,
      exclude: string[] = [],
    ): Promise<string[]> {
      const cutoff = await rawCutoffOf(deps.pool, deps.prefix);
      const clock = hourOf(Date.now()) - deps.rawRetentionHours * HOUR_MS;
      const from = Math.max(range.from ? parseHour(range.from) : clock, cutoff ?? -Infinity);
      const to = range.to ? parseHour(range.to) : Date.UTC(9999, 0);
      const hours = await lateHours(
        deps.pool,
        from,
        to,
        limit,
        deps.lookbackHours,
        exclude.map(parseHour),
        deps.prefix,
      );
      return hours.map(hourIso);
    },

    /**
     * Hours to (re)start, oldest first: never finalized, or whose compaction failed since. Default
     * range: the raw-data retention up to two hours ago (the hourly schedule owns the newest).
     */
    async hoursToSweep(range: { from?: string; to?: string }, limit: number): Promise<string[]> {
      const now = Date.now();
      const cutoff = await rawCutoffOf(deps.pool, deps.prefix);
      const from = range.from
        ? parseHour(range.from)
        : sweepFrom({ now, retentionHours: deps.rawRetentionHours, hourMs: HOUR_MS, cutoff });
      const to = range.to ? parseHour(range.to) : hourOf(now) - 2 * HOUR_MS;
      return (await hoursToSweep(deps.pool, from, to, limit)).map(hourIso);
    },

    /**
     * Records an hour's unsuccessful compaction until it is finalized: `failed` (an error, a refusal)
     * or `waiting` (for completeness: what for is the reason) in GET /v1/admin/hours.
     */
    async recordHourFailure(
      hour: string,
      reason: string,
      kind: 'failed' | 'waiting' = 'failed',
    ): Promise<void> {
      const execution = Context.current().info.workflowExecution;
      await recordHourFailure(deps.pool, parseHour(hour), execution?.workflowId ?? 'unknown', reason, kind);
    },

    /** Compacts one hour into PostgreSQL and marks it finalized by the calling workflow run. */
    async compactHourCounts(hour: string): Promise<CompactHourResult> {
      const ctx = Context.current();
      const execution = ctx.info.workflowExecution;
      if (!execution) throw new Error('compactHourCounts must run inside a workflow');
      const previous = ctx.info.heartbeatDetails as CompactionProgress | undefined;
      if (previous) {
        log.info('resuming compaction', { hour, attempt: ctx.info.attempt, previous });
      }
      let latest: CompactionProgress = { phase: 'listing', filesDone: 0, filesTotal: 0 };
      // DuckDB runs off the event loop, so a timer keeps heartbeats flowing during long queries.
      const beat = setInterval(() => ctx.heartbeat(latest), 5000);
      try {
        ctx.heartbeat(latest);
        return await compactHourFromS3(
          deps,
          parseHour(hour),
          { workflowId: execution.workflowId, runId: execution.runId },
          (p) => {
            latest = p;
            ctx.heartbeat(p);
          },
        );
      } catch (e) {
        // A refusal is final: retrying cannot bring raw files back.
        if (e instanceof RawInputsGone) throw ApplicationFailure.nonRetryable(e.message, 'RawInputsGone');
        throw e;
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Creates the count tiers' upcoming partitions and drops the expired ones, at `now` (ISO; default:
     * the activity's clock).
     */
    async applyPartitionRetention(now?: string): Promise<PartitionRetentionResult> {
      const at = now ? Date.parse(now) : Date.now();
      return applyPartitionRetention(deps.pool, tiersOf(deps.retention, deps.retentionTableSuffix), at);
    },

    /** Deletes raw Parquet (and seen indexes) of hours older than the raw retention, at `now`. */
    async expireRawFiles(now?: string): Promise<RawRetentionResult> {
      const at = now ? Date.parse(now) : Date.now();
      return expireRawFiles(deps, at, deps.rawRetentionHours, deps.lookbackHours);
    },

    /** Writes the day's reconciliation report (speed vs batch per ad) and returns it. */
    async reconcileDay(date: string): Promise<ReconciliationReport> {
      if (!deps.speedStore) {
        throw new Error('no speed store configured on this worker: cannot reconcile (set SPEED_STORE)');
      }
      return reconcileDay(deps.pool, deps.speedStore, parseDate(date), { limit: 1000, pinot: deps.pinot });
    },
  };
}

export type BatchActivities = ReturnType<typeof createActivities>;
