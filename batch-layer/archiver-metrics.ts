// The archiver's metrics (docs/operations.md): events archived and rejected, stopped partitions,
// flushes, buffered events, consumer lag and lost commits.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../common/metrics.js';

export const eventsArchived = new Counter({
  name: 'archiver_events_total',
  help: 'Click events written to raw Parquet in S3',
  registers: [registry],
});
export const eventsRejected = new Counter({
  name: 'archiver_rejected_total',
  help: 'Messages on the clicks topic that are not click events this archiver can read (their partition stops)',
  registers: [registry],
});
export const stoppedPartitions = new Gauge({
  name: 'archiver_stopped_partitions',
  help: 'Partitions stopped at a message that is not a click event this archiver can read',
  registers: [registry],
});
export const flushSeconds = new Histogram({
  name: 'archiver_flush_seconds',
  help: 'Time to write, upload and commit one partition buffer',
  registers: [registry],
});

export const bufferedGauge = new Gauge({
  name: 'archiver_buffered_events',
  help: 'Click events held in memory, not yet in S3 (bounded by ARCHIVER_MAX_BUFFERED_EVENTS)',
  registers: [registry],
});
export const consumerLag = new Gauge({
  name: 'archiver_consumer_lag',
  help: 'Messages between the high watermark and the next offset to read, per clicks partition',
  labelNames: ['partition'] as const,
  registers: [registry],
});
export const flushFailures = new Counter({
  name: 'archiver_flush_failures_total',
  help: 'Partition flushes that failed (S3 or Kafka unreachable); their rows stay buffered and are retried',
  registers: [registry],
});

export const lostCommits = new Counter({
  name: 'archiver_lost_commits_total',
  help: 'Offset commits KafkaJS reported done without sending them, or that the group does not have (committed again)',
  registers: [registry],
});
