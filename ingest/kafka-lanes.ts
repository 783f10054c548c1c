// The click log's producers ("lanes"). kafkajs lets an idempotent producer have one request in flight
// per broker, so `count` producers (each with its own producer id) carry batches in parallel; clicks
// in flight at the same time have no order among them. A lane stays busy until its send settles,
// even after the batch's deadline (its events are spooled by then, and a late ack is recorded).
//
// Every send is checked against Kafka's answer (lane-producers.ts: kafkajs 2.2.4 can resolve a send
// without a partition whose leader changed during it, tulios/kafkajs#1303). Which client carries the
// lanes is ADCLICK_KAFKA_PRODUCER's choice (lane-producers.ts).
import type { ProducerRecord } from 'kafkajs';
import type { LaneProducer, LaneProducerFactory } from './lane-producers.js';
import { sleep } from '../common/wait.js';

interface Lane {
  producer: LaneProducer;
  connecting: Promise<void>;
  busy: boolean;
}

export class KafkaLanes {
  private readonly lanes: Lane[];

  constructor(
    private readonly newProducer: LaneProducerFactory,
    count: number,
    private readonly log: (message: string) => void,
  ) {
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
    const sent = lane.connecting.then(() => lane.producer.send(record));
    void sent.then(
      () => (lane.busy = false),
      () => (lane.busy = false),
    );
    return sent;
  }

  /** Sends on the first lane, busy or not: the replayer's, which runs while no batch is sent directly. */
  async sendOnFirst(record: ProducerRecord): Promise<void> {
    await this.lanes[0]!.producer.send(record);
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
    const producer = this.newProducer();
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
