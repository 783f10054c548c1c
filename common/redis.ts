// Redis client construction: fail fast instead of queueing commands while Redis is down, so the
// click path can fall back (fail open) within its deadline.
import { Redis } from 'ioredis';
import { config } from './config.js';

export function createRedis(): Redis {
  return new Redis(config.REDIS_URL, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}
