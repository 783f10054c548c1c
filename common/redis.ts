// The one way this app makes a Redis client: fail fast instead of queueing commands while Redis is
// down (callers have deadlines and fall back), reconnect in the background, and no log line per
// reconnect attempt (each caller answers errors per command). Not connected until `connect()`.
import { Redis } from 'ioredis';
import { config } from './config.js';

export function createRedis(url: string = config.REDIS_URL, opts: { autoPipelining?: boolean } = {}): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: opts.autoPipelining ?? false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on('error', () => undefined);
  return redis;
}
