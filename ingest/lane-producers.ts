// The producers behind the click log's lanes (kafka-lanes.ts), one per lane. Two clients can carry
// them (ADCLICK_KAFKA_PRODUCER):
// - `kafkajs`: the client every other part of the app uses, its sends checked against Kafka's answer
//   (common/checked-sends.ts, for tulios/kafkajs#1303);
// - `platformatic` (the default): @platformatic/kafka, a maintained pure-JS client whose producer spends about a
//   third of kafkajs' CPU per click event (README, "CPU per click"). It places each message itself
//   (Java's murmur2 of the key, as kafkajs and Kafka's own clients do, so a key lands on the same
//   partition whichever client sends it) and checks the answer the same way: a send resolves only
//   once Kafka's answer names every partition it wrote to. The client fails a whole send when some of
//   its partitions failed and others were written, and advances its sequence numbers only when a
//   whole send succeeds; so a failed send is sent again as the same request on the same producer
//   (Kafka drops the batches it already wrote as duplicates of their sequence numbers), never on a
//   fresh producer, which would write them twice (seen in the fault matrix's Kafka-killed cell,
//   README "CPU per click, fourth round"). Only a send Kafka refuses for its sequence numbers or
//   producer id fails: then the lane needs a fresh producer.
// Both are idempotent with acks=all and retry until they know a send's outcome: the click log's
// deadline, not the producer, decides when a click falls back to the spool.
import { Producer as PlatformaticProducer, ProduceAcks, type MessageToProduce } from '@platformatic/kafka';
import murmurhash from 'murmurhash';
import kafkajs, { type Kafka, type Message, type ProducerRecord } from 'kafkajs';
import { checkedSends, RESEND_ROUNDS, type CheckedSends } from '../common/checked-sends.js';
import { backoffDelay, sleep } from '../common/wait.js';

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
    const state = { closed: false };
    // One send at a time on a producer: the client reads a partition's next sequence number when it
    // encodes a request and advances it when the answer comes, so two sends at once would share it.
    let tail: Promise<unknown> = Promise.resolve();
    return {
      // Its first send connects, takes a producer id and reads the topic's metadata; done here so
      // that a lane reports a Kafka that cannot be reached before it is given clicks.
      connect: async () => {
        await producer.initIdempotentProducer({});
      },
      send: (record) => {
        const sent = tail.then(() => sendChecked(producer, record, opts.log, state));
        tail = sent.catch(() => undefined);
        return sent;
      },
      disconnect: () => {
        state.closed = true;
        return producer.close();
      },
    };
  };
}

/**
 * Kafka's answers that mean the producer's sequence numbers or id are no longer good: sending the
 * same request again cannot succeed, the lane needs a fresh producer (and what this one wrote of the
 * failed send may be written again: the corner spool.ts documents).
 */
const SEQUENCE_REFUSALS = [
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'DUPLICATE_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
  'INVALID_PRODUCER_ID_MAPPING',
];
const RETRY = { firstMs: 100, maxMs: 1000 };
/** A send that keeps failing is logged at its first failure and then once this often. */
const RETRY_LOG_EVERY_MS = 10_000;

interface FoundBy {
  findBy?(property: string, value: unknown): unknown;
}
const refusesSequence = (e: unknown): boolean =>
  SEQUENCE_REFUSALS.some((id) => Boolean((e as FoundBy).findBy?.('apiId', id)));

/**
 * Sends `record` with each message placed by Java's murmur2 of its key, and sends again the messages
 * of any partition Kafka's answer does not name as written (as common/checked-sends.ts does for
 * kafkajs). A failed send is sent again unchanged on the same producer until Kafka takes it, so its
 * sequence numbers make Kafka drop what an earlier attempt wrote; it rejects only when Kafka refuses
 * the producer's sequence numbers, when the producer is closed, or after RESEND_ROUNDS answers that
 * lack a partition. The click log's deadline, not this loop, decides when its clicks go to the spool.
 */
async function sendChecked(
  producer: PlatformaticProducer<Buffer, Buffer, Buffer, Buffer>,
  record: ProducerRecord,
  log: (message: string) => void,
  state: { closed: boolean },
): Promise<void> {
  const { topic } = record;
  const compression = record.compression === CompressionTypes.GZIP ? 'gzip' : 'none';
  let failures = 0;
  let loggedAt = Number.NEGATIVE_INFINITY;
  /** Runs `attempt` until it succeeds, waiting between failures; rethrows what cannot be retried. */
  async function untilDone<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await attempt();
      } catch (e) {
        if (state.closed || refusesSequence(e)) throw e;
        failures++;
        const now = performance.now();
        if (now - loggedAt >= RETRY_LOG_EVERY_MS) {
          loggedAt = now;
          log(
            `${what} of ${record.messages.length} click event(s) failed ${failures} time(s) ` +
              `(${innermostReason(e)}); sending the same request again on the same producer`,
          );
        }
        await sleep(backoffDelay(failures, RETRY));
      }
    }
  }
  // The placement is made once: a retry must be the same request, even if the topic grew meanwhile.
  const partitions = await untilDone('reading the metadata for a send', async () => {
    const metadata = await producer.metadata({ topics: [topic] });
    const count = metadata.topics.get(topic)?.partitionsCount;
    if (!count) throw new Error(`Kafka's metadata has no topic ${topic}`);
    return count;
  });
  let left = record.messages.map((m) => toPlatformatic(topic, m, partitions));
  for (let round = 1; ; round++) {
    const answer = await untilDone('a send', () =>
      producer.send({ messages: left, acks: ProduceAcks.ALL, compression }),
    );
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

/** The innermost reasons of a client error (it nests them: MultipleErrors of ProtocolErrors). */
function innermostReason(e: unknown): string {
  const nested = (e as { errors?: unknown[] }).errors;
  if (Array.isArray(nested) && nested.length > 0) return innermostReason(nested[nested.length - 1]);
  return (e as Error).message ?? String(e);
}

/**
 * Java's murmur2 of the key (Kafka's Utils.murmur2: MurmurHash2, 32 bits, this seed), as a 32-bit
 * pattern. `murmurhash` computes it in 32-bit arithmetic; the client's own murmur2 works in BigInt and
 * keeps its hashes in an LRU cache that the long tail of ads misses (3 % of the click process).
 */
export const kafkaMurmur2 = (key: Uint8Array): number => murmurhash.v2(key, 0x9747b28c);

/** A kafkajs message (string key, string ms timestamp) as @platformatic/kafka sends it, placed. */
function toPlatformatic(topic: string, m: Message, partitions: number): MessageToProduce {
  const key = typeof m.key === 'string' ? Buffer.from(m.key) : (m.key ?? undefined);
  const hash = key ? kafkaMurmur2(key) : 0;
  return {
    topic,
    key,
    value: m.value as Buffer,
    // Java's toPositive(murmur2(key)) % partitions: the partition kafkajs' default partitioner picks.
    partition: (hash & 0x7fffffff) % partitions,
    ...(m.timestamp !== undefined && { timestamp: BigInt(m.timestamp) }),
  };
}
