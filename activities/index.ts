// Every side effect of the batch workflows: S3 reads and writes, DuckDB counting, PostgreSQL writes,
// reconciliation against the speed layer. Activities heartbeat their progress; a retried compaction
// reuses the files its previous attempt downloaded (same scratch folder) and reports where it resumed.
import { Context, log } from '@temporalio/activity';
import type { S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import type { SpeedStore } from '../common/speed-store.js';
import { HOUR_MS } from '../common/time.js';
import {
  compactHourFromS3,
  watermarkPassed,
  type CompactHourResult,
  type CompactionProgress,
} from '../batch-layer/compaction.js';
import { reconcileDay } from '../batch-layer/reconciliation.js';
import type { ReconciliationReport } from '../common/reconciliation.js';
import { parseDate, parseHour } from '../common/time.js';

export interface BatchActivityDeps {
  pool: pg.Pool;
  s3: S3Client;
  bucket: string;
  prefix: string;
  workDir: string;
  /** The clicks topic whose archive watermarks say when an hour is complete. */
  topic: string;
  lookbackHours: number;
  /** The speed layer, for reconciliation; without it the daily report cannot be made. */
  speedStore?: SpeedStore;
  faultPauseMs?: number;
}

export type { CompactHourResult, ReconciliationReport };

export function createActivities(deps: BatchActivityDeps) {
  return {
    /** True once every partition's archive watermark has passed the end of the hour. */
    async hourArchived(hour: string): Promise<boolean> {
      return watermarkPassed(deps.pool, deps.topic, parseHour(hour) + HOUR_MS);
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
      } finally {
        clearInterval(beat);
      }
    },

    /** Writes the day's reconciliation report (speed vs batch per ad) and returns it. */
    async reconcileDay(date: string): Promise<ReconciliationReport> {
      if (!deps.speedStore) {
        throw new Error('no speed store configured on this worker: cannot reconcile (set SPEED_STORE)');
      }
      return reconcileDay(deps.pool, deps.speedStore, parseDate(date), { limit: 1000 });
    },
  };
}

export type BatchActivities = ReturnType<typeof createActivities>;
