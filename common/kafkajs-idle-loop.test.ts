// kafkajs' request queue, alone (no broker): a queue with nothing waiting must not keep checking
// itself (the 1 ms loop of tulios/kafkajs#1556), and a request held back by a throttle must still
// leave when the throttle ends. The loop was seen here: ~50 checks in 100 ms before the fix.
import { afterEach, describe, expect, it } from 'vitest';
import { fixKafkajsIdleLoop, requestQueueClass } from './kafkajs-idle-loop.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
type Queue = {
  checkPendingRequests(): void;
  push(r: unknown): void;
  maybeThrottle(ms: number): void;
  fulfillRequest(r: { correlationId: number; payload: Buffer; size: number }): void;
  destroy(): void;
};
const RequestQueue = requestQueueClass() as unknown as new (opts: object) => Queue;
const queues: Queue[] = [];

function queue(): { q: Queue; checks: () => number } {
  const q = new RequestQueue({
    maxInFlightRequests: 1,
    requestTimeout: 30_000,
    clientId: 'test',
    broker: 'b:9092',
    logger: quiet,
  });
  queues.push(q);
  let n = 0;
  const check = q.checkPendingRequests.bind(q);
  q.checkPendingRequests = () => {
    n++;
    check();
  };
  return { q, checks: () => n };
}

function request(correlationId: number, sent: number[]) {
  return {
    entry: { correlationId, apiKey: 3, apiName: 'Metadata', apiVersion: 0, resolve() {}, reject() {} },
    expectResponse: true,
    sendRequest: () => sent.push(correlationId),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(() => {
  for (const q of queues.splice(0)) q.destroy();
});

describe("kafkajs' request queue (common/kafkajs-idle-loop.ts)", () => {
  it('is fixed for the kafkajs installed', () => {
    expect(fixKafkajsIdleLoop()).toBe(true);
  });

  it('with nothing waiting, an answer does not start a loop of checks', async () => {
    const { q, checks } = queue();
    q.checkPendingRequests(); // what an answer (fulfillRequest) does
    await sleep(100);
    expect(checks()).toBeLessThanOrEqual(2);
  });

  it('a request over the in-flight limit leaves when the one before it is answered', async () => {
    const { q } = queue();
    const sent: number[] = [];
    q.push(request(1, sent));
    q.push(request(2, sent));
    expect(sent).toEqual([1]);
    q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    expect(sent).toEqual([1, 2]);
  });

  it('a request held back by a throttle leaves when the throttle ends, without another request', async () => {
    const { q } = queue();
    const sent: number[] = [];
    q.maybeThrottle(40);
    q.push(request(1, sent));
    expect(sent).toEqual([]);
    await sleep(20);
    expect(sent).toEqual([]);
    await sleep(60);
    expect(sent).toEqual([1]);
  });
});
