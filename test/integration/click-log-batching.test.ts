// When the click log sends a batch to the real Kafka: it lingers only while more clicks are on their
// way (announced by the click handler while their Redis check is out). With none on the way, a
// click is sent at once: a few busy connections, each waiting for its own answer, must not wait
// out the linger on every click (64 connections were held to ~6,400 clicks/s by a 5 ms linger).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../common/kafka.js';
import { ClickLog } from '../../ingest/click-log.js';
import { clickTopic, tempSpoolPath, validClickEvent as event } from '../support/click.js';
import { sleep } from '../../common/wait.js';

const LINGER_MS = 1500;
const kafka = createKafka('adclick-test-click-log-batching');

/** Milliseconds until `p` settles. */
async function timed(p: Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await p;
  return performance.now() - t0;
}

describe('click log batching', () => {
  let log: ClickLog;
  let drop: () => Promise<void>;
  let readAll: Awaited<ReturnType<typeof clickTopic>>['readAll'];

  beforeAll(async () => {
    const topic = `clicks-test-${randomUUID()}`;
    ({ drop, readAll } = await clickTopic(kafka, topic));
    log = await ClickLog.open({
      kafka,
      topic,
      spoolPath: tempSpoolPath(),
      deadlineMs: 10_000,
      lingerMs: LINGER_MS,
      batchMax: 100,
    });
    await log.append(event()); // connects the producer: later timings are the batching alone
  });

  afterAll(async () => {
    await log?.close();
    await drop?.();
  });

  it('waits for an announced click, then sends both at once; with nothing announced, sends at once', async () => {
    log.announce();
    const first = log.append(event());
    let firstSettled = false;
    void first.then(() => (firstSettled = true));
    await sleep(300);
    expect(firstSettled).toBe(false); // lingering for the announced click

    log.arrived();
    const both = await timed(Promise.all([first, log.append(event())]));
    expect(both).toBeLessThan(LINGER_MS / 2);

    const alone = await timed(log.append(event())); // nothing on its way
    expect(alone).toBeLessThan(LINGER_MS / 2);
    expect((await readAll(4)).length).toBe(4);
  });
});
