// The topic definitions take replication, retention and partitions from the configuration (no I/O:
// the environment is set before the modules read it).
import { describe, expect, it } from 'vitest';

process.env.KAFKA_REPLICATION_FACTOR = '3';
process.env.KAFKA_MIN_INSYNC_REPLICAS = '2';
process.env.KAFKA_CLICKS_PARTITIONS = '12';
process.env.KAFKA_CLICKS_RETENTION_HOURS = '72';
process.env.SPEED_PINOT_RETENTION_DAYS = '5';
const { appTopics, minuteCountsTopicSpec, replication } = await import('./kafka.js');

const setting = (t: { configEntries?: Array<{ name: string; value: string }> }, name: string) =>
  t.configEntries?.find((e) => e.name === name)?.value;

describe('topic definitions', () => {
  it('every app topic takes replication factor and min.insync.replicas from the configuration', () => {
    for (const topic of appTopics()) {
      expect(topic.replicationFactor, topic.topic).toBe(3);
      expect(setting(topic, 'min.insync.replicas'), topic.topic).toBe('2');
    }
  });

  it('clicks keeps KAFKA_CLICKS_RETENTION_HOURS; the count topic keeps the speed store retention, never compacted for deltas', () => {
    const [clicks, counts] = appTopics();
    expect(clicks!.numPartitions).toBe(12);
    expect(setting(clicks!, 'retention.ms')).toBe(String(72 * 3_600_000));
    expect(setting(clicks!, 'cleanup.policy')).toBe('delete');
    expect(counts!.numPartitions).toBe(12);
    // Deltas (the default) all count: compaction would drop a key's earlier ones.
    expect(setting(counts!, 'cleanup.policy')).toBe('delete');
    expect(setting(counts!, 'retention.ms')).toBe(String(5 * 86_400_000));
    const cumulative = minuteCountsTopicSpec({ counts: 'cumulative' });
    expect(setting(cumulative, 'cleanup.policy')).toBe('compact,delete');
    expect(counts).toMatchObject({ partitionsFollow: clicks!.topic });
  });

  it('refuses min.insync.replicas above the replication factor (every acks=all write would fail)', () => {
    expect(replication(3, 2)).toEqual({ factor: 3, minInsync: 2 });
    expect(() => replication(1, 2)).toThrow(/NOT_ENOUGH_REPLICAS/);
  });
});
