// The operators' status as Prometheus gauges: each figure the alert rules read, from one status.
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerOpsMetrics } from './ops-metrics.js';
import { redisMemoryOf, type OpsStatus, type OpsStatusReader } from './ops-status.js';

const H = 3_600_000;
const at = Date.UTC(2026, 0, 2, 12, 10);

const status: OpsStatus = {
  at,
  hours: [
    { hour: at - 3 * H - 10 * 60_000, state: 'final', revision: 1 },
    {
      hour: at - 2 * H - 10 * 60_000,
      state: 'waiting',
      failure: { failedAt: at - H, reason: 'the archiver', workflowId: 'w', kind: 'waiting' },
    },
    { hour: at - H - 10 * 60_000, state: 'not_final' },
  ],
  oldestNotFinalHourEnd: at - H - 10 * 60_000, // the end of the waiting hour
  lateFiles: { hours: 1, files: 3, oldestUploadedAt: at - 40 * 60_000 },
  reconciliation: {
    day: '2026-01-01',
    createdAt: at - 11 * H,
    differingAds: 2,
    speedTotal: 10,
    batchTotal: 9,
  },
  backfills: [],
  spools: [],
  consumers: [
    { group: 'adclick-archiver', topic: 'clicks', partition: 4, committed: 23, end: 58_309, lag: 58_286 },
  ],
  disks: [{ name: 'spool', path: '/var/spool', freeBytes: 5, sizeBytes: 100 }],
  redis: { usedBytes: 900, maxmemoryBytes: 0, systemBytes: 1000, evictedKeys: 7 },
  errors: { backfills: 'Temporal: no answer within 3000 ms' },
};

async function scrape(s: OpsStatus): Promise<string> {
  const registry = new Registry();
  registerOpsMetrics({
    registry,
    reader: { read: async () => s } as OpsStatusReader,
    hourFinalDeadlineSeconds: 1800,
  });
  return registry.metrics();
}

describe('ops metrics', () => {
  it('exports every figure of the status', async () => {
    const text = await scrape(status);
    const lines = text.split('\n').filter((l) => !l.startsWith('#'));
    for (const line of [
      'adclick_ops_hours{state="final"} 1',
      'adclick_ops_hours{state="waiting"} 1',
      'adclick_ops_hours{state="not_final"} 1',
      'adclick_ops_hours{state="failed"} 0',
      // The oldest hour not final (the waiting one) ended 70 minutes before `at`.
      'adclick_ops_not_final_hour_age_seconds 4200',
      'adclick_ops_hour_final_deadline_seconds 1800',
      'adclick_ops_late_files 3',
      'adclick_ops_late_file_age_seconds 2400',
      'adclick_ops_reconciliation_differing_ads{day="2026-01-01"} 2',
      `adclick_ops_reconciliation_age_seconds ${11 * 3600}`,
      'adclick_ops_kafka_committed_offset{group="adclick-archiver",topic="clicks",partition="4"} 23',
      'adclick_ops_kafka_end_offset{topic="clicks",partition="4"} 58309',
      'adclick_ops_kafka_consumer_lag{group="adclick-archiver",topic="clicks",partition="4"} 58286',
      'adclick_ops_disk_free_bytes{disk="spool",path="/var/spool"} 5',
      'adclick_ops_disk_size_bytes{disk="spool",path="/var/spool"} 100',
      'adclick_ops_read_errors{part="backfills"} 1',
      'adclick_ops_read_errors{part="kafka"} 0',
      'adclick_ops_redis_memory_used_bytes 900',
      'adclick_ops_redis_maxmemory_bytes 0',
      'adclick_ops_redis_system_memory_bytes 1000',
      'adclick_ops_redis_evicted_keys 7',
      'adclick_ops_read_errors{part="redis"} 0',
    ])
      expect(lines).toContain(line);
  });

  it('never exports a reassuring 0 for what could not be read: left out, or NaN', async () => {
    const text = await scrape({
      ...status,
      hours: [],
      oldestNotFinalHourEnd: undefined,
      consumers: undefined,
      redis: undefined,
      errors: { hours: 'PostgreSQL: no answer', kafka: 'Kafka: no answer', redis: 'redis: no answer' },
    });
    const lines = text.split('\n').filter((l) => !l.startsWith('#'));
    expect(lines.filter((l) => l.startsWith('adclick_ops_hours{'))).toEqual([]);
    // prom-client writes NaN as "Nan" (Prometheus parses it either way).
    expect(lines.filter((l) => /^adclick_ops_not_final_hour_age_seconds nan$/i.test(l))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('adclick_ops_kafka_'))).toEqual([]);
    expect(lines).toContain('adclick_ops_read_errors{part="hours"} 1');
    expect(lines).toContain('adclick_ops_read_errors{part="kafka"} 1');
    expect(lines.filter((l) => /^adclick_ops_redis_memory_used_bytes nan$/i.test(l))).toHaveLength(1);
    expect(lines).toContain('adclick_ops_read_errors{part="redis"} 1');
  });
});

describe('redisMemoryOf', () => {
  it("reads Redis's INFO memory and stats sections", () => {
    const info = [
      '# Memory',
      'used_memory:902375392',
      'used_memory_human:860.57M',
      'total_system_memory:25769803776',
      'maxmemory:0',
      'maxmemory_policy:volatile-ttl',
      '',
      '# Stats',
      'evicted_keys:12',
      'evicted_clients:0',
    ].join('\r\n');
    expect(redisMemoryOf(info)).toEqual({
      usedBytes: 902_375_392,
      maxmemoryBytes: 0,
      systemBytes: 25_769_803_776,
      evictedKeys: 12,
    });
  });

  it('refuses an answer without a figure rather than report 0', () => {
    expect(() => redisMemoryOf('# Memory\r\nused_memory:10\r\nmaxmemory:0\r\n')).toThrow(
      /total_system_memory/,
    );
  });
});
