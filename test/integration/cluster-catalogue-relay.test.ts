// The catalogue relay (catalogue/relay.ts) on the local cluster (several Kafka brokers; `npm run
// test:cluster`, not in the default run): every ad change it takes out of the outbox must be in the
// topic of ad changes even when a partition's leader changes while its batch is being sent. kafkajs
// 2.2.4 resolves such a send without the partitions that moved when their new leader had already
// answered for other partitions of the same send (tulios/kafkajs#1303; docs/store.md "Nodes killed
// under load"); the relay would then delete the outbox rows of changes no replica ever sees. As in
// cluster-click-log.test.ts the leader change is a replica reassignment, made while the relay's
// producer still holds the old metadata.
import { randomUUID } from 'node:crypto';
import type { Admin } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCatalogueRelay, type CatalogueRelay } from '../../catalogue/relay.js';
import { migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { waitFor } from './faults-support.js';
import { databasePool } from '../support/database.js';

const topic = `ad-changes-cluster-test-${randomUUID()}`;
const DB = `adclick_t_${randomUUID().slice(0, 8)}`;
// Metadata kept for the whole test: the relay's producer must not learn of the move on its own.
const kafka = createKafka('adclick-test-cluster-relay', { metadataMaxAgeMs: 600_000 });

describe('catalogue relay on a cluster', () => {
  let admin: Admin;
  let root: pg.Pool;
  let pool: pg.Pool;
  let relay: CatalogueRelay;
  let brokers: number[];

  /** Messages in the topic (nothing is compacted within the test: the active segment never is). */
  const inTopic = async (): Promise<number> =>
    (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  const outboxEmpty = async (): Promise<boolean> =>
    (await pool.query('select 1 from ad_changes_outbox limit 1')).rowCount === 0;
  const insertAds = (n: number, tag: string) =>
    pool.query(
      `insert into ads (advertiser_id, redirect_url, name)
       select 1, 'https://relay.example/' || $2 || '/' || i, $2 || ' ' || i from generate_series(1, $1) i`,
      [n, tag],
    );

  beforeAll(async () => {
    admin = kafka.admin();
    await admin.connect();
    brokers = (await admin.describeCluster()).brokers.map((b) => b.nodeId).sort((a, b) => a - b);
    if (brokers.length < 3)
      throw new Error(`needs a Kafka cluster (npm run cluster:up), found ${brokers.length} broker(s)`);
    const [a, b, c] = brokers as [number, number, number];
    // Partitions 0 and 2 led by the first broker, 1 and 3 by the second, each also on the third (two
    // replicas: the relay's topic asks for min.insync.replicas 2 on the cluster). Moving 1 and 3 off
    // the second broker moves their leader to the first.
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          replicaAssignment: [
            { partition: 0, replicas: [a, c] },
            { partition: 1, replicas: [b, c] },
            { partition: 2, replicas: [a, c] },
            { partition: 3, replicas: [b, c] },
          ],
          configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
        },
      ],
    });
    root = databasePool('postgres', 1);
    await root.query(`create database ${DB}`);
    pool = databasePool(DB, 2);
    await migrate(pool);
    relay = startCatalogueRelay({ pool, kafka, topic, log: () => undefined });
  });

  afterAll(async () => {
    await relay?.stop();
    await pool?.end();
    await root?.query(`drop database if exists ${DB} with (force)`);
    await root?.end();
    await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('publishes every change of a batch when partition leaders change during its send', async () => {
    // A first batch over every partition: the producer learns the four leaders.
    await insertAds(20, 'warm');
    await waitFor(
      'the first batch relayed',
      async () => (await outboxEmpty()) && (await inTopic()) === 20,
      60_000,
      100,
    );

    const [a, , c] = brokers as [number, number, number];
    await admin.alterPartitionReassignments({
      topics: [
        {
          topic,
          partitionAssignment: [
            { partition: 1, replicas: [a, c] },
            { partition: 3, replicas: [a, c] },
          ],
        },
      ],
    });
    await waitFor(
      'partitions 1 and 3 to be led by the first broker',
      async () => {
        const pending = await admin.listPartitionReassignments({ topics: [{ topic, partitions: [1, 3] }] });
        if (pending.topics.some((t) => t.partitions.length > 0)) return false;
        const md = await admin.fetchTopicMetadata({ topics: [topic] });
        return md.topics[0]!.partitions.filter((p) => p.partitionId % 2 === 1).every((p) => p.leader === a);
      },
      60_000,
      250,
    );

    // One batch over every partition; the producer still thinks 1 and 3 are on the second broker.
    await insertAds(40, 'moved');
    await waitFor('the outbox relayed', outboxEmpty, 60_000, 100);
    // Every change taken out of the outbox must be in the topic: 20 + 40.
    const got = await waitFor(
      'the batch in the topic',
      async () => {
        const n = await inTopic();
        return n === 60 && n;
      },
      10_000,
      250,
    ).catch(async () => inTopic());
    expect(got).toBe(60);
  });
});
