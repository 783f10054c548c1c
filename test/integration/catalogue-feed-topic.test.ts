// The catalogue feed (ingest/catalogue-feed.ts) against a replica whose offsets are not of the topic
// it is pointed at, on the real Kafka: the topic of ad changes deleted and created again (or, as the
// cluster drill once did, a click process of another stack opening this host's replica folder). The
// replica's offsets then lie past the topic's end: Kafka answers "offset out of range" and the
// consumer starts over from the beginning, on top of ads that belong to no catalogue of this topic,
// and the feed reports "caught up" before it read a single change. It must build the replica again
// from the topic instead.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adChangesTopicSpec, createKafka, ensureTopics } from '../../common/kafka.js';
import { CatalogueReplica } from '../../ingest/catalogue-replica.js';
import { startCatalogueFeed } from '../../ingest/catalogue-feed.js';
import { waitFor } from '../../common/wait.js';

describe('catalogue feed: a replica whose offsets are not of its topic', () => {
  const topic = `ad-changes-feed-test-${randomUUID()}`;
  const dir = join(tmpdir(), `adclick-feed-test-${randomUUID()}`);
  const kafka = createKafka('catalogue-feed-topic-test');
  const admin = kafka.admin();
  const producer = kafka.producer();
  const replica = CatalogueReplica.open(dir);
  const row = (id: string) => ({ ad_id: id, advertiser_id: '1', redirect_url: `https://ad.example/${id}` });

  const publish = async (ids: string[]): Promise<void> => {
    await producer.send({
      topic,
      messages: ids.map((id) => ({ key: id, value: JSON.stringify(row(id)) })),
    });
  };

  afterAll(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await producer.disconnect();
    await admin.disconnect();
    await replica.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('builds the replica again when the topic was created anew: no ad of the old topic stays, every new one is there when it says caught up', async () => {
    await admin.connect();
    await producer.connect();
    await ensureTopics(admin, [adChangesTopicSpec(topic)]);
    // The first topic: 40 ads, so every partition's offset ends well past what the new topic holds.
    const old = Array.from({ length: 40 }, (_, i) => String(1000 + i));
    await publish(old);
    const first = startCatalogueFeed({ replica, kafka, topic, log: () => undefined });
    await first.caughtUp;
    expect(old.filter((id) => replica.get(id) === undefined)).toEqual([]);
    await first.stop();

    await admin.deleteTopics({ topics: [topic] });
    await waitFor(
      'the topic to be gone',
      async () => !(await admin.listTopics()).includes(topic),
      60_000,
      200,
    );
    await waitFor(
      'the topic to be created again',
      async () => {
        await ensureTopics(admin, [adChangesTopicSpec(topic)]);
        return true;
      },
      60_000,
      500,
    );
    const fresh = ['7', '8', '9'];
    await publish(fresh);

    const logged: string[] = [];
    const second = startCatalogueFeed({ replica, kafka, topic, log: (m) => logged.push(m) });
    try {
      await second.caughtUp;
      // At "caught up", the replica holds the new topic's ads, and none of the old one's.
      expect(fresh.filter((id) => replica.get(id) === undefined)).toEqual([]);
      expect(old.filter((id) => replica.get(id) !== undefined)).toEqual([]);
      expect(logged.join('\n')).toMatch(/not of this topic/);
    } finally {
      await second.stop();
    }
  });
});
