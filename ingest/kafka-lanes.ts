// The click log's producers ("lanes"). kafkajs lets an idempotent producer have one request in flight
// per broker, so `count` producers (each with its own producer id) carry batches in parallel; clicks
// in flight at the same time have no order among them. A lane stays busy until its send settles,
// even after the batch's deadline (its events are spooled by then, and a late ack is recorded).
//
// Every send is checked against Kafka's answer (checkedSends): kafkajs 2.2.4 keeps each broker's answer
// across a send's retries and resends only to brokers that have not answered, so when a partition's
// leader dies mid-send and its new leader is a broker that already answered for other partitions,
// the send resolves without ever writing that partition (tulios/kafkajs#1303). The cluster drill lost
// a click that got its 302 so (docs/store.md). The partitioner is kafkajs' own, wrapped to note where
// each message went; the messages whose partition the answer lacks are sent again.
import kafkajs, {
  type ICustomPartitioner,
  type Kafka,
  type Message,
  type Producer,
  type ProducerRecord,
  type RecordMetadata,
} from 'kafkajs';
import { sleep } from '../common/wait.js';

// A default import: Node's ESM loader does not see Partitioners among kafkajs' CommonJS exports.
const { Partitioners } = kafkajs;

/** Rounds of sending again the messages a send resolved without, before it counts as failed. */
const RESEND_ROUNDS = 10;

interface Lane {
  producer: Producer;
  connecting: Promise<void>;
  busy: boolean;
}

export class KafkaLanes {
  private readonly lanes: Lane[];
  private readonly checked: CheckedSends;

  constructor(
    private readonly kafka: Kafka,
    count: number,
    private readonly log: (message: string) => void,
  ) {
    this.checked = checkedSends(log);
    this.lanes = Array.from({ length: Math.max(1, count) }, () => this.newLane());
  }

  /** Whether a lane can take a batch now. */
  get idle(): boolean {
    return this.lanes.some((l) => !l.busy);
  }

  /** Sends on an idle lane (check `idle` first) once it is connected. */
  send(record: ProducerRecord): Promise<void> {
    const lane = this.lanes.find((l) => !l.busy);
    if (!lane) return Promise.reject(new Error('no idle producer lane'));
    lane.busy = true;
    const sent = lane.connecting.then(() => this.checked.send(lane.producer, record));
    void sent.then(
      () => (lane.busy = false),
      () => (lane.busy = false),
    );
    return sent;
  }

  /** Sends on the first lane, busy or not: the replayer's, which runs while no batch is sent directly. */
  async sendOnFirst(record: ProducerRecord): Promise<void> {
    await this.checked.send(this.lanes[0]!.producer, record);
  }

  /** Waits for every lane's connection; lanes that failed start connecting again. */
  async ensureConnected(): Promise<boolean> {
    let all = true;
    for (const lane of this.lanes) {
      try {
        await lane.connecting;
      } catch {
        this.connect(lane);
        all = false;
      }
    }
    return all;
  }

  /** A producer whose send failed for good may hold stale sequence numbers: start a fresh first lane. */
  async resetFirst(): Promise<void> {
    const old = this.lanes[0]!.producer;
    this.lanes[0] = this.newLane();
    await Promise.race([old.disconnect().catch(() => undefined), sleep(2000)]);
  }

  /** Disconnects every lane, waiting at most `graceMs`. */
  async disconnect(graceMs: number): Promise<void> {
    await Promise.race([
      Promise.all(this.lanes.map((l) => l.producer.disconnect().catch(() => undefined))),
      sleep(graceMs),
    ]);
  }

  private newLane(): Lane {
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // The idempotent producer retries until it knows the outcome, so a late ack is certain to be
      // seen (and recorded as delivered) instead of leaving the event's fate unknown.
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 1000 },
      createPartitioner: this.checked.createPartitioner,
    });
    const lane: Lane = { producer, connecting: Promise.resolve(), busy: false };
    this.connect(lane);
    return lane;
  }

  private connect(lane: Lane): void {
    lane.connecting = lane.producer.connect().catch((e: Error) => {
      this.log(`Kafka producer cannot connect (${e.message}); clicks go to the spool until it can`);
      throw e;
    });
    lane.connecting.catch(() => undefined); // handled where it is awaited
  }
}

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

/** Sends checked against Kafka's answer: the click log's lanes and the spool drain use them. */
export function checkedSends(log: (message: string) => void): CheckedSends {
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
            `send): sending their ${left.length} click event(s) again`,
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
