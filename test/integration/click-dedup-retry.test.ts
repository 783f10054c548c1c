// A click whose dedup key was set in Redis but whose append to the click log failed got a 503: the
// person was not redirected, so it was no click. Its retry must be the impression's first click
// (logged `valid`, counted by the speed layer), not a `duplicate`. Real Redis; the click log fails
// on demand (a disk that refuses the spool while Kafka is away, as far as the handler can tell).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickEvent } from '../../common/click-event.js';
import { config } from '../../common/config.js';
import { AdCache } from '../../ingest/ad-cache.js';
import { createClickHandler } from '../../ingest/click-handler.js';
import { createClickRedis, redisDedup, redisReady } from '../../ingest/dedup.js';
import { clickPath, newImpression, signingKeys } from '../../ingest/impression.js';
import { clickMetrics } from '../../ingest/metrics.js';

describe('a click whose append failed after Redis set its key', () => {
  const redis = createClickRedis(config.REDIS_URL);
  const logged: ClickEvent[] = [];
  let failNext = false;
  let server: Server;
  let base = '';
  const adId = '4242';
  const secret = `test-secret-${randomUUID()}`;

  beforeAll(async () => {
    expect(await redisReady(redis, 5000)).toBe(true);
    const handler = createClickHandler({
      ads: new AdCache(
        { get: () => ({ advertiserId: '1', redirectUrl: 'https://advertiser.example/x' }) },
        async () => undefined,
        { maxEntries: 10, fallbackDeadlineMs: 100 },
      ),
      dedup: redisDedup(redis, 1000),
      clickLog: {
        async append(event) {
          if (failNext) {
            failNext = false;
            throw new Error('spool: no space left on device');
          }
          logged.push(event);
          return 'kafka';
        },
      },
      signingKeys: signingKeys(undefined, secret),
      salts: 8,
      metrics: clickMetrics(),
    });
    server = createServer(handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
    redis.disconnect();
  });

  it('answers 503, removes the key, and logs the retry as the valid first click', async () => {
    const imp = newImpression(secret, adId, 600, Date.now());
    failNext = true;
    const first = await fetch(base + clickPath(imp), { redirect: 'manual' });
    expect(first.status).toBe(503);
    expect(await redis.exists(`dedup:${imp.impressionId}`)).toBe(0);

    const retry = await fetch(base + clickPath(imp), { redirect: 'manual' });
    expect(retry.status).toBe(302);
    const again = await fetch(base + clickPath(imp), { redirect: 'manual' });
    expect(again.status).toBe(302);
    expect(logged.filter((e) => e.eventId === imp.impressionId).map((e) => e.status)).toEqual([
      'valid',
      'duplicate',
    ]);
    await redis.del(`dedup:${imp.impressionId}`);
  });
});
