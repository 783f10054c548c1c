// The operators' status (ops-status.ts) as Prometheus gauges on the API process's /metrics, for the
// rules of ops/alerts.yml that need what only the system's records know: hours not final, failed
// hours, late files, reconciliation, consumer offsets as Kafka holds them, free disk, Redis's memory.
// One read per scrape at most (shared by every gauge, reused for a few seconds); a part that could
// not be read leaves its labelled gauges out, sets its single-valued ones to NaN (unknown, never a
// reassuring 0) and sets adclick_ops_read_errors{part}.
import { Gauge, type Registry } from 'prom-client';
import type { OpsStatus, OpsStatusReader } from './ops-status.js';

export interface OpsMetricsOptions {
  registry: Registry;
  reader: OpsStatusReader;
  /** An hour not final this long after its end is late (OPS_HOUR_FINAL_DEADLINE_MINUTES). */
  hourFinalDeadlineSeconds: number;
  /** How long one read serves scrapes (ms). */
  reuseMs?: number;
}

// eslint-disable-next-line max-lines-per-function -- a table of metric definitions (name, help, labels) an operator reads against the alerts (docs/architecture.md, sizes kept on purpose)
export function registerOpsMetrics(opts: OpsMetricsOptions): void {
  const reuseMs = opts.reuseMs ?? 5000;
  let last: { at: number; status: Promise<OpsStatus> } | undefined;
  const status = (): Promise<OpsStatus> => {
    if (!last || Date.now() - last.at > reuseMs) last = { at: Date.now(), status: opts.reader.read() };
    return last.status;
  };
  const registers = [opts.registry];
  const gauge = <L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    fill: (g: Gauge<L>, s: OpsStatus) => void,
  ): void => {
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        const s = await status();
        this.reset();
        fill(this, s);
      },
    });
  };
  const ageSeconds = (s: OpsStatus, at: number | undefined): number =>
    at === undefined ? 0 : Math.max(0, (s.at - at) / 1000);

  gauge(
    'adclick_ops_hours',
    'Hours of the lookback that ended, by state (final, failed, waiting for completeness, not_final: never compacted)',
    ['state'],
    (g, s) => {
      if (s.errors.hours) return;
      for (const state of ['final', 'failed', 'waiting', 'not_final'] as const)
        g.set({ state }, s.hours.filter((h) => h.state === state).length);
    },
  );
  gauge(
    'adclick_ops_not_final_hour_age_seconds',
    'Seconds since the end of the oldest hour that is not final (0: every ended hour is final)',
    [],
    (g, s) => {
      g.set(s.errors.hours ? NaN : ageSeconds(s, s.oldestNotFinalHourEnd));
    },
  );
  gauge(
    'adclick_ops_hour_final_deadline_seconds',
    'How long after its end an hour may stay not final before HourNotFinal fires (OPS_HOUR_FINAL_DEADLINE_MINUTES)',
    [],
    (g) => g.set(opts.hourFinalDeadlineSeconds),
  );
  gauge(
    'adclick_ops_late_files',
    'Raw files that arrived after their hour was finalized, not yet recounted',
    [],
    (g, s) => {
      g.set(s.errors.lateFiles ? NaN : s.lateFiles.files);
    },
  );
  gauge(
    'adclick_ops_late_file_age_seconds',
    'Seconds since the oldest raw file waiting for the late path was uploaded (0: none waits)',
    [],
    (g, s) => {
      g.set(s.errors.lateFiles ? NaN : ageSeconds(s, s.lateFiles.oldestUploadedAt));
    },
  );
  gauge(
    'adclick_ops_reconciliation_differing_ads',
    'Ads whose speed and batch counts disagree in the latest daily reconciliation report',
    ['day'],
    (g, s) => {
      if (s.reconciliation) g.set({ day: s.reconciliation.day }, s.reconciliation.differingAds);
    },
  );
  gauge(
    'adclick_ops_reconciliation_age_seconds',
    'Seconds since the latest daily reconciliation report was written',
    [],
    (g, s) => {
      g.set(s.reconciliation ? ageSeconds(s, s.reconciliation.createdAt) : NaN);
    },
  );
  gauge(
    'adclick_ops_kafka_committed_offset',
    "A consumer group's committed offset per partition, as Kafka holds it (-1: nothing committed)",
    ['group', 'topic', 'partition'],
    (g, s) => {
      for (const p of s.consumers ?? [])
        g.set({ group: p.group, topic: p.topic, partition: String(p.partition) }, p.committed);
    },
  );
  gauge(
    'adclick_ops_kafka_end_offset',
    'The end offset (high watermark) of each partition of a watched topic',
    ['topic', 'partition'],
    (g, s) => {
      for (const p of s.consumers ?? []) g.set({ topic: p.topic, partition: String(p.partition) }, p.end);
    },
  );
  gauge(
    'adclick_ops_kafka_consumer_lag',
    'Messages between the end offset and the committed offset, per consumer group and partition',
    ['group', 'topic', 'partition'],
    (g, s) => {
      for (const p of s.consumers ?? [])
        g.set({ group: p.group, topic: p.topic, partition: String(p.partition) }, p.lag);
    },
  );
  gauge(
    'adclick_ops_disk_free_bytes',
    'Free bytes (for unprivileged writers) of the file system under a watched folder',
    ['disk', 'path'],
    (g, s) => {
      for (const d of s.disks) g.set({ disk: d.name, path: d.path }, d.freeBytes);
    },
  );
  gauge(
    'adclick_ops_disk_size_bytes',
    'Size of the file system under a watched folder',
    ['disk', 'path'],
    (g, s) => {
      for (const d of s.disks) g.set({ disk: d.name, path: d.path }, d.sizeBytes);
    },
  );
  const redis = (name: string, help: string, figure: (r: NonNullable<OpsStatus['redis']>) => number): void =>
    gauge(name, help, [], (g, s) => g.set(s.redis ? figure(s.redis) : NaN));
  redis(
    'adclick_ops_redis_memory_used_bytes',
    "Memory Redis's data takes (INFO used_memory), the Redis of REDIS_URL",
    (r) => r.usedBytes,
  );
  redis(
    'adclick_ops_redis_maxmemory_bytes',
    "Redis's maxmemory: past it the policy evicts keys (0: none, Redis grows until its host runs out)",
    (r) => r.maxmemoryBytes,
  );
  redis('adclick_ops_redis_system_memory_bytes', "The memory of Redis's host", (r) => r.systemBytes);
  redis(
    'adclick_ops_redis_evicted_keys',
    'Keys Redis evicted since it started, to stay within maxmemory (its counter)',
    (r) => r.evictedKeys,
  );
  gauge(
    'adclick_ops_read_errors',
    'Parts of the operators status that could not be read on the last scrape (1), by part',
    ['part'],
    (g, s) => {
      for (const part of [
        'hours',
        'lateFiles',
        'reconciliation',
        'backfills',
        'spools',
        'kafka',
        'disks',
        'redis',
      ])
        g.set({ part }, s.errors[part] ? 1 : 0);
    },
  );
}
