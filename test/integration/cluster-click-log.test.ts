// The click log on the local cluster (several Kafka brokers; `npm run test:cluster`, not in the
// default run): a click answered 302 must be in Kafka even when the leader of its partition changes
// while its batch is being sent. kafkajs 2.2.4 resolves such a send without the partition that
// moved when its new leader had already answered for other partitions of the same send (the one
// click the cluster drill lost, docs/store.md "Nodes killed under load"). Here the leader change is
// made deterministic instead of a kill -9: a partition of a private topic is moved by a replica
// reassignment to the broker that leads the other partition, while the click log's producer still
// holds the old metadata, so the old leader answers NOT_LEADER and kafkajs retries.
import { randomUUID } from 'node:crypto';
import kafkajs, { type Admin, type Message } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clickKey, saltOf, type ClickEvent } from '../../common/click-event.js';
import { createKafka } from '../../common/kafka.js';
import { ClickLog, type Destination } from '../../ingest/click-log.js';
import { tempSpoolPath } from '../support/click.js';
import { waitFor } from './faults-support.js';

const { Partitioners } = kafkajs;
const topic = `clicks-cluster-test-${randomUUID()}`;
// Metadata kept for the whole test: the click log's producer must not learn of the move on its own.
const kafka = createKafka('adclick-test-cluster-click-log', { metadataMaxAgeMs: 600_000 });

/** Click events whose keys fall in `partition` of a two-partition topic (kafkajs' own partitioner). */
function eventsIn(partition: number, n: number): ClickEvent[] {
  const place = Partitioners.DefaultPartitioner();
  const partitionMetadata = [0, 1].map((p) => ({
    partitionId: p,
    leader: 0,
    replicas: [0],
    isr: [0],
    partitionErrorCode: 0,
  }));
  const out: ClickEvent[] = [];
  for (let ad = 1; out.length < n; ad++) {
    const eventId = randomUUID();
    const e: ClickEvent = {
      v: 1,
      eventId,
      adId: String(ad),
      advertiserId: '7',
      ts: Date.now(),
      status: 'valid',
      salt: saltOf(eventId, 8),
    };
    const message: Message = { key: clickKey(e.adId, e.salt), value: null };
    if (place({ topic, partitionMetadata, message }) === partition) out.push(e);
  }
  return out;
}

describe('click log on a cluster', () => {
  let admin: Admin;
  let log: ClickLog;
  let brokers: number[];

  const counts = async (): Promise<number[]> =>
    (await admin.fetchTopicOffsets(topic))
      .sort((a, b) => a.partition - b.partition)
      .map((p) => Number(p.high) - Number(p.low));

  beforeAll(async () => {
    admin = kafka.admin();
    await admin.connect();
    brokers = (await admin.describeCluster()).brokers.map((b) => b.nodeId).sort((a, b) => a - b);
    if (brokers.length < 2)
      throw new Error(`needs a Kafka cluster (npm run cluster:up), found ${brokers.length} broker(s)`);
    // Partition 0 on the first broker, partition 1 on the second: one replica each, so that moving
    // partition 1 to the first broker moves its leader there.
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          replicaAssignment: [
            { partition: 0, replicas: [brokers[0]!] },
            { partition: 1, replicas: [brokers[1]!] },
          ],
          configEntries: [{ name: 'min.insync.replicas', value: '1' }],
        },
      ],
    });
    log = await ClickLog.open({
      kafka,
      topic,
      spoolPath: tempSpoolPath(),
      deadlineMs: 60_000, // no spooling: this is about the producer's answer
      lingerMs: 50,
      batchMax: 1000,
    });
  });

  afterAll(async () => {
    await log?.close();
    await admin?.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin?.disconnect();
  });

  it('puts every click of a batch in Kafka when a partition leader changes during its send', async () => {
    // Both partitions in one batch: the producer learns both leaders.
    const warm = [...eventsIn(0, 1), ...eventsIn(1, 1)];
    await Promise.all(warm.map((e) => log.append(e)));
    expect(await counts()).toEqual([1, 1]);

    await admin.alterPartitionReassignments({
      topics: [{ topic, partitionAssignment: [{ partition: 1, replicas: [brokers[0]!] }] }],
    });
    await waitFor(
      'partition 1 to be led by the first broker alone',
      async () => {
        const pending = await admin.listPartitionReassignments({ topics: [{ topic, partitions: [1] }] });
        if (pending.topics.some((t) => t.partitions.length > 0)) return false;
        const md = await admin.fetchTopicMetadata({ topics: [topic] });
        const p1 = md.topics[0]!.partitions.find((p) => p.partitionId === 1)!;
        return p1.leader === brokers[0] && p1.replicas.length === 1;
      },
      60_000,
      250,
    );

    // One batch for both partitions; the producer still thinks partition 1 is on the second broker.
    const batch = [...eventsIn(0, 5), ...eventsIn(1, 5)];
    const answers: Destination[] = await Promise.all(batch.map((e) => log.append(e)));
    expect(answers.every((d) => d === 'kafka')).toBe(true); // each would be answered 302
    // Every click answered must be in the topic: 6 in each partition.
    const want = [6, 6];
    const got = await waitFor(
      'the batch in the topic',
      async () => {
        const c = await counts();
        return c[0] === want[0] && c[1] === want[1] && c;
      },
      10_000,
      250,
    ).catch(async () => counts());
    expect(got).toEqual(want);
  });
});
