// The click log on each Kafka client its lanes can use (ADCLICK_KAFKA_PRODUCER, ingest/lane-producers.ts),
// against the real broker: every click event reaches the topic exactly once, with its click's time
// as the record's timestamp, on the partition kafkajs' default partitioner (Java's murmur2 of the
// key) picks — so clicks of one key land together whichever client, spool replay or drain sent them.
// And on @platformatic/kafka, a send that Kafka wrote only part of is sent again without writing that
// part twice.
import { randomUUID } from 'node:crypto';
import kafkajs, { ConfigResourceTypes } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeClickEvent } from '../../common/click-event.js';
import { kafkaBrokers } from '../../common/config.js';
import { createKafka } from '../../common/kafka.js';
import { ClickLog } from '../../ingest/click-log.js';
import { kafkajsLanes, platformaticLanes, type ProducerClient } from '../../ingest/lane-producers.js';
import { waitFor } from '../../common/wait.js';
import { clickTopic, tempSpoolPath, validClickEvent as event } from '../support/click.js';

const { Partitioners } = kafkajs;
// Not a power of two: there the sign of the hash changes the partition (Java clears the sign bit).
const PARTITIONS = 6;
const CLICKS = 2000;
const kafka = createKafka('adclick-test-click-log-producers');

/** The partition kafkajs' default partitioner gives `key` in a topic of PARTITIONS partitions. */
function kafkajsPartition(topic: string, key: string, partitions = PARTITIONS): number {
  const partitionMetadata = Array.from({ length: partitions }, (_, p) => ({
    partitionId: p,
    leader: 0,
    replicas: [0],
    isr: [0],
    partitionErrorCode: 0,
  }));
  return Partitioners.DefaultPartitioner()({ topic, partitionMetadata, message: { key, value: null } });
}

describe.each<ProducerClient>(['kafkajs', 'platformatic'])('click log on %s lanes', (client) => {
  const lines: string[] = [];
  let log: ClickLog;
  let topic: string;
  let drop: () => Promise<void>;
  let readAll: Awaited<ReturnType<typeof clickTopic>>['readAll'];

  beforeAll(async () => {
    topic = `clicks-test-producers-${randomUUID()}`;
    ({ drop, readAll } = await clickTopic(kafka, topic, PARTITIONS));
    const note = (m: string): void => void lines.push(m);
    log = await ClickLog.open({
      kafka,
      topic,
      spoolPath: tempSpoolPath(),
      deadlineMs: 10_000,
      lingerMs: 5,
      batchMax: 100,
      lanes: 2,
      laneProducers:
        client === 'kafkajs'
          ? kafkajsLanes(kafka, note)
          : platformaticLanes({
              clientId: 'adclick-test-click-log-producers',
              brokers: kafkaBrokers(),
              metadataMaxAgeMs: 30_000,
              log: note,
            }),
      log: note,
    });
  });

  afterAll(async () => {
    await log?.close();
    await drop?.();
  });

  it('logs every click once, stamped with its time, on the partition of its key', async () => {
    // Many ads, so many keys: ad i, salted as the click handler salts it.
    const events = Array.from({ length: CLICKS }, (_, i) => ({ ...event(), adId: String(1000 + i) }));
    const where = await Promise.all(events.map((e) => log.append(e)));
    expect(new Set(where), lines.join('\n')).toEqual(new Set(['kafka'])); // none needed the spool

    const logged = await readAll(CLICKS, { settleMs: 500 });
    expect(logged.map((c) => c.event.eventId).sort()).toEqual(events.map((e) => e.eventId).sort());
    const misplaced = logged.filter((c) => c.partition !== kafkajsPartition(topic, c.key));
    expect(misplaced.map((c) => `${c.key} in ${c.partition}`)).toEqual([]);
    expect(new Set(logged.map((c) => c.partition)).size).toBe(PARTITIONS); // keys spread over all

    const ts = new Map(events.map((e) => [e.eventId, e.ts]));
    const stamps = await recordTimestamps(topic);
    expect(stamps.size).toBe(CLICKS);
    for (const [eventId, at] of stamps) expect(at).toBe(ts.get(eventId));
  }, 60_000);
});

describe('platformatic lanes: a send Kafka wrote part of', () => {
  it('is sent again as the same request on the same producer, and Kafka keeps each message once', async () => {
    // A real part-way write: one request to two partitions, one of them over the topic's
    // max.message.bytes. Kafka writes the small batch and refuses the large one, and the client fails
    // the whole send. Then the limit is raised, so that sending again can succeed.
    const topic = `clicks-test-partial-${randomUUID()}`;
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic,
            numPartitions: 2,
            replicationFactor: 1,
            configEntries: [{ name: 'max.message.bytes', value: '4096' }],
          },
        ],
      });
      const keyOn = (partition: number): string => {
        for (let i = 0; ; i++) if (kafkajsPartition(topic, `ad-${i}`, 2) === partition) return `ad-${i}`;
      };
      const small = { key: keyOn(0), value: Buffer.from('small') };
      const large = { key: keyOn(1), value: Buffer.alloc(8192, 1) };
      const lines: string[] = [];
      const producer = platformaticLanes({
        clientId: 'adclick-test-partial-send',
        brokers: kafkaBrokers(),
        metadataMaxAgeMs: 30_000,
        log: (m) => void lines.push(m),
      })();
      await producer.connect();
      const sent = producer.send({ topic, acks: -1, messages: [small, large] });
      let outcome: 'sent' | Error | undefined;
      sent.then(
        () => (outcome = 'sent'),
        (e: Error) => (outcome = e),
      );

      // The first attempt failed, and it had written the small message's partition.
      await waitFor('the first attempt to fail', () => lines.length > 0 || outcome !== undefined, 20_000, 50);
      expect(outcome, 'the send must not give up on an error Kafka may stop answering').toBeUndefined();
      expect(lines[0]).toMatch(/failed 1 time.*same request again on the same producer/);
      const written = await admin.fetchTopicOffsets(topic);
      expect(written.map((p) => [p.partition, Number(p.high)]).sort()).toEqual([
        [0, 1],
        [1, 0],
      ]);

      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: topic,
            configEntries: [{ name: 'max.message.bytes', value: String(1024 * 1024) }],
          },
        ],
      });
      await sent;
      const offsets = await admin.fetchTopicOffsets(topic);
      // Each message once: the retry's batch for partition 0 carried the sequence numbers Kafka had
      // already written, so Kafka dropped it (a fresh producer id would have written it again).
      expect(offsets.map((p) => [p.partition, Number(p.high)]).sort()).toEqual([
        [0, 1],
        [1, 1],
      ]);
      await producer.disconnect();
    } finally {
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  }, 60_000);
});

/** Each record's Kafka timestamp by the event id it carries. */
async function recordTimestamps(topic: string): Promise<Map<string, number>> {
  const consumer = kafka.consumer({ groupId: `read-ts-${randomUUID()}` });
  const out = new Map<string, number>();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${out.size} of ${CLICKS} timestamps`)), 30_000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          out.set(decodeClickEvent(message.value!).eventId, Number(message.timestamp));
          if (out.size >= CLICKS) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return out;
}
