// The producers behind the click log's lanes (kafka-lanes.ts), one per lane. Two clients can carry
// them (ADCLICK_KAFKA_PRODUCER):
// - `kafkajs`: the client every other part of the app uses, its sends checked against Kafka's answer
//   (common/checked-sends.ts, for tulios/kafkajs#1303);
// - `platformatic`: @platformatic/kafka, a maintained pure-JS client whose producer spends about a
//   third of kafkajs' CPU per click event (README, "CPU per click"). It places each message itself
//   (Java's murmur2 of the key, as kafkajs and Kafka's own clients do, so a key lands on the same
//   partition whichever client sends it) and checks the answer the same way: a send resolves only
//   once Kafka's answer names every partition it wrote to. Not the default: it fails a whole send when
//   some of its partitions failed and others were written, and the click log then sends the batch
//   again on a fresh producer, which writes the written partitions twice (seen in the fault
//   matrix's Kafka-killed cell; README "CPU per click, fourth round").
// Both are idempotent with acks=all and retry until they know a send's outcome: the click log's
// deadline, not the producer, decides when a click falls back to the spool.
import {
  murmur2,
  Producer as PlatformaticProducer,
  ProduceAcks,
  type MessageToProduce,
} from '@platformatic/kafka';
import kafkajs, { type Kafka, type Message, type ProducerRecord } from 'kafkajs';
import { checkedSends, RESEND_ROUNDS, type CheckedSends } from '../common/checked-sends.js';

const { CompressionTypes } = kafkajs;

/** One lane's producer: what KafkaLanes needs of a Kafka client. */
export interface LaneProducer {
  connect(): Promise<void>;
  /** Resolves once Kafka acked every message of `record` (acks=all); rejects on a failed send. */
  send(record: ProducerRecord): Promise<void>;
  disconnect(): Promise<void>;
}

/** Makes one lane's producer; called again for a fresh one (KafkaLanes.resetFirst). */
export type LaneProducerFactory = () => LaneProducer;

export type ProducerClient = 'kafkajs' | 'platformatic';

/** kafkajs' idempotent producer, every send checked against Kafka's answer. */
export function kafkajsLanes(kafka: Kafka, log: (message: string) => void): LaneProducerFactory {
  const checked: CheckedSends = checkedSends(log);
  return () => {
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // The idempotent producer retries until it knows the outcome, so a late ack is certain to be
      // seen (and recorded as delivered) instead of leaving the event's fate unknown.
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1000 },
      createPartitioner: checked.createPartitioner,
    });
    return {
      connect: () => producer.connect(),
      send: (record) => checked.send(producer, record),
      disconnect: () => producer.disconnect(),
    };
  };
}

export interface PlatformaticLaneOptions {
  clientId: string;
  brokers: string[];
  /** How old the topic's metadata may get before a send refreshes it (partitions added to `clicks`). */
  metadataMaxAgeMs: number;
  log: (message: string) => void;
}

/** @platformatic/kafka's idempotent producer, every send checked against Kafka's answer. */
export function platformaticLanes(opts: PlatformaticLaneOptions): LaneProducerFactory {
  return () => {
    const producer = new PlatformaticProducer({
      clientId: opts.clientId,
      bootstrapBrokers: opts.brokers,
      // Idempotent: acks=all, one request in flight, and retries without end (the client sets them).
      idempotent: true,
      connectTimeout: 3000,
      // A request's own deadline; its retries are the client's, every 100 ms, until an answer.
      timeout: 5000,
      retryDelay: 100,
      metadataMaxAge: opts.metadataMaxAgeMs,
      autocreateTopics: false,
    });
    return {
      // Its first send connects, takes a producer id and reads the topic's metadata; done here so
      // that a lane reports a Kafka that cannot be reached before it is given clicks.
      connect: async () => {
        await producer.initIdempotentProducer({});
      },
      send: (record) => sendChecked(producer, record, opts.log),
      disconnect: () => producer.close(),
    };
  };
}

/**
 * Sends `record` with each message placed by Java's murmur2 of its key, and sends again the messages
 * of any partition Kafka's answer does not name as written (as common/checked-sends.ts does for
 * kafkajs). Rejects after RESEND_ROUNDS.
 */
async function sendChecked(
  producer: PlatformaticProducer<Buffer, Buffer, Buffer, Buffer>,
  record: ProducerRecord,
  log: (message: string) => void,
): Promise<void> {
  const { topic } = record;
  const metadata = await producer.metadata({ topics: [topic] });
  const partitions = metadata.topics.get(topic)?.partitionsCount;
  if (!partitions) throw new Error(`Kafka's metadata has no topic ${topic}`);
  const compression = record.compression === CompressionTypes.GZIP ? 'gzip' : 'none';
  let left = record.messages.map((m) => toPlatformatic(topic, m, partitions));
  for (let round = 1; ; round++) {
    const answer = await producer.send({ messages: left, acks: ProduceAcks.ALL, compression });
    const written = new Set((answer.offsets ?? []).filter((o) => o.topic === topic).map((o) => o.partition));
    left = left.filter((m) => !written.has(m.partition!));
    if (left.length === 0) return;
    const missing = [...new Set(left.map((m) => m.partition))].join(', ');
    if (round >= RESEND_ROUNDS)
      throw new Error(`Kafka acked no write of partition(s) ${missing} in ${RESEND_ROUNDS} sends`);
    log(
      `Kafka's answer to a send lacks partition(s) ${missing}: sending their ${left.length} click event(s) again`,
    );
  }
}

/** A kafkajs message (string key, string ms timestamp) as @platformatic/kafka sends it, placed. */
function toPlatformatic(topic: string, m: Message, partitions: number): MessageToProduce {
  const key = typeof m.key === 'string' ? Buffer.from(m.key) : (m.key ?? undefined);
  // The client's murmur2 works in BigInt; a string key's hash is kept in its LRU cache (hot ads).
  const hash = typeof m.key === 'string' ? murmur2(m.key, true) : key ? murmur2(key) : 0;
  return {
    topic,
    key,
    value: m.value as Buffer,
    // Java's toPositive(murmur2(key)) % partitions: the partition kafkajs' default partitioner picks.
    partition: (hash & 0x7fffffff) % partitions,
    ...(m.timestamp !== undefined && { timestamp: BigInt(m.timestamp) }),
  };
}
