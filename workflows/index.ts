// Batch workflows: deterministic orchestration only (no S3, Kafka or SQL here — see activities/).
//   compactHour({hour})          wait until the hour is complete (docs/completeness.md), then compact it
//   compactDay({date})           re-compact the 24 hours of a day, then reconcile with the speed layer
//   backfill({from, to, parallelism?})  compactHour for every hour in [from, to) as child workflows
//   finalizeLateHours({})        the late path: finalize again every hour that got raw files after its
//                                last compaction, and the later hours whose dedup that changes
//   sweepHours({})               no hour left behind: compactHour for every hour in the raw-data
//                                retention never finalized, or whose compaction failed since
//   applyRetention({})           the retention tiers: create the count tables' upcoming partitions,
//                                drop expired ones, delete raw Parquet past the raw retention
// Started by a schedule with no input, compactHour/compactDay take their window from the schedule's
//
// This file is the worker's workflow bundle entry (apps/worker.ts): every workflow is exported here.
// How they are started and scheduled, by name checked against these exports: operations.ts.
export { compactHour, type CompactHourInput } from './compact-hour.js';
export { compactDay, type CompactDayInput, type CompactDayResult } from './compact-day.js';
export { backfill, backfillProgressQuery, type BackfillInput, type BackfillProgress } from './backfill.js';
export {
  finalizeLateHours,
  sweepHours,
  type FinalizeLateInput,
  type FinalizeLateResult,
  type SweepInput,
  type SweepResult,
} from './catch-up.js';
export { applyRetention, type RetentionInput, type RetentionResult } from './retention.js';
