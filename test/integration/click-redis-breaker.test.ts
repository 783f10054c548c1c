// The first-click check against a Redis that stops answering in time (hung, or slow behind a bad
// link): real Redis behind the stack's Toxiproxy with a latency toxic. Without a circuit breaker every
// check waits out the whole deadline, so a hung Redis adds its deadline to every 302; with it, and
// with the checks behind a batch that missed failing open at once, the clicks of one deadline pay it,
// then the checks fail open at once until a probe finds Redis answering.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Toxiproxy, type Latency, type Proxy } from 'toxiproxy-node-client';
import { config } from '../../common/config.js';
import { waitFor } from '../../common/wait.js';
import { createClickRedis, DEFAULT_DEDUP_BREAKER, redisDedup, redisReady } from '../../ingest/dedup.js';
import { ensureToxiproxy, toxiproxyUrl } from '../../stack/services/toxiproxy.js';
import { freePort } from './faults-support.js';

// Long enough that a check which waits for it cannot be mistaken for one that did not, on a busy machine.
const DEADLINE_MS = 800; // under the client's own command timeout (REDIS_COMMAND_TIMEOUT_MS, 1 s)
const HALF_OPEN_AFTER_MS = 1000;

describe('first-click check with Redis not answering in time', () => {
  let proxy: Proxy;
  let redis: ReturnType<typeof createClickRedis>;

  beforeAll(async () => {
    await ensureToxiproxy();
    const port = await freePort();
    proxy = await new Toxiproxy(toxiproxyUrl).createProxy({
      name: `breaker-test-${randomUUID()}`,
      listen: `127.0.0.1:${port}`,
      upstream: new URL(config.REDIS_URL).host,
    });
    const url = new URL(config.REDIS_URL);
    url.host = `127.0.0.1:${port}`;
    redis = createClickRedis(url.toString());
    expect(await redisReady(redis, 10_000)).toBe(true);
  });
  /** Holds every reply from Redis for `ms` (a Toxiproxy latency toxic on the way back). */
  const delayReplies = (name: string, ms: number): Promise<{ remove(): Promise<void> }> =>
    proxy.addToxic<Latency>({
      name,
      type: 'latency',
      stream: 'downstream',
      toxicity: 1,
      attributes: { latency: ms, jitter: 0 },
    });

  afterAll(async () => {
    redis?.disconnect();
    await proxy?.remove().catch(() => undefined);
  });

  it('takes an answer Redis gave while the click process was too busy to read it, instead of failing open', async () => {
    const dedup = redisDedup(redis, 50);
    const id = randomUUID();
    const answer = dedup.firstClick(id, 60_000);
    // Two steps of the loop: the check's batch is sent, then ioredis writes it to the socket.
    await new Promise((r) => setImmediate(() => setImmediate(r)));
    busyFor(300); // the click process is busy for 6 deadlines; Redis answers meanwhile
    expect(await answer).toBe('first');
    expect(await dedup.firstClick(id, 60_000)).toBe('duplicate'); // and the key was set
  });

  it('asks Redis a check whose process was busy past the deadline before sending it, instead of failing open', async () => {
    const dedup = redisDedup(redis, 50);
    const id = randomUUID();
    const answer = dedup.firstClick(id, 60_000);
    busyFor(300); // busy before the check's batch is sent
    expect(await answer).toBe('first');
    expect(await dedup.firstClick(id, 60_000)).toBe('duplicate');
  });

  it('stays closed through a short stall that makes many batches in flight miss together', async () => {
    const changes: boolean[] = [];
    const dedup = redisDedup(redis, 50, 0, { ...DEFAULT_DEDUP_BREAKER, onOpen: (o) => changes.push(o) });
    expect(await dedup.firstClick(randomUUID(), 60_000)).toBe('first');
    // A stall of ~150 ms: 20 batches sent within ~20 ms (one per loop step, as a loaded click process
    // sends them) all miss their 50 ms deadline.
    const stall = await delayReplies('stall', 150);
    const burst: Promise<string>[] = [];
    for (let i = 0; i < 20; i++) {
      burst.push(dedup.firstClick(randomUUID(), 60_000));
      await new Promise((r) => setImmediate(r));
    }
    expect(new Set(await Promise.all(burst))).toEqual(new Set(['unavailable']));
    await stall.remove();
    await new Promise((r) => setTimeout(r, 300)); // the held replies drain
    // Redis is asked again at once: the stall did not open the breaker for the next second.
    expect(await dedup.firstClick(randomUUID(), 60_000)).toBe('first');
    expect(changes).toEqual([]);
  });

  it('costs the clicks of one deadline when Redis stops answering, opens the breaker once the misses go on, and closes again once Redis answers', async () => {
    const changes: boolean[] = [];
    const dedup = redisDedup(redis, DEADLINE_MS, 0, {
      failures: 3,
      spanMs: 200,
      halfOpenAfterMs: HALF_OPEN_AFTER_MS,
      onOpen: (open) => changes.push(open),
    });
    const check = async () => {
      const t0 = performance.now();
      const answer = await dedup.firstClick(randomUUID(), 60_000);
      return { answer, ms: performance.now() - t0 };
    };
    expect((await check()).answer).toBe('first');

    const hang = await delayReplies('hang', 60_000);
    // The first batch waits out its deadline; one sent while it waits is answered when it misses,
    // not at its own deadline: Redis answers in order, so it could not have been answered sooner.
    const first = check();
    await new Promise((r) => setTimeout(r, DEADLINE_MS / 2));
    const behind = await check();
    const missed = await first;
    expect(missed.answer).toBe('unavailable');
    expect(missed.ms).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(behind.answer).toBe('unavailable');
    expect(behind.ms).toBeLessThan(DEADLINE_MS * 0.75);
    // Behind an unanswered batch that missed, the checks fail open at once, before the breaker opens
    // (the old check made every batch wait out its deadline until three had missed).
    for (let i = 0; i < 20; i++) {
      const r = await check();
      expect(r.answer).toBe('unavailable');
      expect(r.ms).toBeLessThan(DEADLINE_MS / 3);
    }
    // Their batches miss too, for longer than spanMs: the breaker opens, and no click waits for it.
    await waitFor('the breaker to open', () => changes.length > 0, 10_000, 50);
    expect(changes).toEqual([true]);
    for (let i = 0; i < 5; i++) expect((await check()).ms).toBeLessThan(DEADLINE_MS / 3);

    await hang.remove();
    // The probe after HALF_OPEN_AFTER_MS finds Redis answering again (replies held by the toxic may
    // still be draining first), the breaker closes, and checks are answered by Redis again.
    await waitFor(
      'the breaker to close',
      async () => (await check()).answer === 'first' && changes.at(-1) === false,
      30_000,
      200,
    );
    expect(changes).toEqual([true, false]);
  });
});

/** Keeps the event loop busy for `ms`, as a loaded click process is. */
function busyFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until);
}
