// Prometheus metrics of the speed-layer consumers, registered once per process in the shared
// registry (common/metrics.ts) and served at /metrics by apps/speed-layer.ts.
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../common/metrics.js';

export const eventsCounted = new Counter({
  name: 'adclick_speed_events_counted_total',
  help: 'Valid clicks counted into minute counts (on time or late)',
  registers: [registry],
});
export const duplicatesDropped = new Counter({
  name: 'adclick_speed_duplicates_dropped_total',
  help: 'Valid clicks dropped because their impression id was already seen in an open minute',
  registers: [registry],
});
export const lateEvents = new Counter({
  name: 'adclick_speed_late_events_total',
  help: 'Valid clicks older than the open window (still counted)',
  registers: [registry],
});
export const eventsSkipped = new Counter({
  name: 'adclick_speed_events_skipped_total',
  help: 'Events not counted: other statuses, or re-read to rebuild the open window',
  labelNames: ['reason'] as const,
  registers: [registry],
});
export const consumerLag = new Gauge({
  name: 'adclick_speed_consumer_lag',
  help: 'Messages between the high watermark and the next offset to read, per clicks partition',
  labelNames: ['topic', 'partition'] as const,
  registers: [registry],
});
export const stoppedPartitions = new Gauge({
  name: 'adclick_speed_stopped_partitions',
  help: 'clicks partitions stopped at a message that is not a click event this consumer can read',
  registers: [registry],
});
export const flushDuration = new Histogram({
  name: 'adclick_speed_flush_duration_seconds',
  help: 'Time to commit one partition flush (counts and offsets together)',
  labelNames: ['store'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  registers: [registry],
});
export const flushFailures = new Counter({
  name: 'adclick_speed_flush_failures_total',
  help: 'Partition flushes that did not commit (the partition is rebuilt from its last checkpoint)',
  labelNames: ['store', 'reason'] as const,
  registers: [registry],
});
