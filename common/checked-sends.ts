// Sends checked against Kafka's answer. kafkajs 2.2.4 keeps each broker's answer across a send's
// retries and resends only to brokers that have not answered, so when a partition's leader dies
// mid-send and its new leader is a broker that already answered for other partitions, the send
// resolves without ever writing that partition (tulios/kafkajs#1303). The cluster drill lost a click
// that got its 302 so (docs/store.md). The partitioner is kafkajs' own, wrapped to note where each
// message went; the messages whose partition the answer lacks are sent again. Used by the click log
// (ingest/kafka-lanes.ts), the spool drain and the catalogue relay.
import kafkajs, {
  type ICustomPartitioner,
  type Message,
  type Producer,
  type ProducerRecord,
  type RecordMetadata,
} from 'kafkajs';

// A default import: Node's ESM loader does not see Partitioners among kafkajs' CommonJS exports.
const { Partitioners } = kafkajs;

/** Rounds of sending again the messages a send resolved without, before it counts as failed. */
export const RESEND_ROUNDS = 10;

export interface CheckedSends {
  /** kafkajs' own partitioner (murmur2 of the key), noting where each message went. */
  createPartitioner: ICustomPartitioner;
  /**
   * Sends `record` on a producer made with `createPartitioner` and, while Kafka's answer lacks a
   * partition of its messages (see the top of this file), sends those messages again. Rejects (a
   * failed send, to its caller) after RESEND_ROUNDS.
   */
  send(producer: Producer, record: ProducerRecord): Promise<void>;
}

/**
 * Sends checked against Kafka's answer: the click log's lanes, the spool drain and the catalogue
 * relay use them. `what` names the messages in the log line ("click event", "ad change").
 */
export function checkedSends(log: (message: string) => void, what = 'click event'): CheckedSends {
  const placed = new WeakMap<Message, number>();
  return {
    createPartitioner: () => {
      const partition = Partitioners.DefaultPartitioner();
      return (args) => {
        const p = partition(args);
        placed.set(args.message, p);
        return p;
      };
    },
    async send(producer, record) {
      let left = record.messages;
      for (let round = 1; ; round++) {
        const answer = await producer.send({ ...record, messages: left });
        left = unacked(left, answer, record.topic, placed);
        if (left.length === 0) return;
        const partitions = [...new Set(left.map((m) => placed.get(m)))].join(', ');
        if (round >= RESEND_ROUNDS)
          throw new Error(`Kafka acked no write of partition(s) ${partitions} in ${RESEND_ROUNDS} sends`);
        log(
          `Kafka's answer to a send lacks partition(s) ${partitions} (a leader changed during the ` +
            `send): sending their ${left.length} ${what}(s) again`,
        );
      }
    },
  };
}

/**
 * The messages of a send whose partition Kafka's answer does not name as written (absent, or with an
 * error code). A message the partitioner never placed is not known to be in Kafka: it is kept too.
 */
export function unacked(
  messages: Message[],
  answer: RecordMetadata[],
  topic: string,
  placed: WeakMap<Message, number>,
): Message[] {
  const ok = new Set(
    answer.filter((r) => r.topicName === topic && r.errorCode === 0).map((r) => r.partition),
  );
  return messages.filter((m) => {
    const p = placed.get(m);
    return p === undefined || !ok.has(p);
  });
}
