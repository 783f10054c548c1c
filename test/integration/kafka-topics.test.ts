// The app's topics against the real broker, under private names: ensureTopics creates them with
// their settings, and on a later start brings existing topics (made by an older version, or changed
// by hand) to the configured partitions and settings without dropping an operator's own settings.
import { randomUUID } from 'node:crypto';
import kafkajs, { type Admin } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../common/wait.js';

// The topic definitions read their names and knobs from the configuration, read once on import.
const id = randomUUID().slice(0, 8);
process.env.KAFKA_CLICKS_TOPIC = `topics-clicks-${id}`;
process.env.KAFKA_MINUTE_COUNTS_TOPIC = `topics-counts-${id}`;
process.env.KAFKA_CLICKS_PARTITIONS = '3';
process.env.SPEED_PINOT_RETENTION_DAYS = '3';
const { appTopics, createKafka, ensureTopics } = await import('../../common/kafka.js');

const { ConfigResourceTypes } = kafkajs;
const clicks = `topics-clicks-${id}`;
const counts = `topics-counts-${id}`;
const DAY_MS = 86_400_000;

async function settings(admin: Admin, topic: string): Promise<Record<string, string>> {
  const res = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
    includeSynonyms: false,
  });
  return Object.fromEntries(
    (res.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]),
  );
}

async function partitions(admin: Admin, topic: string): Promise<number> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  return topics[0]?.partitions.length ?? 0;
}

describe('app topics', () => {
  const kafka = createKafka(`topics-test-${id}`);
  const admin = kafka.admin();
  beforeAll(() => admin.connect());
  // Each test starts without the two topics.
  afterEach(async () => {
    await admin.deleteTopics({ topics: [clicks, counts] }).catch(() => undefined);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await admin.listTopics()).some((t) => t === clicks || t === counts))
      await sleep(100);
  });
  afterAll(() => admin.disconnect());

  it('the count topic is created delete-only (deltas) with the speed store retention (SPEED_PINOT_RETENTION_DAYS)', async () => {
    await ensureTopics(admin, appTopics());
    const s = await settings(admin, counts);
    expect(s['cleanup.policy']).toBe('delete');
    expect(s['retention.ms']).toBe(String(3 * DAY_MS));
    expect(await partitions(admin, counts)).toBe(3);
  });

  it('existing topics get the configured partitions and settings on the next start; hand-set settings stay', async () => {
    // As an older version left them: 2 partitions, minute_counts compact only, no retention; plus a
    // setting an operator made by hand.
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: clicks, numPartitions: 2, replicationFactor: 1 },
        {
          topic: counts,
          numPartitions: 2,
          replicationFactor: 1,
          configEntries: [
            { name: 'cleanup.policy', value: 'compact' },
            { name: 'max.message.bytes', value: '2000000' },
          ],
        },
      ],
    });
    await ensureTopics(admin, appTopics());
    expect(await partitions(admin, clicks)).toBe(3);
    expect(await partitions(admin, counts)).toBe(3);
    const s = await settings(admin, counts);
    expect(s['cleanup.policy']).toBe('delete');
    expect(s['retention.ms']).toBe(String(3 * DAY_MS));
    expect(s['max.message.bytes']).toBe('2000000');

    // clicks grown by hand past the configuration: minute_counts follows it on the next start.
    await admin.createPartitions({ topicPartitions: [{ topic: clicks, count: 5 }] });
    await ensureTopics(admin, appTopics());
    expect(await partitions(admin, clicks)).toBe(5);
    expect(await partitions(admin, counts)).toBe(5);

    // A second start with nothing to change changes nothing.
    const again = await ensureTopics(admin, appTopics());
    expect(again).toEqual({ created: [], grown: [], altered: [], warnings: [] });

    // Fewer replicas than configured: said, not done (moving data is an operator's call).
    const [clicksSpec] = appTopics();
    const changes = await ensureTopics(admin, [{ ...clicksSpec!, replicationFactor: 3 }]);
    expect(changes.warnings).toEqual([expect.stringMatching(/replication factor 1, configured 3/)]);
  });
});
